"""Decode heads run on the merged tokens, exactly.

After ``TokenRecover`` every position of a cluster carries the same feature,
so a head sees each cluster feature repeated ``n_c`` times. In a head whose
operations are per token (projections, LayerNorm, MLPs, 1x1 convs) or
attention, that equals running the head on the ``M`` cluster tokens, with
``log n_c`` added to the attention logits of those keys (attention to ``n``
identical keys is attention to one of them weighted by ``n``; identical
queries give identical outputs), and gathering its per-token outputs (the
``K`` class logits, not ``C`` channels) back to the grid.

Two heads are of this kind and supported: mmseg's
``SegmenterMaskTransformerHead`` and the linear head (``FCNHead`` with
``num_convs=0``: dropout and a 1x1 conv). The functions use the head's own
modules, so the heads stay the vanilla classes (same parameter names,
vanilla checkpoints load strictly). Convolutional or upsampling heads
(UPerNet, SETR, DPT, FPNs) mix neighbouring positions and keep the
recovered grid.
"""
from typing import Tuple

import torch
import torch.nn.functional as F
from mmseg.models.decode_heads import FCNHead, SegmenterMaskTransformerHead
from torch import Tensor, nn

from ailurus_mm.ops import ClusterAssignment
from ailurus_mm.ops.attention import size_bias
from .attention import check_key_bias, enable_key_bias

SUPPORTED_HEADS = ('SegmenterMaskTransformerHead',
                   'FCNHead with num_convs=0 (the linear head)')


def merged_decode_unsupported(head: nn.Module) -> str:
    """Why ``head`` cannot decode merged tokens ('' if it can)."""
    name = type(head).__name__
    if type(head) is SegmenterMaskTransformerHead:
        reason = ''
    elif type(head) is FCNHead:
        reason = '' if head.num_convs == 0 else \
            f'{name} with num_convs={head.num_convs} (its 3x3 convs mix ' \
            'neighbouring positions)'
    else:
        reason = name
    if not reason and head.input_transform is not None:
        reason = f'{name} with input_transform={head.input_transform!r}'
    return reason


def check_merged_decode_head(head: nn.Module) -> None:
    """Raise if ``head`` has no exact merged decoding (changes nothing;
    :func:`prepare_merged_decode_head` then prepares it).

    Raises:
        ValueError: naming the head and the supported ones.
    """
    reason = merged_decode_unsupported(head)
    if reason:
        raise ValueError(
            f'merged_decode=True: decode head {reason} cannot decode merged '
            f'tokens; supported: {", ".join(SUPPORTED_HEADS)}. Other heads '
            'keep the TokenRecover path (merged_decode=False)')
    if isinstance(head, SegmenterMaskTransformerHead):
        check_key_bias(head.layers, f'{type(head).__name__}.layers')


def prepare_merged_decode_head(head: nn.Module) -> None:
    """Check ``head`` (:func:`check_merged_decode_head`) and let its
    attention layers take a per-key bias (in place)."""
    check_merged_decode_head(head)
    if isinstance(head, SegmenterMaskTransformerHead):
        enable_key_bias(head.layers, f'{type(head).__name__}.layers')


def _to_grid(logits: Tensor, index: Tensor,
             hw_shape: Tuple[int, int]) -> Tensor:
    """Per-cluster logits ``[B, M, K]`` -> contiguous ``[B, K, H, W]``
    (as the vanilla heads return: a channels-last result would make the
    resize and argmax after the head twice as slow)."""
    batch, _, num_classes = logits.shape
    per_class = logits.transpose(1, 2).contiguous()
    full = per_class.gather(
        2, index.unsqueeze(1).expand(-1, num_classes, -1))
    return full.view(batch, num_classes, *hw_shape)


def mask_transformer_forward(head: SegmenterMaskTransformerHead,
                             tokens: Tensor,
                             assignment: ClusterAssignment) -> Tensor:
    """``head.forward`` on the recovered grid, computed on the clusters.

    Args:
        head: A ``SegmenterMaskTransformerHead`` prepared by
            :func:`check_merged_decode_head`.
        tokens: Merged patch tokens ``[B, M, C]``.
        assignment: Their clustering (``index`` ``[B, N]``, ``sizes``
            ``[B, M]``, ``hw_shape``).

    Returns:
        Mask logits ``[B, K, H, W]``, equal to the vanilla head's on the
        recovered grid. Differentiable w.r.t. ``tokens`` and the head.
    """
    num_classes = head.num_classes
    x = head.dec_proj(tokens)
    cls_emb = head.cls_emb.expand(x.size(0), -1, -1)
    x = torch.cat((x, cls_emb), 1)
    key_bias = size_bias(assignment.sizes, num_trailing=num_classes,
                         dtype=x.dtype)
    for layer in head.layers:
        x = layer(x, key_bias=key_bias)
    x = head.decoder_norm(x)

    patches, cls_seg_feat = x[:, :-num_classes], x[:, -num_classes:]
    patches = head.patch_proj(patches)
    cls_seg_feat = head.classes_proj(cls_seg_feat)
    patches = F.normalize(patches, dim=2, p=2)
    cls_seg_feat = F.normalize(cls_seg_feat, dim=2, p=2)
    masks = head.mask_norm(patches @ cls_seg_feat.transpose(1, 2))
    return _to_grid(masks, assignment.index, assignment.hw_shape)


def linear_head_forward(head: FCNHead, tokens: Tensor,
                        assignment: ClusterAssignment) -> Tensor:
    """``head.forward`` of an ``FCNHead`` with ``num_convs=0`` on the
    recovered grid, computed on the clusters (the 1x1 conv runs on an
    ``[B, C, M, 1]`` map, dropout included).

    Returns:
        Logits ``[B, K, H, W]``.
    """
    feats = head.convs(tokens.transpose(1, 2).unsqueeze(-1))
    logits = head.cls_seg(feats).squeeze(-1).transpose(1, 2)
    return _to_grid(logits, assignment.index, assignment.hw_shape)


def merged_head_forward(head: nn.Module, tokens: Tensor,
                        assignment: ClusterAssignment) -> Tensor:
    """Dispatch to the merged forward of a supported head (see
    :data:`SUPPORTED_HEADS`); ``tokens`` ``[B, M, C]`` -> ``[B, K, H, W]``.
    """
    if isinstance(head, SegmenterMaskTransformerHead):
        return mask_transformer_forward(head, tokens, assignment)
    return linear_head_forward(head, tokens, assignment)
