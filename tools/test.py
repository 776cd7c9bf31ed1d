"""Evaluate a checkpoint: ``python tools/test.py CONFIG CHECKPOINT [flags]``.

``--no-finetune`` evaluates a vanilla mmseg/mmdet checkpoint with AiluRus as
is (and refuses one trained with AiluRus). Other flags are mmseg's/mmdet's
(--work-dir, --out, --show, --show-dir, --tta, --cfg-options, --launcher).
See ``ailurus_mm/apis/runner.py``.
"""
from ailurus_mm.apis.runner import test

if __name__ == '__main__':
    test()
