"""mIoU vs images/s over AiluRus settings, with the vanilla point:
``python tools/sweep.py CONFIG CHECKPOINT --num-clusters 0.25 0.5
[--reducers ...] [--prop-attn off on] [--cluster-layer ...]``."""
if __name__ == '__main__':
    # The mm stack is imported here only: a spawned grid process imports
    # this file as its main module, and must start light (parallel.py).
    from ailurus_mm.benchmarks.quiet import quiet_upstream_warnings

    quiet_upstream_warnings()  # before the mm stack is imported
    from ailurus_mm.benchmarks.cli import sweep_main, entry

    entry(sweep_main)
