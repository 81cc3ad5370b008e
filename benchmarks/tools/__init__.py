"""Shared helpers, profilers, synthetic data, fuzzing and the cards updater."""
