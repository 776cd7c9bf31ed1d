"""The main job: vanilla vs AiluRus Segmenter ViT-L/16 (ADE20K 640x640) on
one image in one process, then the accuracy of a shipped benchmark model:
``python tools/demo.py [--checkpoint C] [--image I] [--camvid-root D]``."""
if __name__ == '__main__':
    # The mm stack is imported here only: a spawned grid process imports
    # this file as its main module, and must start light (parallel.py).
    from ailurus_mm.benchmarks.quiet import quiet_upstream_warnings

    quiet_upstream_warnings()  # before the mm stack is imported
    from ailurus_mm.benchmarks.cli import demo_main, entry

    entry(demo_main)
