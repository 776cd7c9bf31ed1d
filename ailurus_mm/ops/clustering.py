"""Entry point of the clustering: tokens in, a :class:`ClusterAssignment`
out."""
import numbers
from typing import NamedTuple, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from .density import (assign_to_anchors, decision_scores,
                      distance_indicator, knn_density, select_anchors,
                      select_anchors_above, spatial_aware_distance)
from .reducers import (bipartite_clusters, farthest_point_anchors,
                       grid_clusters, kmeans_clusters, random_anchors)
from .window import assign_in_window, use_window, window_density_and_delta

# The token reducers :func:`cluster_tokens` runs, and the knobs each one
# takes (besides ``num_clusters``). ``dpc_knn`` is AiluRus's spatial-aware
# DPC-kNN (plain DPC-kNN with ``spatial_weight=0``).
REDUCERS = {
    'dpc_knn': ('k', 'spatial_weight', 'window', 'anchor_threshold'),
    'farthest': ('k', 'spatial_weight'),
    'kmeans': (),
    'tome': (),
    'random': (),
    'grid': (),
}


class ClusterAssignment(NamedTuple):
    """Result of clustering the patch tokens of a batch.

    Attributes:
        index: Cluster id of every token ``[B, N]`` (long).
        sizes: Number of original tokens in every cluster ``[B, M]``; 0
            marks a padding slot (``anchor_threshold``: an image with fewer
            clusters than ``M``), which no token joins.
        anchors: Token index of every cluster's anchor (its representative
            token for reducers without anchors) ``[B, M]`` (long); padding
            slots repeat the image's first anchor.
        hw_shape: The token grid ``(H, W)``, ``H * W == N``.
    """
    index: Tensor
    sizes: Tensor
    anchors: Tensor
    hw_shape: Tuple[int, int]

    @property
    def num_clusters(self) -> int:
        return self.sizes.shape[1]


def resolve_num_clusters(num_clusters: Union[int, float],
                         num_tokens: int) -> int:
    """Number of anchors for a sequence of ``num_tokens`` patch tokens.

    Args:
        num_clusters: An int count ``>= 1`` or a float fraction in ``(0, 1]``.
        num_tokens: ``N``.

    Returns:
        ``M`` in ``[1, N]``; ``M == N`` means nothing is merged.
    """
    num_tokens = int(num_tokens)  # a traced shape is a tensor
    if isinstance(num_clusters, bool) or not isinstance(
            num_clusters, numbers.Real):
        raise TypeError('num_clusters must be an int count or a float '
                        f'fraction, got {num_clusters!r}')
    if isinstance(num_clusters, numbers.Integral):
        if num_clusters < 1:
            raise ValueError(
                f'num_clusters must be >= 1 as a count, got {num_clusters}')
        return min(int(num_clusters), num_tokens)
    if not 0.0 < num_clusters <= 1.0:
        raise ValueError('num_clusters as a fraction must be in (0, 1], '
                         f'got {num_clusters}')
    return max(1, min(num_tokens, round(num_clusters * num_tokens)))


def _density_peaks(x: Tensor, hw_shape: Tuple[int, int], k: int,
                   spatial_weight: float) -> Tuple[Tensor, Tensor, Tensor]:
    """Steps 1-3 in the global form: ``(rho, delta, scale)``, each
    ``[B, N]`` (``scale`` ``[B]``); the ``N x N`` distances are freed."""
    dist, scale = spatial_aware_distance(x, hw_shape, spatial_weight)
    rho = knn_density(dist, k, scale)
    return rho, distance_indicator(dist, rho), scale


