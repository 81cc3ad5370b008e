"""Datasets: readers and the named datasets, pseudo-labels and their teachers, the training
samples and their augmentation."""
