"""Test helpers: tiny synthetic datasets in the real layouts (no downloads
needed)."""
from .coco import make_coco, synthetic_instances
from .synthetic import (make_ade20k, make_camvid, make_cityscapes,
                        make_pascal_context, make_stanford_bg,
                        synthetic_scene)

__all__ = [
    'synthetic_scene', 'make_ade20k', 'make_camvid', 'make_cityscapes',
    'make_pascal_context', 'make_stanford_bg',
    'synthetic_instances', 'make_coco'
]
