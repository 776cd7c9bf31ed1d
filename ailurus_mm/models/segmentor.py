"""``AiluRusEncoderDecoder``: mmseg's EncoderDecoder with merged decoding.

With ``merged_decode=True`` the decode head runs on the ``M`` merged tokens
of :class:`AiluRusViT` instead of the recovered grid, and its per-token class
logits are gathered back to the grid (see
:mod:`ailurus_mm.models.merged_decode`): the same logits as ``TokenRecover``
plus the unchanged head, at a fraction of the head's cost. Auxiliary heads,
and the decode head when it reads an output taken before clustering (or
when nothing was merged, or with ``recover_detail=True``), keep the
``TokenRecover`` path. The modules and
their parameter names are those of the vanilla model, so vanilla
checkpoints load strictly.
"""
from typing import List, Optional, Tuple

from mmseg.models.segmentors import EncoderDecoder
from mmseg.utils import add_prefix
from mmseg.registry import MODELS
from torch import Tensor, nn

from .ailurus_vit import AiluRusViT
from .merged_decode import (check_merged_decode_head, merged_head_forward,
                            prepare_merged_decode_head)
from .outputs import AiluRusOutputs
from .token_recover import TokenRecover


def check_merged_decode(model: EncoderDecoder,
                        neck: Optional[nn.Module] = None,
                        check_backbone: bool = True) -> None:
    """Raise unless ``model`` can decode merged tokens: an ``AiluRusViT``
    backbone, a plain ``TokenRecover`` neck and a supported decode head.
    Changes nothing.

    Args:
        model: The segmentor.
        neck: Check this neck instead of the model's own, and
        check_backbone: ``False`` to skip the backbone (what
            ``ailurus_mm.apply`` checks before it installs them).
    """
    backbone = model.backbone
    neck = getattr(model, 'neck', None) if neck is None else neck
    if check_backbone and not isinstance(backbone, AiluRusViT):
        raise TypeError('merged_decode=True needs an AiluRusViT backbone, '
                        f'got {type(backbone).__name__}')
    if not isinstance(neck, TokenRecover) or neck.with_neck:
        inner = f' wrapping {type(neck.neck).__name__}' if isinstance(
            neck, TokenRecover) and neck.with_neck else ''
        raise TypeError('merged_decode=True needs the neck '
                        "dict(type='TokenRecover') (without an inner neck), "
                        f'got {type(neck).__name__}{inner}')
    if isinstance(model.decode_head, nn.ModuleList):
        raise TypeError('merged_decode=True needs a single decode head, got '
                        f'{len(model.decode_head)} (a cascade)')
    check_merged_decode_head(model.decode_head)


@MODELS.register_module()
class AiluRusEncoderDecoder(EncoderDecoder):
    """mmseg's ``EncoderDecoder`` whose decode head may run on the merged
    tokens.

    Args:
        merged_decode: Run the decode head on the merged tokens (exactly
            equal to ``TokenRecover`` plus the head, faster). Needs an
            ``AiluRusViT`` backbone, the ``TokenRecover`` neck and a
            per-token decode head (``SegmenterMaskTransformerHead``, or
            ``FCNHead`` with ``num_convs=0``); anything else fails here,
            naming the head. ``False``: exactly ``EncoderDecoder``.
        **kwargs: Every argument of ``EncoderDecoder``.
    """

    def __init__(self, *args, merged_decode: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(merged_decode, bool):
            raise ValueError('merged_decode must be True or False, got '
                             f'{merged_decode!r}')
        if merged_decode:
            check_merged_decode(self)
            prepare_merged_decode_head(self.decode_head)
        self.merged_decode = merged_decode

    def _decode(self, outputs) -> Tuple[Tensor, Optional[tuple]]:
        """Decode-head logits from the backbone's outputs.

        Returns:
            ``(seg_logits [B, K, H, W], recovered)``; ``recovered`` is the
            neck output if it was computed (the TokenRecover path), else
            ``None``.
        """
        head = self.decode_head
        # Per-token detail (recover_detail=True) makes the tokens of a
        # cluster differ: only the recovered grid is then exact.
        if self.merged_decode and isinstance(outputs, AiluRusOutputs) \
                and outputs.detail is None:
            feature = outputs.features[head.in_index]
            if outputs.merged[head.in_index] and isinstance(feature, Tensor):
                return merged_head_forward(
                    head, feature, outputs.assignment_of(head.in_index)), None
        recovered = self.neck(outputs) if self.with_neck else outputs
        return head.forward(recovered), recovered

    def encode_decode(self, inputs: Tensor,
                      batch_img_metas: List[dict]) -> Tensor:
        """Logits resized to the input size ``[B, K, H_in, W_in]``."""
        if not self.merged_decode:
            return super().encode_decode(inputs, batch_img_metas)
        seg_logits, _ = self._decode(self.backbone(inputs))
        return self.decode_head.predict_by_feat(seg_logits, batch_img_metas)

    def _forward(self, inputs: Tensor, data_samples=None) -> Tensor:
        if not self.merged_decode:
            return super()._forward(inputs, data_samples)
        return self._decode(self.backbone(inputs))[0]

    def loss(self, inputs: Tensor, data_samples) -> dict:
        if not self.merged_decode:
            return super().loss(inputs, data_samples)
        outputs = self.backbone(inputs)
        seg_logits, recovered = self._decode(outputs)
        losses = add_prefix(
            self.decode_head.loss_by_feat(seg_logits, data_samples),
            'decode')
        if self.with_auxiliary_head:
            if recovered is None:
                recovered = self.neck(outputs)
            losses.update(
                self._auxiliary_head_forward_train(recovered, data_samples))
        return losses


def enable_merged_decode(model: EncoderDecoder) -> AiluRusEncoderDecoder:
    """Switch a built segmentor to merged decoding, in place.

    A plain ``EncoderDecoder`` becomes an :class:`AiluRusEncoderDecoder`
    (class swap: same modules, parameters and state dict). Call it after
    the backbone is ``AiluRusViT`` with the ``TokenRecover`` neck.

    Args:
        model: An ``EncoderDecoder`` (exactly that class) or an
            ``AiluRusEncoderDecoder``.

    Returns:
        ``model`` itself.

    Raises:
        TypeError, ValueError: if the model cannot decode merged tokens
            (the message names the head and the supported ones); the model
            is left unchanged.
    """
    if type(model) not in (EncoderDecoder, AiluRusEncoderDecoder):
        raise TypeError('enable_merged_decode needs an EncoderDecoder or '
                        f'AiluRusEncoderDecoder, got {type(model).__name__}')
    check_merged_decode(model)
    prepare_merged_decode_head(model.decode_head)
    model.__class__ = AiluRusEncoderDecoder
    model.merged_decode = True
    return model
