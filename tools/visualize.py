"""Cluster map, resolution map and vanilla vs AiluRus predictions.

    python tools/visualize.py CONFIG CHECKPOINT IMAGE... --out-dir D
"""
from ailurus_mm.analysis.cli import visualize_main

if __name__ == '__main__':
    visualize_main()
