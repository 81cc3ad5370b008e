"""tcnn: facial landmark detection with Tweaked CNNs (5 and 68 points, offline)."""

from tcnn.predictor import LandmarkDetector
from tcnn.registry import list_models, load_model
from tcnn.types import Box, Face

__version__ = "0.1.0"
__all__ = ["Box", "Face", "LandmarkDetector", "__version__", "list_models", "load_model"]
