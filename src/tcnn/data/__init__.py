"""Dataset readers, dataset loading with face boxes, and augmentation."""
