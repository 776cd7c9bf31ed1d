"""Convert official Segmenter checkpoints or timm ViT weights to mmseg keys:
``python tools/convert_checkpoint.py SRC DST [--source segmenter|timm]``.

An official Segmenter checkpoint becomes a whole mmseg model (for
``load_from`` or ``tools/test.py``); timm ViT weights become backbone
weights for ``model.pretrained``. See ``ailurus_mm/weights.py``.
"""
from ailurus_mm.weights import convert_main

if __name__ == '__main__':
    convert_main()
