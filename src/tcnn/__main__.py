"""``python -m tcnn``."""

from tcnn.cli import entry

entry()
