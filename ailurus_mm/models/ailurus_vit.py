"""``AiluRusViT``: mmseg's VisionTransformer with token clustering."""
import math
import numbers
from typing import List, Optional, Union

import torch
import torch.nn.functional as F
from mmseg.models.backbones.vit import VisionTransformer
from mmseg.registry import MODELS
from torch import Tensor
from torch.profiler import record_function

from ailurus_mm.ops import (REDUCERS, ClusterAssignment, cluster_tokens,
                            merge_tokens, recover_tokens,
                            resolve_num_clusters)
from ailurus_mm.ops.attention import size_bias
from .attention import KeyBiasEncoderLayer, enable_key_bias
from .outputs import AiluRusOutputs
from .token_recover import tokens_to_map


def _check_int(name: str, value, low: int, high: Optional[int] = None,
               meaning: str = '') -> None:
    allowed = f'[{low}, {high}]' if high is not None else f'>= {low}'
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) \
            or value < low or (high is not None and value > high):
        raise ValueError(f'{name} must be an int {allowed}{meaning}, '
                         f'got {value!r}')


# Knob defaults, for telling which knobs a reducer was given.
_KNOB_DEFAULTS = dict(k=5, spatial_weight=1.0, window=None,
                      anchor_threshold=None)


def _check_reducer(reducer, **knobs) -> None:
    if not isinstance(reducer, str) or reducer not in REDUCERS:
        raise ValueError(f'reducer must be one of {tuple(REDUCERS)}, got '
                         f'{reducer!r}')
    for name, value in knobs.items():
        if name not in REDUCERS[reducer] and value != _KNOB_DEFAULTS[name]:
            users = tuple(r for r, taken in REDUCERS.items() if name in taken)
            raise ValueError(
                f'{name}={value!r} is not used by reducer={reducer!r} (it '
                f'takes: {", ".join(REDUCERS[reducer]) or "no knobs"}); '
                f'{name} applies to the reducers {users}. Leave it at its '
                f'default ({_KNOB_DEFAULTS[name]!r}).')


