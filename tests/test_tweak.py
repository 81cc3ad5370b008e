from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from sklearn.mixture import GaussianMixture  # noqa: E402

from tcnn.card import Crop, ModelCard  # noqa: E402
from tcnn.registry import load_model  # noqa: E402
from tcnn.train.config import TweakConfig, load_config  # noqa: E402
from tcnn.train.export import export_model  # noqa: E402
from tcnn.train.models.tweaked import TweakArch, TweakedCNN, make_router  # noqa: E402
from tcnn.train.models.vanilla import InferenceNet, VanillaArch, VanillaCNN  # noqa: E402
from tcnn.train.tweak import fit_router  # noqa: E402


@pytest.mark.slow
@pytest.mark.parametrize(("covariance", "pca_dim"), [("diag", 0), ("full", 6), ("diag", 6)])
def test_router_posteriors_equal_sklearn(covariance: str, pca_dim: int) -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(m, 1.0, (200, 20)) for m in (-2, 0, 3)])
    cfg = TweakConfig(k=3, covariance=covariance, pca_dim=pca_dim)
    router = make_router(fit_router(x, cfg))
    with torch.no_grad():
        post = router(torch.from_numpy(x).float()).numpy()
    # The same mixture refitted by scikit-learn directly (same seed) gives the same posterior.
    xs = x
    if pca_dim:
        from sklearn.decomposition import PCA

        xs = PCA(pca_dim, random_state=0).fit_transform(x)
    gmm = GaussianMixture(
        3, covariance_type=covariance, reg_covar=1e-4, random_state=0, max_iter=300
    ).fit(xs)
    assert np.abs(post - gmm.predict_proba(xs)).max() < 1e-3


def _tweaked(k: int, soft: bool) -> tuple[TweakedCNN, np.ndarray]:
    torch.manual_seed(0)
    base = VanillaCNN(VanillaArch()).eval()
    crops = torch.rand(64, 3, 40, 40) * 255
    with torch.no_grad():
        feats = base.embed(crops).numpy()
    router = make_router(fit_router(feats, TweakConfig(k=k, pca_dim=8)))
    net = TweakedCNN(base, TweakArch(k=k, pca_dim=8, soft=soft), router).eval()
    # Give each head a recognisable constant output: head c predicts every coordinate = c.
    for c, head in enumerate(net.heads):
        torch.nn.init.zeros_(head[-1].weight)
        torch.nn.init.constant_(head[-1].bias, float(c))
    return net, crops.numpy()


def test_face_goes_to_the_head_of_its_cluster() -> None:
    net, crops = _tweaked(4, soft=False)
    x = torch.from_numpy(crops)
    with torch.no_grad():
        clusters = net.routing(x)[1].argmax(1)
        out = net(x)
    assert len(set(clusters.tolist())) > 1  # the random faces fall in several clusters
    assert torch.equal(out[:, 0, 0], clusters.float())


@pytest.mark.slow
@pytest.mark.parametrize("soft", [False, True])
def test_onnx_routing_matches_pytorch(tmp_path: Path, soft: bool) -> None:
    net, crops = _tweaked(4, soft)
    wrapped = InferenceNet(net, None, (0.0, 0.0)).eval()
    card = ModelCard(name="tw", points=5, input_size=40, crop=Crop(scale=1.0))
    model = load_model(export_model(wrapped, card, tmp_path / "tw.onnx"))
    got = model.predict(crops.transpose(0, 2, 3, 1).astype(np.uint8))
    with torch.no_grad():
        ref = wrapped(torch.from_numpy(crops.astype(np.uint8).astype(np.float32))).numpy()
    assert np.abs(got - ref).max() < 1e-4
    if not soft:  # the branch chosen: the head index, shifted by the 0.5 of crop units
        assert np.array_equal(np.round(got[:, 0, 0] - 0.5), np.round(ref[:, 0, 0] - 0.5))


@pytest.mark.slow
def test_tweak_small_slice(tmp_path: Path, shared_root: Path) -> None:
    from tcnn.train.loop import train
    from tcnn.train.tweak import cluster_sheet, tweak

    base = train(
        load_config(
            None, ["limit=160", "epochs=1", "threads=1", "name=b", f"data_root={shared_root}"]
        ),
        tmp_path / "b",
        progress=False,
    )
    cfg = load_config(None, [f"base={base}", "k=2", "epochs=1", "threads=1"], default=TweakConfig())
    run = tweak(cfg, tmp_path / "t", progress=False)
    model = load_model(run / "model.onnx")
    assert model.card.architecture["tweak"]["k"] == 2
    assert sum(model.card.training["cluster_sizes"]) == 152
    assert cluster_sheet(run, tmp_path / "c.png", progress=False).stat().st_size > 1000
