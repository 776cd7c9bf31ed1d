"""Synthetic data for tests, the demo and examples (no downloads needed)."""
from .synthetic import make_ade20k, synthetic_scene

__all__ = ['synthetic_scene', 'make_ade20k']
