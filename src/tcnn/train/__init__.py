"""The training wing: torch networks, the training loop, export, tweak, calibration, quantization,
pseudo-labels and their teachers. The inference core never imports it."""
