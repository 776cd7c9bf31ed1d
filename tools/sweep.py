"""mIoU vs images/s over AiluRus settings, with the vanilla point:
``python tools/sweep.py CONFIG CHECKPOINT --num-clusters 0.25 0.5
[--reducers ...] [--prop-attn off on] [--cluster-layer ...]``."""
from ailurus_mm.benchmarks.quiet import quiet_upstream_warnings

quiet_upstream_warnings()  # before the mm stack is imported
from ailurus_mm.benchmarks.cli import sweep_main, entry  # noqa: E402

if __name__ == '__main__':
    entry(sweep_main)
