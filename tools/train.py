"""Train an mmseg or mmdet model: mmseg's or mmdet's own ``train.py`` (every
flag is theirs), plus the strict-loading hook, gloo for CPU ``--launcher
pytorch`` runs and clear refusals (``ailurus_mm/launch.py``):
``python tools/train.py CONFIG [--work-dir D] [--resume] [--cfg-options ...]``.
"""
from ailurus_mm.launch import run

if __name__ == '__main__':
    run('train')
