"""Vanilla vs AiluRus speed of one model, measured in one process:
``python tools/benchmark.py CONFIG [--checkpoint C] [--shape H W]
[--mode infer|train] [--threads N] [--out report.json]``."""
if __name__ == '__main__':
    # The mm stack is imported here only: a spawned grid process imports
    # this file as its main module, and must start light (parallel.py).
    from ailurus_mm.benchmarks.quiet import quiet_upstream_warnings

    quiet_upstream_warnings()  # before the mm stack is imported
    from ailurus_mm.benchmarks.cli import benchmark_main, entry

    entry(benchmark_main)
