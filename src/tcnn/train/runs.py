"""A run folder's checkpoint: written each epoch, read back to resume, tweak or export.

A checkpoint is self-describing: besides the weights and the optimiser state it holds the
architecture arguments (``arch``, and ``tweak`` + ``router`` for a Tweaked CNN), the configs
that made it (``config``, ``tweak_config``) and what was learned about the data (``data``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tcnn.errors import TcnnError
from tcnn.files import atomic_path
from tcnn.train.config import TrainConfig
from tcnn.train.models.tweaked import TweakArch, TweakedCNN, make_router
from tcnn.train.models.vanilla import VanillaArch, VanillaCNN


def start_run(run: Path, resume: bool) -> None:
    """Refuse to overwrite a finished or running run unless resuming."""
    if (run / "checkpoint.pt").exists() and not resume:
        raise TcnnError(f"{run}: already holds a run (use --resume, or another --set name=)")
    run.mkdir(parents=True, exist_ok=True)


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` with ``torch.save``, atomically."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def config_of(state: dict[str, Any]) -> TrainConfig:
    """The training config saved in a checkpoint (the base's, for a Tweaked CNN)."""
    return TrainConfig.from_saved(state["config"])


def load_checkpoint(path: str | Path) -> tuple[Any, dict[str, Any]]:
    """Rebuild the network of a checkpoint (Vanilla or Tweaked) from its saved arguments.

    Args:
        path: ``checkpoint.pt`` or the run folder that holds it.

    Returns:
        The network in eval mode, and the whole saved state.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.exists():
        raise TcnnError(f"{path}: no such checkpoint")
    try:
        state = torch.load(path, weights_only=False, map_location="cpu")
        net: Any = VanillaCNN(VanillaArch.from_dict(state["arch"]))
    except Exception as exc:  # torch.load raises many types for a damaged file
        raise TcnnError(f"{path}: not a tcnn checkpoint ({type(exc).__name__})") from None
    if state.get("kind") == "tweaked":
        net = TweakedCNN(net, TweakArch(**state["tweak"]), make_router(state["router"]))
    net.load_state_dict(state["model"])
    net.eval()
    return net, state
