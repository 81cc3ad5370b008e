"""``python -m tcnn``."""

from tcnn.apps.cli import entry

entry()
