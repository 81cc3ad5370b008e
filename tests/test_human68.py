"""Learning from human 68-point labels: aflw68's fixed split, the loss over located points,
a folded BatchNorm model restarting training, per-source drawing weights, a card's default
face detector."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tcnn.errors import TcnnError  # noqa: E402
from tcnn.schemes import scheme_for  # noqa: E402
from tcnn.train.config import TrainConfig  # noqa: E402
from tcnn.train.data.datasets import DATASETS, Sample, aflw68_part_of  # noqa: E402
from tcnn.train.data.samples import source_weights  # noqa: E402
from tcnn.train.loop import face_errors, weights_from_onnx  # noqa: E402
from tcnn.train.models.vanilla import InferenceNet, VanillaArch, VanillaCNN  # noqa: E402


def test_aflw68_split_is_fixed_by_image_id_and_covers_every_face(shared_root: Path) -> None:
    train = DATASETS["aflw68-train"].read(shared_root)
    test = DATASETS["aflw68-test"].read(shared_root)
    whole = DATASETS["aflw68"].read(shared_root)
    assert len(train) + len(test) == len(whole) == 1031
    ids = {p: {str(a.path).split("-")[-1] for a in part} for p, part in (("a", train), ("b", test))}
    assert not ids["a"] & ids["b"]  # no AFLW photo on both sides
    assert 450 < len(test) < 580  # about half
    # the rule reads only the id: another crop number of the same photo lands in the same part
    assert aflw68_part_of("AFLW/0001-image07098.jpg") == aflw68_part_of("x/9-image07098.jpg")
    with pytest.raises(TcnnError, match="no AFLW image id"):
        aflw68_part_of("AFLW/face.jpg")


def test_loss_leaves_out_points_without_a_location() -> None:
    scheme = scheme_for(68)
    target = torch.zeros(1, 68, 2)
    target[0, 36], target[0, 45] = torch.tensor([0.0, 0.0]), torch.tensor([2.0, 0.0])
    pred = target.clone().requires_grad_(True)
    with torch.no_grad():
        shifted = pred.clone()
    shifted[0, :, 0] += 0.1  # every point 0.1 right: error 0.1 / 2 = 0.05
    target_hidden = target.clone()
    target_hidden[0, :10] = float("nan")  # ten points self-occluded
    pred2 = shifted.clone().requires_grad_(True)
    err = face_errors(pred2, target_hidden, scheme)
    assert float(err.detach()) == pytest.approx(0.05, abs=1e-6)
    err.sum().backward()
    assert pred2.grad is not None and torch.isfinite(pred2.grad).all()
    assert float(pred2.grad[0, :10].abs().sum()) == 0.0  # no gradient from hidden points
    assert float(pred2.grad[0, 10:].abs().sum()) > 0.0


@pytest.mark.slow
def test_relu_network_restarts_from_a_folded_batchnorm_export() -> None:
    ort = pytest.importorskip("onnxruntime")
    from tcnn.registry import resolve

    arch = VanillaArch(68, 52, (24, 40, 96, 128), 256, "relu")
    net = VanillaCNN(arch)
    net.load_state_dict(weights_from_onnx("tcnn68", net))
    wrapped = InferenceNet(net.eval(), scheme_for(68).flip_permutation().tolist(), (0.0, 0.0))
    x = torch.rand(6, 3, 52, 52, generator=torch.Generator().manual_seed(0)) * 255
    session = ort.InferenceSession(str(resolve("tcnn68")), providers=["CPUExecutionProvider"])
    ref = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        ours = wrapped(x).numpy()
    assert np.abs(ours - ref).max() < 1e-4
    wrong = VanillaCNN(VanillaArch(68, 52, (24, 40, 96, 64), 256, "relu"))
    with pytest.raises(TcnnError, match="no weights"):
        weights_from_onnx("tcnn68", wrong)


def test_source_weights_give_each_face_its_sources_weight() -> None:
    cfg = TrainConfig(data="ytf68-train+aflw68-train", source_weights=(1.0, 8.0))
    faces = [
        Sample(Path("a.jpg"), np.zeros((68, 2), np.float32), None, 0.0, source=name)
        for name in ("ytf68-train", "aflw68-train", "ytf68-train")
    ]
    weights = source_weights(faces, cfg)
    assert weights is not None and weights.tolist() == [1.0, 8.0, 1.0]
    assert source_weights(faces, TrainConfig(data=cfg.data)) is None
    with pytest.raises(TcnnError, match="one positive weight per dataset"):
        source_weights(faces, TrainConfig(data=cfg.data, source_weights=(1.0,)))
    with pytest.raises(TcnnError, match="one positive weight per dataset"):
        source_weights(faces, TrainConfig(data=cfg.data, source_weights=(1.0, 0.0)))


def test_card_default_detector_is_used_when_none_is_named(tmp_path: Path) -> None:
    import shutil

    from tcnn import LandmarkDetector
    from tcnn.card import update_card
    from tcnn.registry import resolve

    path = tmp_path / "m.onnx"
    shutil.copy(resolve("tcnn68"), path)
    assert LandmarkDetector(model=str(path)).face_detector == "dlib"  # the box convention
    update_card(path, default_detector="retinaface")
    lm = LandmarkDetector(model=str(path))
    assert lm.face_detector == "retinaface"
    assert lm.box_map is not None  # RetinaFace's boxes still mapped onto the HOG convention
    assert LandmarkDetector(model=str(path), face_detector="dlib").face_detector == "dlib"
    with pytest.raises(TcnnError, match="default_detector: 'hog' is not"):
        update_card(path, default_detector="hog")
