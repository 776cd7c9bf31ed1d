"""Benchmarks and analyses of AiluRus models (behind tools/benchmark.py,
tools/visualize.py, tools/sweep.py and the demo)."""
from .benchmark import BenchmarkReport, run_benchmark, time_predictions
from .report import format_table
from .variants import IdealReducerViT, build_variants, variant_model_cfgs

__all__ = [
    'run_benchmark', 'time_predictions', 'BenchmarkReport', 'format_table',
    'build_variants', 'variant_model_cfgs', 'IdealReducerViT'
]
