"""The public API: what ``import tcnn`` gives, the shipped-model records, the one version."""

import dataclasses
import importlib.metadata
import tomllib
from pathlib import Path

import pytest

import tcnn
from tcnn.registry import DEFAULTS, WEIGHTS

ROOT = Path(__file__).resolve().parent.parent


def test_the_names_the_readme_teaches_come_from_tcnn() -> None:
    from tcnn.align import align_face
    from tcnn.errors import TcnnError
    from tcnn.pipeline import Pipeline
    from tcnn.predictor import LandmarkDetector

    assert tcnn.align_face is align_face
    assert tcnn.Pipeline is Pipeline
    assert tcnn.TcnnError is TcnnError
    assert tcnn.LandmarkDetector is LandmarkDetector
    for name in tcnn.__all__:
        assert getattr(tcnn, name) is not None, name


def test_list_models_gives_typed_records() -> None:
    models = tcnn.list_models()
    assert sorted(m.name for m in models) == sorted(p.stem for p in WEIGHTS.glob("*.onnx"))
    assert all(isinstance(m, tcnn.ModelInfo) for m in models)
    assert {m.points: m.name for m in models if m.default} == DEFAULTS
    first = models[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.name = "other"  # type: ignore[misc]
    assert list(first.to_dict()) == ["name", "points", "default", "size_kb", "purpose", "metrics"]
    assert first.size_kb == round((WEIGHTS / f"{first.name}.onnx").stat().st_size / 1024)
    assert tcnn.load_model(first.name).card.points == first.points


def test_the_version_is_written_once() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert tcnn.__version__ == importlib.metadata.version("tcnn")
