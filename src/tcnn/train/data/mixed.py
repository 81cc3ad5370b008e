"""A second teacher for training experiments: face-api.js's 68 points on dlib's boxes, and the
mean of the two teachers' labels (:func:`tcnn.train.data.pseudo.make_mixed` makes the datasets).
"""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from tcnn.imaging import load_image
from tcnn.train.data.filters import eye_distance
from tcnn.train.data.teacher import Label, Source, mirror_box, unmirror

#: How the two-teacher files name their teachers (the ``teachers`` of their summary line).
TWO_TEACHERS = (
    "teachers dlib shape_predictor_68_face_landmarks and face-api.js face_landmark_68 "
    "(tcnn.train.data.faceapi, on the original image; the two labels averaged, dlib's faces "
    "kept), dlib"
)


def second_teacher(
    source: Source, labels: list[Label], progress: bool = True, batch: int = 64
) -> list[Label]:
    """face-api.js's answers (:mod:`tcnn.train.data.faceapi`), direct and mirrored, on the boxes of
    ``labels`` (dlib's); faces without a box stay unlabelled."""
    from tcnn.train.data.faceapi import FaceApi68, place

    net = FaceApi68()
    out = [Label(None, None, lab.box, lab.box_source) for lab in labels]
    todo = [i for i, lab in enumerate(labels) if lab.box is not None]
    bar = tqdm(
        total=len(todo),
        desc=f"pseudo-labelling {source.name} (face-api 68)",
        disable=not progress,
        unit="face",
    )
    for start in range(0, len(todo), batch):
        chunk = todo[start : start + batch]
        images = [load_image(source.items[i][0]) for i in chunk]
        boxes = [b for i in chunk if (b := labels[i].box) is not None]
        direct = place(net, images, boxes)
        mirrored = [np.ascontiguousarray(img[:, ::-1]) for img in images]
        flipped = place(
            net, mirrored, [mirror_box(b, img.shape[1]) for img, b in zip(images, boxes)]
        )
        for k, i in enumerate(chunk):
            back = unmirror(flipped[k], images[k].shape[1])
            out[i] = Label(
                direct[k].astype(np.float32),
                back.astype(np.float32),
                boxes[k],
                labels[i].box_source,
            )
        bar.update(len(chunk))
    bar.close()
    return out


def _answers(label: Label) -> tuple[np.ndarray, np.ndarray] | None:
    """A label's direct and flipped answers, or ``None`` without them."""
    if label.direct is None or label.flipped is None:
        return None
    return label.direct, label.flipped


def mix(first: list[Label], second: list[Label], styled: bool) -> list[Label]:
    """Each face's label the mean of two teachers' answers (direct with direct, flipped with
    flipped); a face either teacher left unlabelled keeps ``first``'s label.

    Args:
        first: dlib's labels (:func:`tcnn.train.data.teacher.label_source`).
        second: face-api.js's on the same boxes (:func:`second_teacher`).
        styled: first move ``second``'s points into ``first``'s style: by each point's mean
            offset from ``first``'s, in eye distances, over the faces both labelled.
    """
    pairs = {
        i: (pa, pb)
        for i, (a, b) in enumerate(zip(first, second))
        if (pa := _answers(a)) and (pb := _answers(b))
    }
    eye = {i: float(eye_distance((pa[0] + pa[1]) / 2)) for i, (pa, _) in pairs.items()}
    style = np.zeros((68, 2))
    if styled and pairs:
        style = np.mean(
            [(pb[0] + pb[1] - pa[0] - pa[1]) / (2 * eye[i]) for i, (pa, pb) in pairs.items()],
            axis=0,
        )
    mixed = list(first)
    for i, ((ad, af), (bd, bf)) in pairs.items():
        move = style * eye[i]
        mixed[i] = Label(
            ((ad + bd - move) / 2).astype(np.float32),
            ((af + bf - move) / 2).astype(np.float32),
            first[i].box,
            first[i].box_source,
        )
    return mixed
