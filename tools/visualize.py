"""Cluster map, resolution map and vanilla vs AiluRus predictions:
``python tools/visualize.py CONFIG CHECKPOINT IMAGE... --out-dir D``."""
if __name__ == '__main__':
    # The mm stack is imported here only: a spawned grid process imports
    # this file as its main module, and must start light (parallel.py).
    from ailurus_mm.benchmarks.quiet import quiet_upstream_warnings

    quiet_upstream_warnings()  # before the mm stack is imported
    from ailurus_mm.benchmarks.cli import visualize_main, entry

    entry(visualize_main)
