"""mm integration.

Importing this module registers ``AiluRusViT``, ``TokenRecover`` and
``AiluRusEncoderDecoder`` in mmseg's ``MODELS`` registry; nothing else.
mmdet configs import
``ailurus_mm.models.det`` instead, which also registers ``SimpleFPN`` in
mmdet's ``MODELS``. Checkpoint loading (strict, and Runner checkpoints under
torch's ``weights_only`` loader) is switched on separately, by
``StrictLoadHook`` (:mod:`ailurus_mm.engine`) or our tools.
"""
from .ailurus_vit import AiluRusViT
from .outputs import AiluRusOutputs
from .segmentor import AiluRusEncoderDecoder, enable_merged_decode
from .token_recover import TokenRecover

__all__ = [
    'AiluRusViT', 'TokenRecover', 'AiluRusOutputs', 'AiluRusEncoderDecoder',
    'enable_merged_decode'
]
