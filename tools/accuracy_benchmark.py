"""The accuracy benchmark (README, "Accuracy"):
``python tools/accuracy_benchmark.py --dataset camvid --data-root
../shared/camvid --out-dir work_dirs/accuracy_camvid``."""
from ailurus_mm.benchmarks.quiet import quiet_upstream_warnings

quiet_upstream_warnings()  # before the mm stack is imported
from ailurus_mm.benchmarks.cli import accuracy_main, entry  # noqa: E402

if __name__ == '__main__':
    entry(accuracy_main)
