"""Benchmarks the project owns: their data, models and training."""