@torch.no_grad()
def cluster_tokens(x: Tensor,
                   hw_shape: Tuple[int, int],
                   num_clusters: Union[int, float],
                   k: int = 5,
                   spatial_weight: float = 1.0,
                   window: Optional[int] = None,
                   token_sizes: Optional[Tensor] = None,
                   reducer: str = 'dpc_knn',
                   anchor_threshold: Optional[float] = None
                   ) -> ClusterAssignment:
    """Cluster patch tokens: by default AiluRus's spatial-aware density-peak
    clustering (docs/method.md, steps 1-5), or another reducer.

    Not differentiable: the result is an assignment of tokens to clusters.
    Use :func:`merge_tokens` and :func:`recover_tokens` for the features.

    Args:
        x: Patch tokens ``[B, N, C]`` (no cls token), row-major on the grid.
        hw_shape: ``(H, W)`` with ``H * W == N``.
        num_clusters: Anchors per image: an int count or a float fraction of
            ``N`` (see :func:`resolve_num_clusters`).
        k: Neighbours for the density; at most ``N - 1`` are used.
        spatial_weight: Weight of the spatial term (0 = plain DPC-kNN).
        window: If set, kNN, delta and anchor candidates are limited to a
            ``(2 * window + 1)^2`` neighbourhood (no ``O(N^2)`` step; see
            :mod:`ailurus_mm.ops.window`). ``None``: the global form, with
            assignment global in feature space. Any radius is accepted and
            the cost never exceeds the global form's: the radius is clipped
            to the grid, and when the clipped window has at least ``N - 1``
            candidates per token (as many as the global form), the global
            form runs instead (:func:`~ailurus_mm.ops.window.use_window`).
        token_sizes: Optional sizes ``[B, N]`` of already merged tokens;
            ``sizes`` then sums them.
        reducer: One of :data:`REDUCERS`: ``'dpc_knn'`` (AiluRus),
            ``'farthest'`` (farthest-point anchors seeded at the density
            peak, under the same distance), ``'kmeans'`` (Expedite-style),
            ``'tome'`` (bipartite matching), ``'random'`` (fixed random
            anchors) or ``'grid'`` (pooling to a coarse grid); see
            :mod:`ailurus_mm.ops.reducers`. Knobs a reducer does not take
            are ignored here (``AiluRusViT`` refuses them).
        anchor_threshold: ``dpc_knn`` without ``window`` only: a per-image
            count by content. The anchors are the tokens whose
            :func:`~ailurus_mm.ops.density.decision_scores` are above it, at
            least 1 and at most ``num_clusters`` (resolved as usual) per
            image. Images with fewer anchors than the batch's most get
            empty padding clusters (``sizes`` 0, never in ``index``).
            ``None``: exactly ``num_clusters`` anchors per image.

    Returns:
        The :class:`ClusterAssignment`.
    """
    batch, num_tokens = int(x.shape[0]), int(x.shape[1])
    hw_shape = (int(hw_shape[0]), int(hw_shape[1]))
    if hw_shape[0] * hw_shape[1] != num_tokens:
        raise ValueError(f'hw_shape {tuple(hw_shape)} does not match '
                         f'{num_tokens} tokens')
    if reducer not in REDUCERS:
        raise ValueError(f'reducer must be one of {tuple(REDUCERS)}, got '
                         f'{reducer!r}')
    if anchor_threshold is not None and (reducer != 'dpc_knn' or use_window(
            window, hw_shape)):
        raise ValueError('anchor_threshold needs the global dpc_knn '
                         f'reducer (window=None), got reducer={reducer!r}, '
                         f'window={window!r}')
    num_anchors = resolve_num_clusters(num_clusters, num_tokens)
    x = x.float()
    num_neighbours = max(1, min(k, num_tokens - 1))
    if num_tokens == 1 or (num_anchors == num_tokens and
                           anchor_threshold is None):
        anchors = torch.arange(num_tokens, device=x.device).expand(batch, -1)
        index = anchors.clone()
    elif reducer == 'grid':
        cells, anchors = grid_clusters(hw_shape, num_anchors, x.device)
        index, anchors = cells.expand(batch, -1), anchors.expand(batch, -1)
    elif reducer == 'kmeans':
        index, anchors = kmeans_clusters(x, hw_shape, num_anchors)
    elif reducer == 'tome':
        index, anchors = bipartite_clusters(x, num_anchors)
    elif reducer == 'random':
        anchors = random_anchors(num_tokens, num_anchors,
                                 x.device).expand(batch, -1)
        index = assign_to_anchors(x, anchors)
    elif reducer == 'farthest':
        dist, scale = spatial_aware_distance(x, hw_shape, spatial_weight)
        rho = knn_density(dist, num_neighbours, scale)
        anchors = farthest_point_anchors(dist, rho, num_anchors)
        del dist
        index = assign_to_anchors(x, anchors)
    else:
        if not use_window(window, hw_shape):
            rho, delta, scale = _density_peaks(x, hw_shape, num_neighbours,
                                               spatial_weight)
            if anchor_threshold is None:
                anchors = select_anchors(rho, delta, num_anchors)
                index = assign_to_anchors(x, anchors)
            else:
                anchors, valid = select_anchors_above(
                    decision_scores(rho, delta, scale), anchor_threshold,
                    num_anchors)
                index = assign_to_anchors(x, anchors, valid)
        else:
            rho, delta, neighbours = window_density_and_delta(
                x, hw_shape, num_neighbours, spatial_weight, window)
            anchors = select_anchors(rho, delta, num_anchors)
            index = assign_in_window(x, anchors, neighbours)
    weights = x.new_ones(index.shape) if token_sizes is None else \
        token_sizes.to(x.dtype)
    sizes = weights.new_zeros(batch, anchors.shape[1]).scatter_add_(
        1, index, weights)
    return ClusterAssignment(index, sizes, anchors, tuple(hw_shape))


@torch.no_grad()
def anchor_scores(x: Tensor,
                  hw_shape: Tuple[int, int],
                  k: int = 5,
                  spatial_weight: float = 1.0) -> Tensor:
    """The decision scores that ``anchor_threshold`` is compared with (the
    global ``dpc_knn`` form), for calibrating it.

    Args:
        x: Patch tokens ``[B, N, C]``.
        hw_shape: ``(H, W)``.

    Returns:
        ``[B, N]``.
    """
    rho, delta, scale = _density_peaks(
        x.float(), hw_shape, max(1, min(k, x.shape[1] - 1)), spatial_weight)
    return decision_scores(rho, delta, scale)


def calibrate_anchor_threshold(scores: Sequence[Tensor],
                               num_clusters: Union[int, float]) -> float:
    """The ``anchor_threshold`` that keeps as many tokens in total over a
    calibration set as ``num_clusters`` in every image would: the same mean
    token count, spread over the images by content.

    Args:
        scores: Decision scores of calibration images, each ``[N]`` or
            ``[B, N]`` (``N`` may differ between entries), e.g. from
            :func:`anchor_scores`.
        num_clusters: An int count or a float fraction, as for
            ``AiluRusViT`` (:func:`resolve_num_clusters` for every image).

    Returns:
        A threshold midway between the last score kept and the first one
        left out when all scores are ranked together.
    """
    rows = [s.reshape(-1, s.shape[-1]).float() for s in scores]
    if not rows:
        raise ValueError('calibrate_anchor_threshold needs the scores of at '
                         'least one image')
    total = sum(r.shape[0] * resolve_num_clusters(num_clusters, r.shape[1])
                for r in rows)
    ranked = torch.cat([r.flatten() for r in rows]).sort(
        descending=True).values
    if total >= ranked.numel():
        return float(ranked[-1]) - 1.0
    return float(ranked[total - 1] + ranked[total]) / 2
