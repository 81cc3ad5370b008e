"""The seed paper's Vanilla CNN, and a wider BatchNorm variant (PyTorch; training only).

Read top to bottom: ``VanillaCNN`` is the network, ``InferenceNet`` wraps a trained network
with the steps that run at inference (mirror averaging, the label-convention offset) so that
the exported ONNX graph is the whole model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class VanillaArch:
    """Architecture arguments, saved in every checkpoint.

    Attributes:
        points: landmarks predicted.
        input_size: side of the square input crop in pixels.
        channels: filters of Conv1-Conv4 (four values); with ``trunk="deep"`` or ``"strided"``
            five: Conv1, the two convolutions at a quarter of the input's area, the two at a
            sixteenth, and Conv4.
        hidden: width of FC5.
        activation: ``"abstanh"`` (the seed: abs(tanh), no normalisation), ``"bnrelu"``
            (BatchNorm then ReLU after every convolution and FC5) or ``"relu"`` (ReLU alone: a
            ``"bnrelu"`` network with its BatchNorm folded into the layers before it, as its
            ONNX export holds it; :func:`tcnn.train.loop.weights_from_onnx` restarts from that).
        trunk: ``"vanilla"`` (the seed's four convolutions) or ``"deep"`` (two 3x3
            convolutions where the seed has Conv2 and Conv3, Conv4 3x3: more depth at about the
            running cost of ``tcnn68i``'s seed-shaped trunk at the same input size, since its
            Conv1, the costliest layer to run, is narrower), or ``"strided"`` (the deep trunk
            with Conv1 at stride 2 in place of Conv1 and the max pooling after it, an identity
            where the pooling was: the same weights under the same names, so a deep run's
            checkpoint can start one, and a quarter of Conv1's work, which took a third of the
            deep trunk's int8 running time).
    """

    points: int = 5
    input_size: int = 40
    channels: tuple[int, ...] = (16, 48, 64, 64)
    hidden: int = 100
    activation: str = "abstanh"
    trunk: str = "vanilla"

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> VanillaArch:
        """Read :meth:`to_dict` (also checkpoints saved when ``activation`` was ``act``)."""
        d = dict(d)
        if "act" in d:
            d["activation"] = d.pop("act")
        d["channels"] = tuple(d["channels"])  # type: ignore[arg-type]
        return cls(**d)  # type: ignore[arg-type]


class AbsTanh(nn.Module):
    """``|tanh(x)|``, the seed's activation."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.abs(torch.tanh(x))


def _act(arch: VanillaArch, channels: int, conv: bool) -> list[nn.Module]:
    if arch.activation == "abstanh":
        return [AbsTanh()]
    if arch.activation == "bnrelu":
        return [nn.BatchNorm2d(channels) if conv else nn.BatchNorm1d(channels), nn.ReLU()]
    if arch.activation == "relu":
        return [nn.ReLU()]
    raise ValueError(f"unknown activation {arch.activation!r} (abstanh, bnrelu or relu)")


class VanillaCNN(nn.Module):
    """Conv1-Conv4 (the trunk) then FC5-FC6 (the head), as in METHOD.md.

    Input: ``[N, 3, S, S]`` float, RGB pixel values 0-255; the per-pixel mean and std images of
    the training crops are buffers and are applied inside. Output: ``[N, K, 2]`` landmark
    ``(x, y)`` in crop units centred on zero (``pixel / S - 0.5``).
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, arch: VanillaArch) -> None:
        super().__init__()
        self.arch = arch
        s = arch.input_size
        self.register_buffer("mean", torch.full((3, s, s), 127.5))
        self.register_buffer("std", torch.full((3, s, s), 64.0))
        self.trunk = make_trunk(arch)
        with torch.no_grad():
            features = self.trunk(torch.zeros(2, 3, s, s)).shape[1]
        self.features = int(features)
        self.head = make_head(arch, self.features)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The features that enter FC5: ``[N, F]`` (576 for the seed)."""
        return self.trunk(self.normalise(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x)).view(-1, self.arch.points, 2)


def make_trunk(arch: VanillaArch) -> nn.Sequential:
    """Conv1-Conv4 with their activations and pooling, flattened (see :class:`VanillaArch`)."""
    want = {"vanilla": 4, "deep": 5, "strided": 5}.get(arch.trunk)
    if want is None:
        raise ValueError(f"unknown trunk {arch.trunk!r} (vanilla, deep or strided)")
    if len(arch.channels) != want:
        raise ValueError(f"trunk {arch.trunk!r} takes {want} channel counts, not {arch.channels}")
    if arch.trunk == "vanilla":
        c1, c2, c3, c4 = arch.channels
        return nn.Sequential(
            nn.Conv2d(3, c1, 5, padding=2), *_act(arch, c1, True),
            nn.MaxPool2d(2, 2),
            nn.Conv2d(c1, c2, 3, padding=1), *_act(arch, c2, True),
            nn.MaxPool2d(2, 2),
            nn.Conv2d(c2, c3, 3, padding=0), *_act(arch, c3, True),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            nn.Conv2d(c3, c4, 2, padding=0), *_act(arch, c4, True),
            nn.Flatten(),
        )  # fmt: skip
    c1, c2, c3a, c3b, c4 = arch.channels
    first: list[nn.Module] = (
        [nn.Conv2d(3, c1, 5, padding=2), *_act(arch, c1, True), nn.MaxPool2d(2, 2)]
        if arch.trunk == "deep"
        else [nn.Conv2d(3, c1, 5, stride=2, padding=2), *_act(arch, c1, True), nn.Identity()]
    )
    return nn.Sequential(
        *first,
        nn.Conv2d(c1, c2, 3, padding=1), *_act(arch, c2, True),
        nn.Conv2d(c2, c2, 3, padding=1), *_act(arch, c2, True),
        nn.MaxPool2d(2, 2),
        nn.Conv2d(c2, c3a, 3, padding=0), *_act(arch, c3a, True),
        nn.Conv2d(c3a, c3b, 3, padding=0), *_act(arch, c3b, True),
        nn.MaxPool2d(2, 2),
        nn.Conv2d(c3b, c4, 3, padding=1), *_act(arch, c4, True),
        nn.Flatten(),
    )  # fmt: skip


def make_head(arch: VanillaArch, features: int) -> nn.Sequential:
    """FC5 (with its activation) and FC6."""
    return nn.Sequential(
        nn.Linear(features, arch.hidden),
        *_act(arch, arch.hidden, False),
        nn.Linear(arch.hidden, arch.points * 2),
    )


class InferenceNet(nn.Module):
    """A trained network plus what runs at inference, exported as one ONNX graph.

    Output: ``[N, K, 2]`` in crop units from 0 to 1 (``pixel / S``).

    Args:
        net: any module mapping ``[N, 3, S, S]`` to ``[N, K, 2]`` centred crop units.
        flip_perm: point permutation under a horizontal mirror; ``None`` disables mirror
            averaging (the prediction on the mirrored crop, mirrored back, averaged in).
        offset: ``[2]`` added to every point, in crop units (the label-convention correction).
    """

    def __init__(self, net: nn.Module, flip_perm: list[int] | None, offset: tuple[float, float]):
        super().__init__()
        self.net = net
        self.mirror = flip_perm is not None
        self.register_buffer("perm", torch.tensor(flip_perm or [0], dtype=torch.long))
        self.register_buffer("offset", torch.tensor(offset, dtype=torch.float32) + 0.5)
        self.register_buffer("sign", torch.tensor([-1.0, 1.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.mirror:
            return self.net(x) + self.offset
        # One pass over the crops and their mirror images together (better batching).
        n = x.shape[0]
        both = self.net(torch.cat([x, torch.flip(x, dims=[3])], dim=0))
        y, m = both[:n], both[n:][:, self.perm]
        return (y + m * self.sign) / 2 + self.offset


@torch.no_grad()
def predict_crops(net: nn.Module, crops: torch.Tensor, batch: int = 512) -> torch.Tensor:
    """Run ``net`` over ``[N, 3, S, S]`` inputs ``batch`` at a time, in eval mode.

    Returns whatever ``net`` returns, concatenated over the batches (``[N, ...]``); the
    network's training mode is restored afterwards.
    """
    was = net.training
    net.eval()
    out = torch.cat([net(crops[i : i + batch]) for i in range(0, len(crops), batch)])
    net.train(was)
    return out
