"""mIoU vs images/s over AiluRus settings, with the vanilla point.

    python tools/sweep.py CONFIG CHECKPOINT --num-clusters 0.2 0.35 0.5 0.65 \
        0.8 [--cluster-layer 1 3] [--out-dir sweep]
"""
from ailurus_mm.analysis.cli import sweep_main

if __name__ == '__main__':
    sweep_main()
