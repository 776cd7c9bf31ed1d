"""Cluster map, resolution map and vanilla vs AiluRus predictions:
``python tools/visualize.py CONFIG CHECKPOINT IMAGE... --out-dir D``."""
from ailurus_mm.benchmarks.cli import visualize_main, entry

if __name__ == '__main__':
    entry(visualize_main)
