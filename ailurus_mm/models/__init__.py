"""mm integration.

Importing this module registers ``AiluRusViT``, ``TokenRecover`` and
``AiluRusEncoderDecoder`` in mmseg's ``MODELS`` registry, and allows the
types of mmengine Runner checkpoints in torch's ``weights_only`` loader (see
``ailurus_mm.apis.checkpoint``), so checkpoints written by mmengine load
under torch >= 2.6. mmdet configs import
``ailurus_mm.models.det`` instead, which also registers ``SimpleFPN`` in
mmdet's ``MODELS``.
"""
from ailurus_mm.apis.checkpoint import allow_mmengine_checkpoints
from .ailurus_vit import AiluRusViT
from .outputs import AiluRusOutputs
from .segmentor import AiluRusEncoderDecoder, enable_merged_decode
from .token_recover import TokenRecover

__all__ = [
    'AiluRusViT', 'TokenRecover', 'AiluRusOutputs', 'AiluRusEncoderDecoder',
    'enable_merged_decode'
]

allow_mmengine_checkpoints()
