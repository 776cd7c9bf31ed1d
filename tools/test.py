"""Evaluate a checkpoint: mmseg's or mmdet's own ``test.py`` (every flag is
theirs), plus ``--no-finetune`` (a vanilla checkpoint evaluated with
AiluRus as is), the strict-loading hook and clear refusals
(``ailurus_mm/launch.py``):
``python tools/test.py CONFIG CHECKPOINT [--no-finetune] [--out ...]``.
"""
from ailurus_mm.launch import run

if __name__ == '__main__':
    run('test')
