"""``AiluRusViT``: mmseg's VisionTransformer with token clustering."""
from typing import Any, List, Optional, Tuple

import torch
from mmseg.models.backbones.vit import VisionTransformer
from mmseg.registry import MODELS
from torch import Tensor
from torch.profiler import record_function

from ailurus_mm.ops import (ClusterAssignment, ClusterConfig,
                            cluster_with_config, merge_tokens,
                            recover_tokens)
from ailurus_mm.ops.attention import size_bias
from ailurus_mm.ops.cluster_config import RETIRED, Count
from .attention import KeyBiasEncoderLayer, enable_key_bias
from .outputs import AiluRusOutputs, Feature
from .token_recover import tokens_to_map


@MODELS.register_module()
class AiluRusViT(VisionTransformer):
    """Vision Transformer that clusters and merges tokens after one layer.

    After layer ``cluster_layer`` the patch tokens are grouped by the
    reducer (by default ``dpc_cover``: density peaks that cover the image)
    and every cluster is merged into one token; later layers run on the
    short sequence (plus the cls token, which is never merged). Outputs
    after ``cluster_layer`` are returned merged, in an
    :class:`AiluRusOutputs`; the ``TokenRecover`` neck restores them to the
    full grid, so decode heads receive exactly what ``VisionTransformer``
    returns. Parameters are those of ``VisionTransformer`` (same names), so
    mmseg checkpoints load strictly. ``docs/method.md`` describes the
    method step by step.

    The knobs are the fields of :class:`~ailurus_mm.ops.ClusterConfig`
    (same names, defaults and meaning; validated by it before the network
    is built).

    Args:
        cluster_layer: Index of the layer whose output is clustered.
        num_clusters: Tokens kept: an int count or a float fraction.
        k: Neighbours of the kNN density.
        spatial_weight: Weight of the spatial term of the distance.
        window: ``None`` or the radius of the density window.
        prop_attn: Proportional attention after clustering.
        reducer: A registered reducer.
        recover_detail: Recovery adds every token's deviation from its
            cluster mean.
        **kwargs: Every argument of mmseg's ``VisionTransformer``.

    Attributes:
        clustering: The :class:`~ailurus_mm.ops.ClusterConfig` in use; set
            it with :meth:`configure`.
    """

    def __init__(self,
                 *,
                 cluster_layer: int = 1,
                 num_clusters: Count = 0.25,
                 k: int = 5,
                 spatial_weight: float = 1.0,
                 window: Optional[int] = None,
                 prop_attn: bool = False,
                 reducer: str = 'dpc_cover',
                 recover_detail: bool = False,
                 **kwargs: Any) -> None:
        ClusterConfig.check_names([k for k in kwargs if k in RETIRED])
        clustering = ClusterConfig(
            cluster_layer=cluster_layer, num_clusters=num_clusters, k=k,
            spatial_weight=spatial_weight, window=window,
            prop_attn=prop_attn, reducer=reducer,
            recover_detail=recover_detail)
        super().__init__(**kwargs)
        self.configure(clustering)

    def configure(self, clustering: ClusterConfig) -> None:
        """Validate ``clustering`` for this network and use it; nothing is
        changed if it does not fit (``cluster_layer`` out of range). Also
        called on a built mmseg ``VisionTransformer`` by
        ``ailurus_mm.apply`` before its class is switched."""
        if not isinstance(clustering, ClusterConfig):
            raise TypeError('configure takes a ClusterConfig, got '
                            f'{type(clustering).__name__}')
        out_indices = clustering.check_layers(len(self.layers),
                                              self.out_indices)
        # Checks every layer before it changes any; nothing else can fail.
        enable_key_bias(self.layers, 'AiluRusViT.layers')
        self.out_indices = out_indices
        self.clustering = clustering

    def train(self, mode: bool = True) -> 'AiluRusViT':
        # mmseg's VisionTransformer.train returns None; nn.Module's returns
        # the module, which ``model.eval()`` chains rely on.
        super().train(mode)
        return self

    def extra_repr(self) -> str:
        return self.clustering.describe()

    def _patch_tokens(self, x: Tensor) -> Tensor:
        return x[:, 1:] if self.with_cls_token else x

    def _output(self, x: Tensor, hw_shape: Tuple[int, int],
                merged: bool) -> Feature:
        """One output entry, as ``VisionTransformer.forward`` builds it."""
        tokens = self._patch_tokens(x)
        out = tokens if merged else tokens_to_map(tokens, hw_shape)
        return [out, x[:, 0]] if self.output_cls_token else out

    def reduce(self, x: Tensor,
               hw_shape: Tuple[int, int]) -> Optional[ClusterAssignment]:
        """Cluster the patch tokens of ``x`` (``[B, (1 +) N, C]``, on the
        grid) with :attr:`clustering`; ``None`` when nothing is merged
        (:meth:`~ailurus_mm.ops.ClusterConfig.num_anchors`)."""
        tokens = self._patch_tokens(x)
        num_anchors = self.clustering.num_anchors(int(tokens.shape[1]))
        if num_anchors is None:
            return None
        return cluster_with_config(tokens.detach(), hw_shape,
                                   self.clustering, num_anchors)

    def merge(self, x: Tensor, assignment: ClusterAssignment) -> Tensor:
        """Merge the patch tokens of ``x``; the cls token stays in
        front."""
        merged = merge_tokens(self._patch_tokens(x), assignment.index,
                              assignment.sizes)
        return torch.cat([x[:, :1], merged], dim=1) if self.with_cls_token \
            else merged

    def _detail(self, x: Tensor, assignment: ClusterAssignment) -> Tensor:
        """Deviation ``[B, N, C]`` of every patch token from its cluster's
        mean (what the paper's recovery loses)."""
        tokens = self._patch_tokens(x)
        means = merge_tokens(tokens, assignment.index, assignment.sizes)
        return tokens - recover_tokens(means, assignment.index)

    def _with_detail(self, x: Tensor, assignment: ClusterAssignment,
                     detail: Tensor) -> Tensor:
        """``x`` (merged) on the full grid, every patch token its
        cluster's plus its own :meth:`_detail` (the cls token as is)."""
        full = recover_tokens(self._patch_tokens(x), assignment.index)
        full = full + detail.to(full.dtype)
        return torch.cat([x[:, :1], full], dim=1) if self.with_cls_token \
            else full

    def _attn_bias(self, assignment: ClusterAssignment,
                   x: Tensor) -> Optional[Tensor]:
        """The per-key bias of the layers after clustering, ``[B, L]``:
        ``log(size)`` with ``prop_attn`` (0 for the cls token), else
        ``None``."""
        if not self.clustering.prop_attn:
            return None
        return size_bias(assignment.sizes, int(self.with_cls_token),
                         dtype=x.dtype)

    @staticmethod
    def _run_layer(layer: KeyBiasEncoderLayer, x: Tensor,
                   attn_bias: Optional[Tensor]) -> Tensor:
        # The layer module itself is called, so its forward hooks fire.
        return layer(x) if attn_bias is None else layer(x, key_bias=attn_bias)

    def forward(self, inputs: Tensor) -> AiluRusOutputs:
        """Args:
            inputs: Images ``[B, 3, H, W]``, at least one patch in each side.

        Returns:
            :class:`AiluRusOutputs`; pass it through ``TokenRecover``.
        """
        if inputs.shape[-2] < self.patch_size or \
                inputs.shape[-1] < self.patch_size:
            raise ValueError(
                f'AiluRusViT input of size {tuple(inputs.shape[-2:])} is '
                f'smaller than one patch ({self.patch_size}x'
                f'{self.patch_size})')
        batch = inputs.shape[0]
        x, hw_shape = self.patch_embed(inputs)
        cls_tokens = self.cls_token.expand(batch, -1, -1)
        x = torch.cat((cls_tokens, x), dim=1)
        x = self._pos_embeding(x, hw_shape, self.pos_embed)
        if not self.with_cls_token:
            x = x[:, 1:]
        if self.pre_norm:
            x = self.pre_ln(x)

        features: List[Feature] = []
        merged_flags: List[bool] = []
        if self.out_origin:
            features.append(self._output(x, hw_shape, merged=False))
            merged_flags.append(False)
        assignment: Optional[ClusterAssignment] = None
        attn_bias: Optional[Tensor] = None
        detail: Optional[Tensor] = None
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = self._run_layer(layer, x, attn_bias)
            merged = assignment is not None
            if i == last and self.final_norm:
                if detail is not None and merged:
                    # recover_detail: every token's own deviation joins
                    # the residual stream before the final norm (added
                    # after it, its scale would not match); the normed
                    # output is on the full grid.
                    x = self._with_detail(x, assignment, detail)
                    merged = False
                x = self.norm1(x)
            if i in self.out_indices:
                features.append(self._output(x, hw_shape, merged))
                merged_flags.append(merged)
            if i == self.clustering.cluster_layer:
                # Labelled for torch.profiler traces of user models.
                with record_function('ailurus::cluster_merge'):
                    assignment = self.reduce(x, hw_shape)
                    if assignment is not None:
                        if self.clustering.recover_detail:
                            detail = self._detail(x, assignment)
                        x = self.merge(x, assignment)
                        attn_bias = self._attn_bias(assignment, x)
        return AiluRusOutputs(features, merged_flags, assignment, hw_shape,
                              detail)
