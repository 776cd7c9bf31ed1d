"""Vanilla vs AiluRus speed of one model, measured in one process:
``python tools/benchmark.py CONFIG [--checkpoint C] [--shape H W]
[--mode infer|train] [--threads N] [--out report.json]``."""
from ailurus_mm.benchmarks.quiet import quiet_upstream_warnings

quiet_upstream_warnings()  # before the mm stack is imported
from ailurus_mm.benchmarks.cli import benchmark_main, entry  # noqa: E402

if __name__ == '__main__':
    entry(benchmark_main)
