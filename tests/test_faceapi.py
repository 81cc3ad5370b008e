"""face-api.js's 68-point network as a second teacher: weight files, padding, real faces."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tcnn.errors import TcnnError
from tcnn.train.data import faceapi

torch = pytest.importorskip("torch")


def write_model(folder: Path, tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A manifest and .bin in face-api.js's layout, uint8-quantised; the values they hold."""
    weights, blobs, held = [], [], {}
    for name, v in tensors.items():
        lo = float(v.min())
        scale = (float(v.max()) - lo) / 255
        q = np.clip(np.round((v - lo) / scale), 0, 255).astype(np.uint8)
        blobs.append(q.tobytes())
        held[name] = (q.astype(np.float32) * np.float32(scale) + np.float32(lo)).reshape(v.shape)
        weights.append(
            {
                "name": name,
                "shape": list(v.shape),
                "dtype": "float32",
                "quantization": {"dtype": "uint8", "scale": scale, "min": lo},
            }
        )
    (folder / f"{faceapi.MODEL}.bin").write_bytes(b"".join(blobs))
    manifest = [{"paths": [f"{faceapi.MODEL}.bin"], "weights": weights}]
    (folder / f"{faceapi.MODEL}-weights_manifest.json").write_text(json.dumps(manifest))
    return held


def test_weights_are_dequantised_in_manifest_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    tensors = {"a/filters": rng.normal(size=(3, 3, 3, 4)), "a/bias": rng.normal(size=(4,))}
    held = write_model(tmp_path, tensors)
    loaded = faceapi.load_weights(tmp_path)
    assert list(loaded) == ["a/filters", "a/bias"]
    for name in tensors:
        np.testing.assert_allclose(loaded[name], held[name], rtol=1e-6)
        np.testing.assert_allclose(loaded[name], tensors[name], atol=np.ptp(tensors[name]) / 255)
    with (tmp_path / f"{faceapi.MODEL}.bin").open("ab") as f:
        f.write(b"\0")
    with pytest.raises(TcnnError, match="the files hold"):
        faceapi.load_weights(tmp_path)


def test_missing_weights_name_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TCNN_FACEAPI_DIR", str(tmp_path))
    with pytest.raises(TcnnError, match=r"npm install --prefix .*@vladmandic/face-api@1\.7\.15"):
        faceapi.model_dir()


def test_stride_two_convolution_pads_as_tensorflow_same() -> None:
    """TensorFlow's 'same' at stride 2 on an even size pads one row and column after only:
    output pixel (i, j) sees input rows 2i..2i+2 and columns 2j..2j+2."""
    rng = np.random.default_rng(1)
    k = rng.normal(size=(3, 3, 2, 1)).astype(np.float32)  # TensorFlow layout [kh, kw, in, out]
    net = faceapi.FaceApi68({"c/filters": k, "c/bias": np.zeros(1, np.float32)})
    x = rng.normal(size=(1, 2, 6, 6)).astype(np.float32)
    out = net._conv(torch.from_numpy(x), "c", 2).numpy()[0, 0]
    padded = np.zeros((2, 7, 7), np.float32)
    padded[:, :6, :6] = x[0]
    expect = np.array(
        [
            [
                np.sum(
                    padded[:, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3] * k[..., 0].transpose(2, 0, 1)
                )
                for j in range(3)
            ]
            for i in range(3)
        ]
    )
    assert out.shape == (3, 3)
    np.testing.assert_allclose(out, expect, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_real_weights_place_mtfl_faces(shared_root: Path) -> None:
    """On MTFL training faces (their dlib HOG boxes), the teacher's 5 points lie near the human
    ones: mean error under 8% of the eye distance."""
    try:
        net = faceapi.FaceApi68()
    except TcnnError as e:
        pytest.skip(str(e))
    from tcnn.detect import make_detector
    from tcnn.imaging import load_image
    from tcnn.train.data.filters import human_error
    from tcnn.train.data.formats import read_mtfl
    from tcnn.train.data.pseudo import MTFL_SHIFT

    anns = read_mtfl(shared_root / "mtfl/train_landmarks5_bbox.txt")[:40]
    hog = make_detector("dlib", 2)
    images, boxes, human = [], [], []
    for a in anns:
        rgb = load_image(a.path)
        found = [b for b, _ in hog(rgb) if b.left < a.landmarks[2, 0] < b.right]
        if found:
            images.append(rgb)
            boxes.append(found[0])
            human.append(a.landmarks - MTFL_SHIFT)
    assert len(images) >= 30
    points = faceapi.place(net, images, boxes)
    assert points.shape == (len(images), 68, 2)
    assert float(human_error(points, np.stack(human)).mean()) < 0.08
