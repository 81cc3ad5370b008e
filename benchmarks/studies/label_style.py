"""The style rule's measurement: a source's labelling style against the teacher's, training faces.

``tcnn68`` learns from dlib's 68-point pseudo-labels (300-W's style, on MTFL and UTKFace) and
from ytf68 train's own labels, whose annotators put the points elsewhere (ytf68_style.py: a
mean per-point difference of about 2% of the face box). This script runs the pseudo-labels'
teacher (``tcnn.train.data.teacher.Teacher``: dlib's predictor on an upscaled image, direct and
mirrored, averaged) on a source's training images, keeps the faces where the teacher found a
HOG box and agrees with itself under the mirror (the pseudo-labels' own flip threshold), and
writes the mean per-point offset (label - teacher) in landmark extents
(``tcnn.train.convention.style_offsets``). A config's ``label_style`` names the file; training moves
that source's labels by it, into the teacher's style. The labels are read as training reads
them: after the config's ``label_shift`` (the pixel-convention rule).

Run: ``python benchmarks/studies/label_style.py [--source ytf68-train --config
configs/tcnn68.toml]``
(writes configs/styles/SOURCE.json).

Calibrated to people: ``--source aflw68-train --config configs/tcnn68h.toml --human`` measures
the teacher against aflw68's human labels on its training part (configs/styles/aflw68-train.json)
and then writes, for every other source of the config, the offsets that move its labels into
the human style (configs/styles/SOURCE-human.json): the teacher's own pseudo-labels by
``teacher - human``, a source with its own measured style file by ``(source - teacher) +
(teacher - human)``. Only training faces are read.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from tcnn.files import write_text
from tcnn.train.config import load_config
from tcnn.train.convention import shift_labels, style_offsets
from tcnn.train.data.datasets import dataset_names, load_dataset
from tcnn.train.data.filters import Thresholds, flip_disagreement
from tcnn.train.data.samples import source_shifts
from tcnn.train.data.teacher import Source, label_source

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", default="ytf68-train", help="a source of the config's data")
    ap.add_argument("--config", default=str(CONFIGS / "tcnn68.toml"), help="its training config")
    ap.add_argument("--factor", type=int, default=2, help="upscaling before the teacher runs")
    ap.add_argument(
        "--human",
        action="store_true",
        help="--source holds human labels: also write every other source's move into them",
    )
    ap.add_argument(
        "--styles",
        default=str(CONFIGS / "styles"),
        help="folder to write the style files to (a source's own measured style is still read "
        "from configs/styles)",
    )
    args = ap.parse_args()
    styles = Path(args.styles)
    cfg = load_config(args.config)
    names = dataset_names(cfg.data)
    if args.source not in names:
        raise SystemExit(f"--source {args.source}: not in the config's data {cfg.data!r}")
    shift = source_shifts(cfg)[names.index(args.source)]
    samples = shift_labels(load_dataset(args.source, cfg.data_root or None), shift)
    source = Source(args.source, args.factor, [(s.path, s.landmarks) for s in samples])
    labels = label_source(source)
    limit = Thresholds().flip
    keep = [
        i
        for i, lab in enumerate(labels)
        if lab.box_source == "hog"
        and lab.direct is not None
        and lab.flipped is not None
        and flip_disagreement(lab.direct[None], lab.flipped[None])[0] <= limit
    ]
    teacher = np.stack([labels[i].points for i in keep])  # type: ignore[misc]
    ours = np.stack([samples[i].landmarks for i in keep])
    offsets = style_offsets(ours, teacher)
    size = float(np.linalg.norm(offsets, axis=1).mean())
    out = styles / f"{args.source}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "source": args.source,
        "reference": "dlib's 68-point predictor (tcnn.train.data.teacher.Teacher, upscaled "
        f"{args.factor}x, direct and mirrored averaged), the pseudo-labels' teacher",
        "label_shift": shift,
        "faces": len(keep),
        "of": len(samples),
        "unit": "landmark extent (the longer side of the labels' bounding box)",
        "mean_offset_size": round(size, 5),
        "offsets": [[round(float(x), 6), round(float(y), 6)] for x, y in offsets],
    }
    write_text(out, json.dumps(record, indent=1) + "\n")
    print(f"{args.source}: {len(keep)} of {len(samples)} faces; mean offset {size:.4f} extents")
    print(out)
    if args.human:
        for name in names:
            if name != args.source:
                print(write_human_style(name, offsets, args.source, styles))


def write_human_style(name: str, human: np.ndarray, source: str, styles: Path) -> Path:
    """Write the offsets that move ``name``'s labels into the human style measured on
    ``source`` (``human``: human - teacher, ``[K, 2]`` extents): ``(own - teacher) - human``,
    ``own`` being ``name``'s measured style file if there is one, else the teacher's own."""
    own_file = CONFIGS / "styles" / f"{name}.json"
    own = np.asarray(json.loads(own_file.read_text())["offsets"]) if own_file.exists() else 0.0
    offsets = own - human
    record = {
        "source": name,
        "reference": f"the human labels of {source} (MERL-RAV's 300-W-style points), through "
        "the pseudo-labels' teacher: (label - teacher) - (human - teacher), both measured on "
        "training faces" + (f" ({own_file.name})" if own_file.exists() else " (label = teacher)"),
        "unit": "landmark extent (the longer side of the labels' bounding box)",
        "mean_offset_size": round(float(np.linalg.norm(offsets, axis=1).mean()), 5),
        "offsets": [[round(float(x), 6), round(float(y), 6)] for x, y in offsets],
    }
    out = styles / f"{name}-human.json"
    write_text(out, json.dumps(record, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
