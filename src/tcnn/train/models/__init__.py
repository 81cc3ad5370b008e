"""Network definitions (PyTorch, for training) and the registry of shipped models."""
