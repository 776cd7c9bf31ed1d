"""The accuracy benchmark (README, "Accuracy"):
``python tools/accuracy_benchmark.py --dataset camvid --data-root
../shared/camvid --out-dir work_dirs/accuracy_camvid``."""
if __name__ == '__main__':
    # The mm stack is imported here only: a spawned grid process imports
    # this file as its main module, and must start light (parallel.py).
    from ailurus_mm.benchmarks.quiet import quiet_upstream_warnings

    quiet_upstream_warnings()  # before the mm stack is imported
    from ailurus_mm.benchmarks.cli import accuracy_main, entry

    entry(accuracy_main)
