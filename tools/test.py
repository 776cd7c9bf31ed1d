"""Evaluate a checkpoint: ``python tools/test.py CONFIG CHECKPOINT [flags]``.

``--no-finetune`` evaluates a vanilla mmseg/mmdet checkpoint with AiluRus as
is. Other flags are mmseg's/mmdet's (--work-dir, --out, --show-dir, --tta,
--cfg-options, --launcher).
"""
from ailurus_mm.apis.runner import test

if __name__ == '__main__':
    test()
