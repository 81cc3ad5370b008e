"""The README and docs figures."""
