"""Benchmarks and analyses of AiluRus models (behind tools/benchmark.py,
tools/visualize.py, tools/sweep.py and the demo)."""
from .benchmark import format_table, run_benchmark
from .variants import IdealReducerViT, build_variants, variant_model_cfgs

__all__ = [
    'run_benchmark', 'format_table', 'build_variants', 'variant_model_cfgs',
    'IdealReducerViT'
]
