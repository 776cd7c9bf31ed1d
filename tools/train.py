"""Train an mmseg or mmdet model: ``python tools/train.py CONFIG [flags]``.

The flags are mmseg's/mmdet's (--work-dir, --resume, --amp, --cfg-options,
--launcher). Distributed: ``torchrun --nproc_per_node=N tools/train.py CONFIG
--launcher pytorch``.
"""
from ailurus_mm.apis.runner import train

if __name__ == '__main__':
    train()
