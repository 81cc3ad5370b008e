"""tcnn: facial landmark detection with Tweaked CNNs (5 and 68 points, offline)."""

from tcnn.align import align_face
from tcnn.errors import TcnnError
from tcnn.pipeline import Pipeline
from tcnn.predictor import LandmarkDetector
from tcnn.registry import ModelInfo, list_models, load_model
from tcnn.types import Box, Face

#: The package's version: pyproject.toml reads it from here (``dynamic = ["version"]``).
__version__ = "0.1.0"

__all__ = [
    "Box",
    "Face",
    "LandmarkDetector",
    "ModelInfo",
    "Pipeline",
    "TcnnError",
    "__version__",
    "align_face",
    "list_models",
    "load_model",
]
