"""mIoU vs images/s over AiluRus settings, with the vanilla point:
``python tools/sweep.py CONFIG CHECKPOINT --num-clusters 0.25 0.5
[--reducers ...] [--prop-attn off on] [--cluster-layer ...]``."""
from ailurus_mm.benchmarks.cli import sweep_main, entry

if __name__ == '__main__':
    entry(sweep_main)