@MODELS.register_module()
class AiluRusViT(VisionTransformer):
    """Vision Transformer that clusters and merges tokens after one layer.

    After layer ``cluster_layer`` the patch tokens are grouped by a
    spatial-aware density-peak clustering and every cluster is merged into one
    token; later layers run on the short sequence (plus the cls token, which
    is never merged). Outputs after ``cluster_layer`` are returned merged, in
    an :class:`AiluRusOutputs`; the ``TokenRecover`` neck restores them to the
    full grid, so decode heads receive exactly what ``VisionTransformer``
    returns. Parameters are those of ``VisionTransformer`` (same names), so
    mmseg checkpoints load strictly. ``docs/method.md`` describes the method
    step by step and what each knob controls.

    Args:
        cluster_layer: 0-based index of the layer whose output is clustered,
            as in ``out_indices`` (the paper's "after the 2nd layer" is 1).
            Must be in ``[0, num_layers - 2]``.
        num_clusters: Tokens kept: an int count ``>= 1`` or a float fraction
            of the patch tokens in ``(0, 1]``. ``>= N`` (or 1.0) gives exactly
            the vanilla model.
        k: Neighbours of the kNN density, ``>= 1`` (at most ``N - 1`` used).
        spatial_weight: Weight ``lambda >= 0`` of the spatial term of the
            distance; 0 gives plain DPC-kNN.
        window: ``None`` (global) or a radius ``>= 1``: density and distance
            indicator only look at a ``(2w + 1)^2`` neighbourhood (faster for
            long sequences, an approximation). Any value is accepted; at run
            time the radius is clipped to the token grid, and a window with
            as many candidates as the whole grid runs the global form, so it
            never costs more than ``None`` (see :func:`cluster_tokens`).
        prop_attn: Add ``log(cluster size)`` of the key token to the attention
            logits of the layers after clustering.
        reducer: How tokens are grouped: ``'dpc_knn'`` (AiluRus's
            spatial-aware density-peak clustering), or one of the field's
            other reducers for comparison at equal token counts:
            ``'farthest'``, ``'kmeans'``, ``'tome'``, ``'random'``,
            ``'grid'`` (see :mod:`ailurus_mm.ops.reducers`). ``k``,
            ``spatial_weight`` and ``window`` must keep their defaults for a
            reducer that does not use them.
        recover_detail: Recovery keeps per-token detail: every position
            gets its cluster's output plus its own deviation from the
            cluster mean at clustering time (beyond the paper; off gives
            the paper's recovery).
        anchor_threshold: ``None`` (the paper: ``num_clusters`` anchors in
            every image) or a finite number: a per-image cluster count set
            by content (beyond the paper). An image's anchors are its tokens
            whose DPC decision score ``rho * delta / s`` is above it, at
            least 1 and at most ``num_clusters``; in a batch, images with
            fewer get empty padding clusters whose keys are masked in
            attention. Calibrate it to a mean keep ratio with
            ``ailurus_mm.ops.calibrate_anchor_threshold``. ``dpc_knn`` with
            ``window=None`` only.
        **kwargs: Every argument of mmseg's ``VisionTransformer``.
    """

    def __init__(self,
                 cluster_layer: int = 1,
                 num_clusters: Union[int, float] = 0.25,
                 k: int = 5,
                 spatial_weight: float = 1.0,
                 window: Optional[int] = None,
                 prop_attn: bool = True,
                 reducer: str = 'dpc_knn',
                 recover_detail: bool = False,
                 anchor_threshold: Optional[float] = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.configure_clustering(
            cluster_layer=cluster_layer,
            num_clusters=num_clusters,
            k=k,
            spatial_weight=spatial_weight,
            window=window,
            prop_attn=prop_attn,
            reducer=reducer,
            recover_detail=recover_detail,
            anchor_threshold=anchor_threshold)

    @staticmethod
    def check_knobs(num_layers: int, out_indices, cluster_layer: int,
                    num_clusters: Union[int, float], k: int,
                    spatial_weight: float, window: Optional[int],
                    prop_attn: bool, reducer: str = 'dpc_knn',
                    recover_detail: bool = False,
                    anchor_threshold: Optional[float] = None) -> List[int]:
        """Validate the knobs for a ViT of ``num_layers`` layers.

        The one validation of the knobs: the constructor,
        ``ailurus_mm.apply`` and ``ailurus_mm.to_ailurus_config`` use it.

        Returns:
            ``out_indices`` with negative indices made positive.

        Raises:
            ValueError: Naming the argument, the value and what is allowed.
        """
        _check_int('cluster_layer', cluster_layer, 0, num_layers - 2,
                   f' (0-based index of the layer whose output is clustered; '
                   f'the model has num_layers={num_layers} and the last '
                   f'layer cannot be clustered)')
        resolve_num_clusters(num_clusters, 1)  # type and range check
        _check_int('k', k, 1, meaning=' (neighbours of the kNN density)')
        if isinstance(spatial_weight, bool) or not isinstance(
                spatial_weight, numbers.Real) or not math.isfinite(
                    spatial_weight) or spatial_weight < 0:
            raise ValueError('spatial_weight must be a finite number >= 0 '
                             f'(0 = plain DPC-kNN), got {spatial_weight!r}')
        if window is not None:
            _check_int('window', window, 1, meaning=' or None (radius of '
                       'the density window in tokens)')
        if not isinstance(prop_attn, bool):
            raise ValueError(f'prop_attn must be True or False, '
                             f'got {prop_attn!r}')
        if anchor_threshold is not None and (
                isinstance(anchor_threshold, bool)
                or not isinstance(anchor_threshold, numbers.Real)
                or not math.isfinite(anchor_threshold)):
            raise ValueError('anchor_threshold must be None or a finite '
                             'number (the DPC decision score above which a '
                             f'token is an anchor), got {anchor_threshold!r}')
        _check_reducer(reducer, k=k, spatial_weight=spatial_weight,
                       window=window, anchor_threshold=anchor_threshold)
        if anchor_threshold is not None and window is not None:
            raise ValueError(
                f'anchor_threshold={anchor_threshold!r} needs the global '
                f'clustering: leave window at None (got window={window!r})')
        if not isinstance(recover_detail, bool):
            raise ValueError(f'recover_detail must be True or False, '
                             f'got {recover_detail!r}')
        if isinstance(out_indices, int):
            out_indices = [out_indices]
        bad = [i for i in out_indices if not -num_layers <= i < num_layers]
        if bad:
            raise ValueError(f'out_indices {bad} out of range for '
                             f'num_layers={num_layers}')
        return [i % num_layers for i in out_indices]

    def configure_clustering(self, *, cluster_layer: int,
                             num_clusters: Union[int, float], k: int,
                             spatial_weight: float, window: Optional[int],
                             prop_attn: bool, reducer: str = 'dpc_knn',
                             recover_detail: bool = False,
                             anchor_threshold: Optional[float] = None
                             ) -> None:
        """Validate (:meth:`check_knobs`) and set the knobs; nothing is
        changed if one is invalid. Also called on a built mmseg
        ``VisionTransformer`` by ``ailurus_mm.apply``."""
        # Also runs on a VisionTransformer (before its class is switched).
        self.out_indices = AiluRusViT.check_knobs(
            len(self.layers), self.out_indices, cluster_layer, num_clusters,
            k, spatial_weight, window, prop_attn, reducer, recover_detail,
            anchor_threshold)
        self.cluster_layer = cluster_layer
        self.num_clusters = num_clusters
        self.k = k
        self.spatial_weight = float(spatial_weight)
        self.window = window
        self.prop_attn = prop_attn
        self.reducer = reducer
        self.recover_detail = recover_detail
        self.anchor_threshold = None if anchor_threshold is None else float(
            anchor_threshold)
        enable_key_bias(self.layers, 'AiluRusViT.layers')

    def train(self, mode: bool = True) -> 'AiluRusViT':
        # mmseg's VisionTransformer.train returns None; nn.Module's returns
        # the module, which ``model.eval()`` chains rely on.
        super().train(mode)
        return self

    def extra_repr(self) -> str:
        return (f'cluster_layer={self.cluster_layer}, num_clusters='
                f'{self.num_clusters}, k={self.k}, spatial_weight='
                f'{self.spatial_weight}, window={self.window}, '
                f'prop_attn={self.prop_attn}, reducer={self.reducer!r}, '
                f'recover_detail={self.recover_detail}, '
                f'anchor_threshold={self.anchor_threshold}')

    def _output(self, x: Tensor, hw_shape, merged: bool):
        """One output entry, as ``VisionTransformer.forward`` builds it."""
        tokens = x[:, 1:] if self.with_cls_token else x
        out = tokens if merged else tokens_to_map(tokens, hw_shape)
        return [out, x[:, 0]] if self.output_cls_token else out

    def cluster(self, x: Tensor, hw_shape) -> Optional[ClusterAssignment]:
        """Cluster the patch tokens of ``x`` (``[B, (1 +) N, C]``).

        Returns ``None`` when nothing would be merged (``M >= N`` without
        ``anchor_threshold``).
        """
        tokens = x[:, 1:] if self.with_cls_token else x
        num_tokens = int(tokens.shape[1])
        if self.anchor_threshold is None and resolve_num_clusters(
                self.num_clusters, num_tokens) >= num_tokens:
            return None
        return cluster_tokens(
            tokens.detach(),
            hw_shape,
            self.num_clusters,
            k=self.k,
            spatial_weight=self.spatial_weight,
            window=self.window,
            reducer=self.reducer,
            anchor_threshold=self.anchor_threshold)

    def merge(self, x: Tensor, assignment: ClusterAssignment) -> Tensor:
        """Merge the patch tokens of ``x``; the cls token stays in front."""
        if not self.with_cls_token:
            return merge_tokens(x, assignment.index, assignment.sizes)
        merged = merge_tokens(x[:, 1:], assignment.index, assignment.sizes)
        return torch.cat([x[:, :1], merged], dim=1)

    def _detail(self, x: Tensor, assignment: ClusterAssignment) -> Tensor:
        """Deviation ``[B, N, C]`` of every patch token from its cluster's
        mean (what the paper's recovery loses)."""
        tokens = x[:, 1:] if self.with_cls_token else x
        means = merge_tokens(tokens, assignment.index, assignment.sizes)
        return tokens - recover_tokens(means, assignment.index)

    def _attn_bias(self, assignment: ClusterAssignment,
                   x: Tensor) -> Optional[Tensor]:
        """The per-key bias of the layers after clustering, ``[B, L]``
        (broadcast over heads and queries by the layers): ``log(size)``
        with ``prop_attn`` (0 for the cls token), and ``-inf`` on padding
        clusters (size 0, only with ``anchor_threshold``) either way;
        ``None`` if neither applies (no host-device sync either way)."""
        if self.prop_attn:
            # log(0) = -inf masks the padding.
            return size_bias(assignment.sizes, int(self.with_cls_token),
                             dtype=x.dtype)
        if self.anchor_threshold is None:
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
        merged: List[bool] = []
        if self.out_origin:
            features.append(self._output(x, hw_shape, merged=False))
            merged.append(False)

        assignment, attn_bias, detail = None, None, None
        for i, layer in enumerate(self.layers):
            x = self._run_layer(layer, x, attn_bias)
            if i == len(self.layers) - 1 and self.final_norm:
                x = self.norm1(x)
            if i in self.out_indices:
                is_merged = assignment is not None
                features.append(self._output(x, hw_shape, is_merged))
                merged.append(is_merged)
            if i == self.cluster_layer:
                # Labelled for torch.profiler traces of user models.
                with record_function('ailurus::cluster_merge'):
                    assignment = self.cluster(x, hw_shape)
                    if assignment is not None:
                        if self.recover_detail:
                            detail = self._detail(x, assignment)
                        x = self.merge(x, assignment)
                        attn_bias = self._attn_bias(assignment, x)
        return AiluRusOutputs(features, merged, assignment, hw_shape, detail)
