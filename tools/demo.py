"""The main job: vanilla vs AiluRus Segmenter ViT-L/16 (ADE20K 640x640) on
one image in one process, then the accuracy of a shipped benchmark model:
``python tools/demo.py [--checkpoint C] [--image I] [--camvid-root D]``."""
from ailurus_mm.benchmarks.quiet import quiet_upstream_warnings

quiet_upstream_warnings()  # before the mm stack is imported
from ailurus_mm.benchmarks.cli import demo_main, entry  # noqa: E402

if __name__ == '__main__':
    entry(demo_main)
