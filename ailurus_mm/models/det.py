"""mmdet integration: import this module from mmdet configs.

    custom_imports = dict(imports=['ailurus_mm.models.det'],
                          allow_failed_imports=False)

It is the one place that registers into mmdet's ``MODELS``: ``SimpleFPN``,
the pyramid neck a plain ViT needs in a detector. The backbone and
``TokenRecover`` stay in mmseg's registry (importing this module imports
:mod:`ailurus_mm.models`, which registers them); mmdet configs name them
across scopes, ``mmseg.AiluRusViT``, ``mmseg.TokenRecover`` and, for the
vanilla model, ``mmseg.VisionTransformer`` (mmdet 3.3 ships no plain ViT).
Compose them as ``neck=dict(type='mmseg.TokenRecover',
neck=dict(type='SimpleFPN', ...))``: mmdet's detectors take a single neck,
so TokenRecover wraps the pyramid (see ``configs/mask_rcnn/README.md``).
"""
from mmdet.registry import MODELS

from .simple_fpn import LayerNorm2d, SimpleFPN

MODELS.register_module(module=SimpleFPN)

__all__ = ['SimpleFPN', 'LayerNorm2d']
