"""Cluster map, resolution map and vanilla vs AiluRus predictions:
``python tools/visualize.py CONFIG CHECKPOINT IMAGE... --out-dir D``."""
from ailurus_mm.benchmarks.quiet import quiet_upstream_warnings

quiet_upstream_warnings()  # before the mm stack is imported
from ailurus_mm.benchmarks.cli import visualize_main, entry  # noqa: E402

if __name__ == '__main__':
    entry(visualize_main)
