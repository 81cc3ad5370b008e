from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tcnn.card import Crop, ModelCard  # noqa: E402
from tcnn.registry import load_model  # noqa: E402
from tcnn.schemes import FIVE, scheme_for  # noqa: E402
from tcnn.train.export import export_model  # noqa: E402
from tcnn.train.models.vanilla import InferenceNet, VanillaArch, VanillaCNN  # noqa: E402


def test_seed_architecture_matches_method() -> None:
    net = VanillaCNN(VanillaArch())
    assert sum(p.numel() for p in net.parameters()) == 111_046
    assert net.features == 576  # Conv4: 64 x 3 x 3, after Caffe's rounded-up Pool3 (4 x 4)
    x = torch.rand(3, 3, 40, 40) * 255
    assert net(x).shape == (3, 5, 2)
    assert net.trunk[:9](net.normalise(x)).shape == (3, 64, 4, 4)  # up to Pool3


def test_68_point_variant_shapes() -> None:
    arch = VanillaArch(
        points=68, input_size=60, channels=(32, 64, 96, 128), hidden=256, activation="bnrelu"
    )
    net = VanillaCNN(arch).eval()
    assert net(torch.rand(2, 3, 60, 60) * 255).shape == (2, 68, 2)
    assert VanillaArch.from_dict(arch.to_dict()) == arch


def test_deep_trunk_shapes_and_channel_count() -> None:
    arch = VanillaArch(68, 64, (16, 32, 64, 96, 128), 256, "bnrelu", trunk="deep")
    net = VanillaCNN(arch).eval()
    assert net.features == 128 * 6 * 6  # 64 -> 32 -> 16 -> 14 -> 12 -> 6, Conv4 keeps 6 x 6
    convs = [m for m in net.trunk if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [16, 32, 32, 64, 96, 128]
    assert net(torch.rand(2, 3, 64, 64) * 255).shape == (2, 68, 2)
    assert VanillaArch.from_dict(arch.to_dict()) == arch
    old = {k: v for k, v in VanillaArch().to_dict().items() if k != "trunk"}  # cards before it
    assert VanillaArch.from_dict(old).trunk == "vanilla"
    with pytest.raises(ValueError, match="takes 5 channel counts"):
        VanillaCNN(VanillaArch(68, 64, (16, 32, 64, 128), 256, "bnrelu", trunk="deep"))
    with pytest.raises(ValueError, match="unknown trunk 'wide'"):
        VanillaCNN(VanillaArch(trunk="wide"))


def test_strided_trunk_starts_from_a_deep_checkpoint() -> None:
    """The strided trunk holds the deep trunk's weights under the same names; its Conv1 runs
    at stride 2 where the deep trunk pools Conv1's output, so the two agree on shapes (the same
    FC5) but not on values."""
    torch.manual_seed(0)
    deep = VanillaCNN(VanillaArch(68, 64, (16, 32, 64, 96, 128), 256, "bnrelu", trunk="deep"))
    arch = VanillaArch(68, 64, (16, 32, 64, 96, 128), 256, "bnrelu", trunk="strided")
    strided = VanillaCNN(arch)
    assert strided.features == deep.features == 128 * 6 * 6
    strided.load_state_dict(deep.state_dict())  # strict: every name and shape matches
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in strided.trunk[:4])
    assert strided.trunk[0].stride == (2, 2) and deep.trunk[0].stride == (1, 1)
    x = torch.rand(2, 3, 64, 64) * 255
    a, b = deep.eval()(x), strided.eval()(x)
    assert a.shape == b.shape == (2, 68, 2)
    assert not torch.allclose(a, b)
    assert VanillaArch.from_dict(arch.to_dict()) == arch
    with pytest.raises(ValueError, match="takes 5 channel counts"):
        VanillaCNN(VanillaArch(68, 64, (16, 32, 64, 128), 256, "bnrelu", trunk="strided"))


def test_mirror_averaged_net_is_mirror_equivariant() -> None:
    torch.manual_seed(0)
    wrapped = InferenceNet(VanillaCNN(VanillaArch()), FIVE.flip_permutation().tolist(), (0, 0))
    x = torch.rand(4, 3, 40, 40) * 255
    with torch.no_grad():
        y = wrapped(x)
        ym = wrapped(torch.flip(x, dims=[3]))
    back = ym[:, FIVE.flip_permutation()]
    back[..., 0] = 1 - back[..., 0]
    assert torch.allclose(y, back, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize(
    "arch",
    [VanillaArch(), VanillaArch(68, 64, (16, 32, 64, 96, 128), 256, "bnrelu", trunk="deep")],
    ids=["seed", "deep-bnrelu"],
)
def test_onnx_export_matches_pytorch_and_loads(tmp_path: Path, arch: VanillaArch) -> None:
    torch.manual_seed(0)
    net = VanillaCNN(arch)
    for m in net.modules():  # BatchNorm statistics other than the identity, folded at export
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    perm = scheme_for(arch.points).flip_permutation().tolist()
    wrapped = InferenceNet(net, perm, (0.01, -0.02)).eval()
    s = arch.input_size
    card = ModelCard(
        name="t", points=arch.points, input_size=s, channel_order="RGB",
        crop=Crop(scale=1.0, shift_y=0.0),
    )  # fmt: skip
    path = export_model(wrapped, card, tmp_path / "m.onnx")
    model = load_model(path)
    assert model.card.name == "t"
    crops = np.random.default_rng(0).integers(0, 256, (5, s, s, 3), dtype=np.uint8)
    with torch.no_grad():
        ref = wrapped(torch.from_numpy(crops).permute(0, 3, 1, 2).float()).numpy()
    assert np.abs(model.predict(crops) - ref).max() < 1e-4
    assert (tmp_path / "m.json").exists()
    assert not list(tmp_path.glob("*.tmp"))


def test_update_card_rewrites_both_copies(tmp_path: Path) -> None:
    import json

    from tcnn.card import update_card

    torch.manual_seed(0)
    wrapped = InferenceNet(VanillaCNN(VanillaArch()), None, (0, 0)).eval()
    card = ModelCard(name="t", points=5, input_size=40, crop=Crop(scale=1.0), metrics={})
    path = export_model(wrapped, card, tmp_path / "m.onnx")
    update_card(path, metrics={"mean": 0.05})
    assert load_model(path).card.metrics == {"mean": 0.05}
    assert json.loads((tmp_path / "m.json").read_text())["metrics"] == {"mean": 0.05}
