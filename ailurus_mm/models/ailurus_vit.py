"""``AiluRusViT``: mmseg's VisionTransformer with token clustering."""
from typing import Any, List, Optional, Tuple

import torch
import torch.nn.functional as F
from mmseg.models.backbones.vit import VisionTransformer
from mmseg.registry import MODELS
from torch import Tensor
from torch.profiler import record_function

from ailurus_mm.ops import (ClusterAssignment, ClusterConfig,
                            cluster_positions, cluster_with_config,
                            compose_assignments, merge_tokens,
                            recover_tokens, resolve_num_clusters)
from ailurus_mm.ops.attention import size_bias
from .attention import KeyBiasEncoderLayer, enable_key_bias
from .outputs import AiluRusOutputs
from .token_recover import tokens_to_map


@MODELS.register_module()
class AiluRusViT(VisionTransformer):
    """Vision Transformer that clusters and merges tokens after one layer.

    After layer ``cluster_layer`` the patch tokens are grouped by a
    spatial-aware density-peak clustering (or another reducer) and every
    cluster is merged into one token; later layers run on the short
    sequence (plus the cls token, which is never merged). Outputs after
    ``cluster_layer`` are returned merged, in an :class:`AiluRusOutputs`;
    the ``TokenRecover`` neck restores them to the full grid, so decode heads
    receive exactly what ``VisionTransformer`` returns. Parameters are those
    of ``VisionTransformer`` (same names), so mmseg checkpoints load
    strictly. ``docs/method.md`` describes the method step by step.

    Args:
        **kwargs: The AiluRus knobs, the fields of
            :class:`~ailurus_mm.ops.ClusterConfig` (``cluster_layer``,
            ``num_clusters``, ``k``, ``spatial_weight``, ``window``,
            ``prop_attn``, ``reducer``, ``recover_detail``,
            ``anchor_threshold``, ``second_stage``; unset ones take its
            defaults), and every argument of mmseg's ``VisionTransformer``.
            The knobs are validated before the network is built.

    Attributes:
        clustering: The :class:`~ailurus_mm.ops.ClusterConfig` in use; set
            it with :meth:`configure`.
    """

    def __init__(self, **kwargs: Any) -> None:
        knobs = {name: kwargs.pop(name) for name in ClusterConfig.names()
                 if name in kwargs}
        clustering = ClusterConfig(**knobs)
        super().__init__(**kwargs)
        self.configure(clustering)

    def configure(self, clustering: ClusterConfig) -> None:
        """Validate ``clustering`` for this network and use it; nothing is
        changed if it does not fit (``cluster_layer`` or ``second_stage``
        out of range). Also called on a built mmseg ``VisionTransformer``
        by ``ailurus_mm.apply`` before its class is switched."""
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

    def _output(self, x: Tensor, hw_shape, merged: bool):
        """One output entry, as ``VisionTransformer.forward`` builds it."""
        tokens = x[:, 1:] if self.with_cls_token else x
        out = tokens if merged else tokens_to_map(tokens, hw_shape)
        return [out, x[:, 0]] if self.output_cls_token else out

    def _patch_tokens(self, x: Tensor) -> Tensor:
        return x[:, 1:] if self.with_cls_token else x

    def cluster(self, x: Tensor, hw_shape) -> Optional[ClusterAssignment]:
        """Cluster the patch tokens of ``x`` (``[B, (1 +) N, C]``, on the
        grid) with :attr:`clustering`.

        Returns ``None`` when nothing would be merged (``M >= N`` without
        ``anchor_threshold``).
        """
        tokens = self._patch_tokens(x)
        num_tokens = int(tokens.shape[1])
        num_anchors = resolve_num_clusters(self.clustering.num_clusters,
                                           num_tokens)
        if self.clustering.anchor_threshold is None and \
                num_anchors >= num_tokens:
            return None
        return cluster_with_config(tokens.detach(), hw_shape,
                                   self.clustering, num_anchors)

    def recluster(self, x: Tensor, first: ClusterAssignment,
                  num_clusters) -> Optional[Tuple[ClusterAssignment,
                                                  ClusterAssignment]]:
        """The ``second_stage``: cluster the merged tokens of ``x`` again,
        down to ``num_clusters`` (of the original grid tokens), by their
        features and centroid positions; sizes are summed.

        Returns:
            ``(composed, step)``: the assignment of the grid tokens, and
            that of the merged tokens of ``x``; ``None`` if they are
            already at most that many.
        """
        num_grid = first.index.shape[1]
        num_anchors = resolve_num_clusters(num_clusters, num_grid)
        if num_anchors >= first.num_clusters:
            return None
        second = cluster_with_config(
            self._patch_tokens(x).detach(), first.hw_shape, self.clustering,
            num_anchors, token_sizes=first.sizes,
            positions=cluster_positions(first))
        return compose_assignments(first, second), second

    def merge(self, x: Tensor, assignment: ClusterAssignment,
              token_sizes: Optional[Tensor] = None) -> Tensor:
        """Merge the patch tokens of ``x`` (weighted by ``token_sizes``);
        the cls token stays in front."""
        if not self.with_cls_token:
            return merge_tokens(x, assignment.index, assignment.sizes,
                                token_sizes)
        merged = merge_tokens(x[:, 1:], assignment.index, assignment.sizes,
                              token_sizes)
        return torch.cat([x[:, :1], merged], dim=1)

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
        """The per-key bias of the layers after clustering, ``[B, L]``
        (broadcast over heads and queries by the layers): ``log(size)``
        with ``prop_attn`` (0 for the cls token), and ``-inf`` on padding
        clusters (size 0, only with ``anchor_threshold``) either way;
        ``None`` if neither applies (no host-device sync either way)."""
        if self.clustering.prop_attn:
            # log(0) = -inf masks the padding.
            return size_bias(assignment.sizes, int(self.with_cls_token),
                             dtype=x.dtype)
        if self.clustering.anchor_threshold is None:
            return None
        bias = torch.zeros(assignment.sizes.shape, dtype=x.dtype,
                           device=x.device)
        bias.masked_fill_(assignment.sizes == 0, float('-inf'))
        return F.pad(bias, (int(self.with_cls_token), 0))

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

        features: List = []
        stage_of: List[int] = []  # 0: not merged; s: after stage s
        assignments: List[ClusterAssignment] = []
        if self.out_origin:
            features.append(self._output(x, hw_shape, merged=False))
            stage_of.append(0)

        clustering = self.clustering
        second = clustering.second_stage
        attn_bias, detail = None, None
        for i, layer in enumerate(self.layers):
            x = self._run_layer(layer, x, attn_bias)
            stage = len(assignments)
            if i == len(self.layers) - 1 and self.final_norm:
                if detail is not None and stage:
                    # recover_detail: every token's own deviation joins
                    # the residual stream before the final norm (added
                    # after it, its scale would not match); the normed
                    # output is on the full grid.
                    x = self._with_detail(x, assignments[-1], detail)
                    stage = 0
                x = self.norm1(x)
            if i in self.out_indices:
                features.append(self._output(x, hw_shape, stage > 0))
                stage_of.append(stage)
            if i == clustering.cluster_layer:
                # Labelled for torch.profiler traces of user models.
                with record_function('ailurus::cluster_merge'):
                    assignment = self.cluster(x, hw_shape)
                    if assignment is not None:
                        if clustering.recover_detail:
                            detail = self._detail(x, assignment)
                        x = self.merge(x, assignment)
                        attn_bias = self._attn_bias(assignment, x)
                        assignments.append(assignment)
            elif second is not None and i == second[0] and assignments:
                with record_function('ailurus::cluster_merge'):
                    result = self.recluster(x, assignments[-1], second[1])
                    if result is not None:
                        composed, step = result
                        x = self.merge(x, step, assignments[-1].sizes)
                        attn_bias = self._attn_bias(composed, x)
                        assignments.append(composed)
        return AiluRusOutputs(features, stage_of, assignments, hw_shape,
                              detail)
