"""The accuracy benchmark on the synthetic proxy (see README, "Accuracy"):
``python tools/accuracy_benchmark.py --out-dir work_dirs/accuracy``."""
from ailurus_mm.analysis.accuracy import accuracy_main

if __name__ == '__main__':
    accuracy_main()
