"""Test helpers: tiny synthetic datasets in the real layouts (no downloads
needed)."""
from .coco import make_coco, synthetic_instances
from .synthetic import (make_ade20k, make_camvid, make_cityscapes,
                        make_pascal_context, synthetic_scene)

__all__ = [
    'synthetic_scene', 'make_ade20k', 'make_camvid', 'make_cityscapes',
    'make_pascal_context',
    'synthetic_instances', 'make_coco'
]
