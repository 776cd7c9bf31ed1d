"""The main job: vanilla vs AiluRus Segmenter ViT-L/16 (ADE20K 640x640) on
one image, in one process:
``python tools/demo.py [--checkpoint C] [--image I]``.
"""
from ailurus_mm.analysis.demo import demo_main

if __name__ == '__main__':
    demo_main()
