"""Headline benchmarks: accuracy and speed of the shipped models and apps."""
