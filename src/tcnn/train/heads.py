"""Head fine-tuning on an exported model: FC5-FC6 retrained with the convolutions frozen.

The trunk is the model's own ONNX graph (no training run or checkpoint needed): it is run once
over the training faces and the features entering FC5 are kept in memory. A head is then a
copy of the graph's FC5-FC6 (FC5's BatchNorm folded in) trained on those cached features, K
copies when the faces are routed to K clusters (the Tweaked CNN, :mod:`tcnn.train.tweak`'s
mixture), one for the K = 1 control.

:func:`tune_head` is the recipe of the shipped ``tcnn68`` (step 3 of its card: one head, seed
0, 3 epochs), run by ``tcnn tweak-head MODEL -o OUT.onnx``: it writes the model with the tuned
head in place of FC5-FC6 and records the step in its card. ``benchmarks/studies/tweak68.py``
measures K = 1, 4, 8 and 16 with the same functions.

Training faces: those of the model's training config (by default the one in its card), each
as its un-augmented crop, its mirror, and ``passes`` crops jittered by the config's
augmentation; the held-out validation faces of that config are reported, never trained on.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tcnn.errors import TcnnError
from tcnn.schemes import Scheme, scheme_for
from tcnn.train.config import TrainConfig, TweakConfig
from tcnn.train.data.augment import CropSet, augment_batch
from tcnn.train.data.samples import prepare
from tcnn.train.loop import normalised_loss
from tcnn.train.models.tweaked import make_router
from tcnn.train.tweak import fit_router

#: Soft routing drops posterior weights below this (a face's head outputs mix the rest).
MIN_WEIGHT = 1e-3
#: Largest difference (crop units) allowed between a graph and the same heads run in torch.
TOLERANCE = 1e-4

Router = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class HeadRecipe:
    """How the heads are trained on the cached features (AdamW, cosine decay to 0).

    Attributes:
        epochs: passes over the cached features (0: the heads stay the model's own).
        lr: AdamW's learning rate at the start.
        batch: faces a step.
        passes: jittered crops per training face, beside its un-augmented crop and mirror.
        weight_decay: AdamW's weight decay.
    """

    epochs: int = 3
    lr: float = 1e-4
    batch: int = 256
    passes: int = 1
    weight_decay: float = 1e-4

    def describe(self) -> str:
        """The optimiser in words, as the card records it."""
        return (
            f"AdamW, lr {self.lr:g}, weight decay {self.weight_decay:g}, cosine, batch {self.batch}"
        )


class Trunk:
    """A tcnn landmark model's ONNX graph with the features entering FC5 as a second output.

    Holds the graph's head (FC5 with its BatchNorm folded in, FC6) and its mirror-averaging
    constants, so that :meth:`combine` turns head outputs into the model's crop units.
    """

    def __init__(self, path: str | Path) -> None:
        import onnx
        import onnxruntime as ort
        from onnx import numpy_helper

        self.path = Path(path)
        graph = onnx.load(str(self.path))
        init = {i.name: numpy_helper.to_array(i) for i in graph.graph.initializer}
        gemms = [n for n in graph.graph.node if n.op_type == "Gemm"]
        if len(gemms) != 2 or not {"perm", "sign", "offset"} <= init.keys():
            raise TcnnError(f"{self.path}: not a tcnn Vanilla CNN graph (two Gemm layers)")
        bn = next((n for n in graph.graph.node if n.op_type == "BatchNormalization"), None)
        self.feature_name = gemms[0].input[0]
        graph.graph.output.append(
            onnx.helper.make_tensor_value_info(self.feature_name, onnx.TensorProto.FLOAT, None)
        )
        self.session = ort.InferenceSession(
            graph.SerializeToString(), providers=["CPUExecutionProvider"]
        )
        self.input = self.session.get_inputs()[0].name
        w1, b1 = init[gemms[0].input[1]], init[gemms[0].input[2]]
        if bn is None:  # a "relu" model (tcnn68h): FC5 has no BatchNorm of its own
            hidden = len(b1)
            gamma, beta, mu, var = (np.full(hidden, v, np.float32) for v in (1.0, 0.0, 0.0, 1.0))
            eps = 0.0
        else:
            gamma, beta, mu, var = (init[name] for name in bn.input[1:5])
            eps = next((a.f for a in bn.attribute if a.name == "epsilon"), 1e-5)
        g = gamma / np.sqrt(var + eps)
        self.fc5 = (w1 * g[:, None], (b1 - mu) * g + beta)
        self.fc6 = (init[gemms[1].input[1]], init[gemms[1].input[2]])
        self.perm, self.sign, self.offset = init["perm"], init["sign"], init["offset"]
        if "calibration" in init:  # tcnn.train.calibrate's per-point offsets, added last
            self.offset = self.offset + init["calibration"][0]
        self.scheme: Scheme = scheme_for(len(self.perm))
        self._names = (gemms[0].input[1:3], gemms[1].input[1:3])
        self._bn = (gamma, beta, mu, var, eps)

    def outputs_and_features(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Model output ``[N, K, 2]`` (crop units) and FC5 features ``[N, F]`` of the crops
        ``x`` and of their mirrors."""
        out, feats = self.session.run(None, {self.input: x.astype(np.float32)})
        n = len(x)
        return out.reshape(n, -1, 2), feats[:n], feats[n:]

    def combine(self, direct: torch.Tensor, mirrored: torch.Tensor) -> torch.Tensor:
        """The model's mirror average of head outputs (centred units), in crop units 0-1."""
        perm = torch.from_numpy(self.perm.astype(np.int64))
        m = mirrored.view(len(mirrored), -1, 2)[:, perm] * torch.from_numpy(self.sign.copy())
        return (direct.view(len(direct), -1, 2) + m) / 2 + torch.from_numpy(self.offset.copy())

    def with_head(self, heads: Heads) -> bytes:
        """The graph with one head (K = 1) in place of FC5-FC6, serialised; metadata kept.

        FC5's BatchNorm stays in the graph: the head's folded FC5 is unfolded into the Gemm
        so that BatchNorm(Gemm(x)) equals it.
        """
        import onnx
        from onnx import numpy_helper

        if len(heads.w1) != 1:
            raise TcnnError(f"only a single head exports (K = 1), not K = {len(heads.w1)}")
        graph = onnx.load(str(self.path))
        init = {i.name: i for i in graph.graph.initializer}
        (w5, b5), (w6, b6) = self._names
        gamma, beta, mu, var, eps = self._bn
        g = (gamma / np.sqrt(var + eps)).astype(np.float64)
        with torch.no_grad():
            w1, b1 = heads.w1[0].double().numpy().T, heads.b1[0].double().numpy()
            w2, b2 = heads.w2[0].numpy().T, heads.b2[0].numpy()
        new = {w5: w1 / g[:, None], b5: (b1 - beta) / g + mu, w6: w2, b6: b2}
        for name, value in new.items():
            init[name].CopyFrom(numpy_helper.from_array(value.astype(np.float32), name))
        return bytes(graph.SerializeToString())


class Heads(torch.nn.Module):
    """K copies of a trunk's FC5-FC6, run as batched matrix products."""

    def __init__(self, trunk: Trunk, k: int) -> None:
        super().__init__()

        def stack(a: np.ndarray) -> torch.nn.Parameter:
            return torch.nn.Parameter(torch.from_numpy(np.stack([a] * k)).float())

        self.w1, self.b1 = stack(trunk.fc5[0].T), stack(trunk.fc5[1])
        self.w2, self.b2 = stack(trunk.fc6[0].T), stack(trunk.fc6[1])

    def forward(self, f: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """Head outputs ``[N, 2K]`` of features ``[N, F]`` mixed by weights ``[N, K]``.

        Weights under :data:`MIN_WEIGHT` count as zero. Every head runs on every face, as one
        batched product: indexing each head's faces instead costs more, since the backward
        pass of each head's slice of the stacked weights writes a gradient of all K heads.
        """
        h = torch.relu(torch.einsum("nf,kfh->knh", f, self.w1) + self.b1[:, None])
        out = torch.baddbmm(self.b2[:, None], h, self.w2)  # [K, N, 2 points]
        return torch.einsum("nk,kno->no", w * (w > MIN_WEIGHT), out)


def one_head(f: torch.Tensor) -> torch.Tensor:
    """The router of a single head: every face to it (posteriors ``[N, 1]`` of ones)."""
    return torch.ones(len(f), 1)


def routing_weights(post: torch.Tensor, soft: bool) -> torch.Tensor:
    """Posteriors ``[N, K]`` as head weights: themselves (soft) or one-hot (hard)."""
    if soft:
        return post
    return torch.nn.functional.one_hot(post.argmax(1), post.shape[1]).float()


@dataclass
class TrainFeatures:
    """The cached training features.

    Attributes:
        features: ``[M, F]`` float16, FC5 inputs of every crop (centre, mirror, jittered).
        targets: ``[M, K, 2]`` the crops' labels, centred crop units.
        centre: ``[N, F]`` the un-augmented crops' features (what the mixture is fitted on).
    """

    features: np.ndarray
    targets: np.ndarray
    centre: np.ndarray


@dataclass
class ValFeatures:
    """The held-out validation faces' un-augmented crops ``x [N, 3, S, S]``, their features
    and their mirrors' (``[N, F]``), the model's output ``onnx [N, K, 2]`` (crop units) and
    labels ``targets [N, K, 2]`` (centred crop units)."""

    x: np.ndarray
    direct: np.ndarray
    mirrored: np.ndarray
    onnx: np.ndarray
    targets: np.ndarray


def training_features(
    trunk: Trunk, cfg: TrainConfig, passes: int, progress: bool = True, batch: int = 512
) -> tuple[TrainFeatures, ValFeatures]:
    """Run the trunk once over ``cfg``'s training faces (jittered with seed 0) and
    validation faces."""
    from tqdm import tqdm

    train_set, val_set, _ = prepare(cfg, progress)
    perm = torch.from_numpy(trunk.scheme.flip_permutation())
    gen = torch.Generator().manual_seed(0)
    feats, targets, centre = [], [], []
    n = len(train_set)
    for p in range(passes + 1):
        steps = tqdm(
            range(0, n, batch), desc=f"features, pass {p}", unit="batch", disable=not progress
        )
        for i in steps:
            images, points = train_set.images[i : i + batch], train_set.points[i : i + batch]
            if p == 0:  # the centre crop and its mirror
                x = CropSet(images, points).centre()
                _, direct, mirrored = trunk.outputs_and_features(x.numpy())
                flipped = points[:, perm] * torch.tensor([-1.0, 1.0])
                feats += [direct, mirrored]
                targets += [points.numpy(), flipped.numpy()]
                centre.append(direct)
            else:
                x, y = augment_batch(images, points, perm, cfg.augment, gen)
                _, direct, _ = trunk.outputs_and_features(x.numpy())
                feats.append(direct)
                targets.append(y.numpy())
    val_x = val_set.centre().numpy()
    val_out, val_direct, val_mirrored = trunk.outputs_and_features(val_x)
    train = TrainFeatures(
        np.concatenate(feats).astype(np.float16), np.concatenate(targets), np.concatenate(centre)
    )
    val = ValFeatures(val_x, val_direct, val_mirrored, val_out, val_set.points.numpy())
    return train, val


def fit_heads(
    trunk: Trunk, train: TrainFeatures, k: int, soft: bool, seed: int, recipe: HeadRecipe
) -> tuple[Heads, Router, list[int]]:
    """Fit the mixture router (K clusters of the centre features) and fine-tune its heads.

    Returns:
        The heads, the router (features ``[N, F]`` to posteriors ``[N, K]``), and the
        training features routed to each cluster ``[K]``.
    """
    torch.manual_seed(seed)
    router = make_router(fit_router(train.centre.astype(np.float64), TweakConfig(k=k, seed=seed)))
    feats = torch.from_numpy(train.features)
    targets = torch.from_numpy(train.targets)
    with torch.no_grad():
        post = torch.cat([router(feats[i : i + 8192].float()) for i in range(0, len(feats), 8192)])
    weights = routing_weights(post, soft)
    sizes = np.bincount(post.argmax(1).numpy(), minlength=k).tolist()
    heads = Heads(trunk, k)
    opt = torch.optim.AdamW(heads.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    steps = recipe.epochs * math.ceil(len(feats) / recipe.batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(recipe.epochs):
        order = torch.randperm(len(feats), generator=gen)
        for i in range(0, len(order), recipe.batch):
            idx = order[i : i + recipe.batch]
            out = heads(feats[idx].float(), weights[idx])
            loss = normalised_loss(out.view(len(idx), -1, 2), targets[idx], trunk.scheme)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return heads.eval(), router, sizes


def tweaked_units(
    trunk: Trunk,
    heads: Heads,
    router: Router,
    soft: bool,
    direct: np.ndarray,
    mirrored: np.ndarray,
) -> torch.Tensor:
    """Crop units ``[N, K, 2]`` of the routed heads on the features of crops and of their
    mirrors (``[N, F]`` each)."""
    d, m = torch.from_numpy(direct), torch.from_numpy(mirrored)
    pd = heads(d, routing_weights(router(d), soft))
    pm = heads(m, routing_weights(router(m), soft))
    return trunk.combine(pd, pm)


def base_check(trunk: Trunk, val: ValFeatures) -> float:
    """Largest difference between the graph's output and its own heads run here (crop units)."""
    with torch.no_grad():
        units = tweaked_units(trunk, Heads(trunk, 1), one_head, False, val.direct, val.mirrored)
    return float(np.abs(units.numpy() - val.onnx).max())


def val_error(trunk: Trunk, heads: Heads, router: Router, soft: bool, val: ValFeatures) -> float:
    """Mean error on the held-out validation faces (the scheme's normaliser)."""
    with torch.no_grad():
        units = tweaked_units(trunk, heads, router, soft, val.direct, val.mirrored) - 0.5
        return float(normalised_loss(units, torch.from_numpy(val.targets), trunk.scheme))


def model_config(model: str | Path, config: str | Path | None = None) -> TrainConfig:
    """The training config at ``config`` (a TOML file), or else the one in the model's card."""
    from tcnn.card import read_card
    from tcnn.registry import resolve
    from tcnn.train.config import load_config

    if config is not None:
        return load_config(config)
    saved = read_card(resolve(str(model))).training.get("config")
    if not isinstance(saved, dict):
        raise TcnnError(f"{model}: its card names no training config; pass --config")
    return TrainConfig.from_saved(saved)


def tune_head(
    model: str | Path,
    out: str | Path,
    config: str | Path | None = None,
    name: str = "",
    recipe: HeadRecipe | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Fine-tune one FC5-FC6 head of ``model`` (seed 0) and write the model with it to ``out``.

    The card of ``out`` is the model's, renamed ``name`` when given, with the step in its
    ``training``: ``head_fine_tune`` (the recipe, the command, the base graph's digest, the
    validation error before and after) and one more entry in ``steps`` when it has them.

    Args:
        model: a shipped model's name or a tcnn ONNX file (a Vanilla CNN graph).
        config: TOML of the training faces' config (default: the training config in the
            model's card).
        recipe: how the head is trained (default :class:`HeadRecipe`, the shipped tcnn68's).

    Returns:
        The card's new ``training.head_fine_tune`` entry (``val_before``/``val_after``: mean
        error on the config's held-out validation faces).

    Raises:
        TcnnError: not a tcnn Vanilla CNN graph, or the heads run in torch or the written
            graph do not reproduce the model (nothing is written then).
    """
    from tcnn.card import check_unstaggered, graph_digest, read_card, update_card
    from tcnn.files import atomic_path
    from tcnn.registry import resolve

    recipe = recipe or HeadRecipe()
    path = resolve(str(model))
    check_unstaggered(read_card(path), path, "tweak-head")
    cfg = model_config(path, config)
    torch.set_num_threads(cfg.threads)
    trunk = Trunk(path)
    train, val = training_features(trunk, cfg, recipe.passes, progress)
    check = base_check(trunk, val)
    if check > TOLERANCE:
        raise TcnnError(f"{path}: its heads run in torch differ from the graph by {check:.2e}")
    before = val_error(trunk, Heads(trunk, 1), one_head, False, val)
    heads, router, _ = fit_heads(trunk, train, 1, False, 0, recipe)
    after = val_error(trunk, heads, router, False, val)
    with torch.no_grad():
        want = tweaked_units(trunk, heads, router, False, val.direct, val.mirrored).numpy()
    out = Path(out)
    with atomic_path(out) as tmp:
        tmp.write_bytes(trunk.with_head(heads))
        diff = float(np.abs(Trunk(tmp).outputs_and_features(val.x)[0] - want).max())
        if diff > TOLERANCE:
            raise TcnnError(f"the written graph differs from the tuned head by {diff:.2e}")
    command = tweak_head_command(model, out, config, name, recipe)
    note: dict[str, Any] = {
        "what": "FC5-FC6 fine-tuned with the convolutional layers frozen (the Tweaked CNN's "
        "K = 1 control, seed 0): tcnn tweak-head (tcnn.train.heads)",
        "command": command,
        "base_graph_sha256": graph_digest(path),
        "features": len(train.features),
        "faces": f"each training face, its mirror and {recipe.passes} jittered crop(s) "
        "(the config's augmentation)",
        "epochs": recipe.epochs,
        "optimiser": recipe.describe(),
        "val_before": round(before, 5),
        "val_after": round(after, 5),
    }
    card = read_card(out)
    training = {**card.training, "head_fine_tune": note}
    steps = training.get("steps")
    if isinstance(steps, list):
        training["steps"] = [*steps, f"{len(steps) + 1}: {command}"]
    update_card(out, training=training, **({"name": name} if name else {}))
    return note


def tweak_head_command(
    model: str | Path, out: Path, config: str | Path | None, name: str, recipe: HeadRecipe
) -> str:
    """The ``tcnn tweak-head`` command line that these arguments stand for."""
    words = ["tcnn", "tweak-head", str(model)]
    if config is not None:
        words += ["--config", str(config)]
    for key, value in vars(recipe).items():
        if value != getattr(HeadRecipe, key):
            words += [f"--{key.replace('_', '-')}", f"{value:g}"]
    words += ["-o", str(out)] + (["--name", name] if name else [])
    return shlex.join(words)
