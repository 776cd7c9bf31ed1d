"""``SimpleFPN``: the multi-scale neck of ViTDet for a plain ViT.

A plain ViT has a single stride-16 map. ViTDet (Li et al., ECCV 2022) builds
the pyramid a detector needs from the last map alone: deconvolutions up to
strides 8 and 4, max-pooling down to 32, then a 1x1 and a 3x3 convolution per
level, each followed by a LayerNorm over channels; an extra level for the RPN
(stride 64) is a stride-2 subsampling of the coarsest one. This module is
registered in mmdet's ``MODELS`` by :mod:`ailurus_mm.models.det`.
"""
from typing import List, Optional, Sequence, Tuple

import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor, nn


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a ``[B, C, H, W]`` map."""

    def forward(self, x: Tensor) -> Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias,
                         self.eps)
        return x.permute(0, 3, 1, 2).contiguous()


def _rescale(channels: int, scale: float) -> Tuple[nn.Module, int]:
    """The resampling of one level and its output channels."""
    if scale == 4.0:
        return nn.Sequential(
            nn.ConvTranspose2d(channels, channels // 2, 2, stride=2),
            LayerNorm2d(channels // 2), nn.GELU(),
            nn.ConvTranspose2d(channels // 2, channels // 4, 2,
                               stride=2)), channels // 4
    if scale == 2.0:
        return nn.ConvTranspose2d(channels, channels // 2, 2,
                                  stride=2), channels // 2
    if scale == 1.0:
        return nn.Identity(), channels
    return nn.MaxPool2d(2, stride=2), channels  # 0.5


class SimpleFPN(BaseModule):
    """Simple feature pyramid (ViTDet) on the last map of a plain ViT.

    Args:
        in_channels: Channels of the backbone map (``embed_dims``).
        out_channels: Channels of every pyramid level.
        scale_factors: Resampling of each level relative to the input map,
            from ``(4.0, 2.0, 1.0, 0.5)``; on a stride-16 ViT the default
            gives strides 4, 8, 16 and 32.
        num_outs: Levels returned; levels beyond ``len(scale_factors)`` are
            stride-2 subsamplings of the previous one (stride 64 for the
            RPN of mmdet's Mask R-CNN).
        in_index: Which backbone output to use (default: the last).
        init_cfg: mmengine initialisation config.

    Inputs are what mmseg's ``VisionTransformer`` returns (after
    ``TokenRecover`` for ``AiluRusViT``): a sequence of ``[B, C, H, W]``
    maps, or of ``[map, cls_token]`` pairs. Returns a tuple of ``num_outs``
    maps ``[B, out_channels, H * s, W * s]``.
    """

    SCALES = (4.0, 2.0, 1.0, 0.5)

    def __init__(self,
                 in_channels: int = 768,
                 out_channels: int = 256,
                 scale_factors: Sequence[float] = (4.0, 2.0, 1.0, 0.5),
                 num_outs: int = 5,
                 in_index: int = -1,
                 init_cfg: Optional[dict] = dict(
                     type='Xavier', layer='Conv2d',
                     distribution='uniform')) -> None:
        super().__init__(init_cfg=init_cfg)
        scale_factors = tuple(float(s) for s in scale_factors)
        if not scale_factors or any(s not in self.SCALES
                                    for s in scale_factors):
            raise ValueError(f'scale_factors must be taken from '
                             f'{self.SCALES}, got {scale_factors}')
        if 4.0 in scale_factors and in_channels % 4 or \
                2.0 in scale_factors and in_channels % 2:
            raise ValueError(f'in_channels={in_channels} must be divisible '
                             'by the up-sampling factors')
        if num_outs < len(scale_factors):
            raise ValueError(f'num_outs={num_outs} must be at least '
                             f'len(scale_factors)={len(scale_factors)}')
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.scale_factors = scale_factors
        self.num_outs = num_outs
        self.in_index = in_index
        self.rescales = nn.ModuleList()
        self.lateral_convs = nn.ModuleList()
        self.fpn_convs = nn.ModuleList()
        for scale in scale_factors:
            rescale, channels = _rescale(in_channels, scale)
            self.rescales.append(rescale)
            self.lateral_convs.append(nn.Sequential(
                nn.Conv2d(channels, out_channels, 1, bias=False),
                LayerNorm2d(out_channels)))
            self.fpn_convs.append(nn.Sequential(
                nn.Conv2d(out_channels, out_channels, 3, padding=1,
                          bias=False), LayerNorm2d(out_channels)))

    def forward(self, inputs: Sequence) -> Tuple[Tensor, ...]:
        feature = inputs[self.in_index]
        if isinstance(feature, (list, tuple)):  # [map, cls_token]
            feature = feature[0]
        if feature.dim() != 4 or feature.shape[1] != self.in_channels:
            raise ValueError(
                f'SimpleFPN expects [B, {self.in_channels}, H, W] maps, got '
                f'{tuple(feature.shape)}; an AiluRusViT needs TokenRecover '
                'in front')
        outs: List[Tensor] = [
            fpn_conv(lateral_conv(rescale(feature)))
            for rescale, lateral_conv, fpn_conv in zip(
                self.rescales, self.lateral_convs, self.fpn_convs)
        ]
        while len(outs) < self.num_outs:
            outs.append(F.max_pool2d(outs[-1], 1, stride=2))
        return tuple(outs)
