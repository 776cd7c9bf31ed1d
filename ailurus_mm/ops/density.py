"""Spatial-aware density-peak clustering, global form (docs/method.md,
steps 1-5).

All tensors are batched: ``[batch, tokens, channels]`` for features, and the
functions work per image without Python loops over tokens. Nothing here is
differentiable on purpose: the outputs are indices and scores used to select
anchors, and callers run them under ``torch.no_grad()``.
"""
import functools
import math
from typing import Callable, Optional, Tuple

import torch
from torch import Tensor


def stable_order(values: Tensor, dim: int = -1,
                 descending: bool = False) -> Tensor:
    """The indices that sort ``values`` along ``dim``, ties in index order:
    ``torch.sort(stable=True)``, or, while exporting to ONNX (which has no
    stable sort), ``TopK`` over the whole dimension, whose ties go to the
    lower index too: the same order."""
    if torch.onnx.is_in_onnx_export():
        return values.topk(values.shape[dim], dim=dim,
                           largest=descending).indices
    return torch.sort(values, dim=dim, descending=descending,
                      stable=True).indices


# Bisection steps of the exported median before its exact selection among
# MEDIAN_WIDTH values: the interval around the median shrinks 2^28-fold
# from the values' range, so it holds fewer values than that unless they
# crowd within about 2^-20 of the range around the median, or are one
# value repeated (then any of them is the median). Exact on distances
# crowded within 1e-4 of their median with outliers 300 times as far;
# 8 steps and a width of 1/32 of the values (before) left more on real
# images: another scale than eager, hence other anchors. Each step is a
# pass over the values (28: about 20 ms for 850 thousand in ONNX Runtime,
# 1 thread); a TopK of 1/32 of a million took 21 ms more.
MEDIAN_BISECTIONS = 28
MEDIAN_WIDTH = 256


def lower_median(values: Tensor, dim: int = -1) -> Tensor:
    """``values.median(dim).values`` (the lower of the two middle values
    for an even count) of finite non-negative ``values``.

    Eager: ``torch.median`` of each row (a selection, about 8 times
    faster than a sort of a million values). While exporting to ONNX (no
    median op, and a sort is a TopK of the whole dimension): a few
    bisection steps on the value, counting the values at or below it,
    narrow an interval ``(low, high]`` that holds the median; the median
    is then the right smallest value above ``low``, a TopK of a few: the
    same number whenever the interval holds at most :data:`MEDIAN_WIDTH`
    values or one value repeated (:data:`MEDIAN_BISECTIONS`).
    Rows only (``dim`` the last of 2-D ``values``).
    """
    middle = (values.shape[dim] - 1) // 2
    if not torch.onnx.is_in_onnx_export():
        # row by row: the whole-tensor median is about 25 % faster than
        # the per-row kernel on a CPU
        return torch.stack([row.median() for row in values.unbind(0)])
    high = values.amax(dim=-1, keepdim=True)
    least = values.amin(dim=-1, keepdim=True)
    # strictly below every value (so no value is at or below it), and
    # only just: the bisection starts from the values' own range
    low = least - (high - least) * 2**-10 - least.abs() * 2**-20 - 1e-30
    for _ in range(MEDIAN_BISECTIONS):
        mid = (low + high) / 2
        enough = (values <= mid).float().sum(-1, keepdim=True) > middle
        high = torch.where(enough, mid, high)
        low = torch.where(enough, low, mid)
    # the (middle - below + 1)-th smallest value above low
    below = (values <= low).float().sum(-1, keepdim=True)
    # A static width (the graph cannot size it by the data).
    width = min(values.shape[-1], MEDIAN_WIDTH)
    rank = (middle - below).long().clamp(0, width - 1)
    candidates = values.masked_fill(values <= low, float('inf'))
    smallest = candidates.topk(width, dim=-1, largest=False).values
    return smallest.gather(-1, rank).squeeze(-1)


def pairwise_feature_distance(x: Tensor,
                              y: Tensor,
                              scale: float = 1.0) -> Tensor:
    """Euclidean distance between every token of ``x`` and of ``y``, times
    ``scale``.

    Computed as ``sqrt(|x|^2 + |y|^2 - 2 x.y)`` with one batched matmul, which
    is what ``torch.cdist`` does for large inputs, but clamped at zero so no
    NaN appears from rounding.

    Args:
        x: Features of shape ``[B, N, C]``.
        y: Features of shape ``[B, M, C]``.
        scale: Factor applied to the distances (folded into the matmul).

    Returns:
        Distances of shape ``[B, N, M]``.
    """
    x_sq = x.pow(2).sum(-1, keepdim=True)
    y_sq = y.pow(2).sum(-1).unsqueeze(1)
    factor = scale * scale
    dist_sq = torch.baddbmm(
        x_sq + y_sq, x, y.transpose(1, 2), beta=factor, alpha=-2.0 * factor)
    return dist_sq.clamp_min_(0.0).sqrt_()


# Above this many distances per image, the median is taken over a strided
# subset of rows (deterministic), which estimates it closely at a fraction of
# the cost: ~1M values instead of e.g. 16.8M for 4096 tokens.
MEDIAN_SAMPLE_SIZE = 2**20


def median_distance(dist: Tensor) -> Tensor:
    """Per-image median of a ``[B, N, N]`` distance matrix (exact up to
    :data:`MEDIAN_SAMPLE_SIZE` values, from every ``stride``-th row above).

    Returns:
        ``[B]``.
    """
    batch, num_rows, num_cols = dist.shape
    stride = max(1, math.ceil(num_rows * num_cols / MEDIAN_SAMPLE_SIZE))
    return lower_median(dist[:, ::stride].reshape(batch, -1), dim=1)


def grid_positions(hw_shape: Tuple[int, int],
                   device: torch.device) -> Tensor:
    """Row/column coordinates of a row-major ``H x W`` token grid.

    Returns:
        Float tensor of shape ``[H * W, 2]``.
    """
    height, width = hw_shape
    rows = torch.arange(height, device=device, dtype=torch.float32)
    cols = torch.arange(width, device=device, dtype=torch.float32)
    grid = torch.stack(torch.meshgrid(rows, cols, indexing='ij'), dim=-1)
    return grid.reshape(-1, 2)


def spatial_aware_distance(x: Tensor,
                           hw_shape: Tuple[int, int],
                           spatial_weight: float) -> Tuple[Tensor, Tensor]:
    """Step 1: spatial-aware distance between all token pairs.

    ``D(i, j) = |x_i - x_j| / sqrt(C) + spatial_weight * s * |p_i - p_j| /
    max(H, W)`` where ``s`` is the median feature distance of the image (see
    :func:`median_distance`), so ``spatial_weight`` is scale-free.

    Args:
        x: Patch tokens of shape ``[B, N, C]``.
        hw_shape: The token grid ``(H, W)`` of the image.
        spatial_weight: Weight of the spatial term (docs/method.md, step
            1), ``>= 0``.

    Returns:
        ``(dist, scale)``: distances ``[B, N, N]`` (zero on the diagonal) and
        the per-image median feature distance ``s`` of shape ``[B]``
        (clamped away from zero).
    """
    batch, num_tokens, channels = x.shape
    # Centred first (distances do not change): less cancellation.
    centred = x - x.mean(dim=1, keepdim=True)
    dist = pairwise_feature_distance(centred, centred,
                                     scale=1.0 / math.sqrt(channels))
    dist.diagonal(dim1=1, dim2=2).zero_()
    scale = median_distance(dist).clamp_min(torch.finfo(dist.dtype).eps)
    if spatial_weight > 0:
        pos = grid_positions(hw_shape, x.device).to(dist.dtype)
        pos_dist = torch.cdist(pos, pos).unsqueeze(0)
        dist.addcmul_(pos_dist, (spatial_weight * scale /
                                 max(hw_shape)).view(batch, 1, 1))
    return dist, scale


def pair_distance(x: Tensor, hw_shape: Tuple[int, int],
                  spatial_weight: float, scale: Tensor,
                  index: Tensor) -> Tensor:
    """The spatial-aware distance ``D(i, j)`` of :func:`spatial_aware_distance`
    from every token ``i`` to the tokens ``j = index[b, i, m]``, computed
    from the feature differences themselves.

    The ``N x N`` matrix takes ``|x_i|^2 + |x_j|^2 - 2 x_i.x_j`` from one
    matrix product: the terms cancel for near tokens, and the rounding
    left (which differs between BLAS libraries, devices and runtimes)
    reorders tokens of near-equal density. The densities and distance
    indicators take their few distances from here instead: the neighbours
    are still chosen on the matrix, only their distances are recomputed.

    Args:
        x: Tokens ``[B, N, C]``.
        hw_shape: ``(H, W)``.
        spatial_weight: As in :func:`spatial_aware_distance`.
        scale: The per-image ``s`` ``[B]``.
        index: Token indices ``[B, N, m]``.

    Returns:
        ``[B, N, m]``.
    """
    batch, num_tokens, channels = x.shape
    width = hw_shape[1]
    flat = x.reshape(-1, channels)
    rows = index + num_tokens * torch.arange(
        batch, device=x.device).view(-1, 1, 1)
    # One neighbour at a time: no [B, N, m, C] temporary (index_select of
    # rows: much faster than gather with an expanded index).
    dist = torch.stack([
        torch.linalg.vector_norm(
            flat.index_select(0, rows[..., j].flatten()).view_as(x) - x,
            dim=-1) for j in range(index.shape[-1])
    ], dim=-1) * (1.0 / math.sqrt(channels))
    if spatial_weight > 0:
        token = torch.arange(num_tokens, device=x.device).view(1, -1, 1)
        dy = (index // width - token // width).to(dist.dtype)
        dx = (index % width - token % width).to(dist.dtype)
        dist = dist + (dy * dy + dx * dx).sqrt() * (
            spatial_weight * scale / max(hw_shape)).view(-1, 1, 1)
    return dist


PairDistance = Callable[[Tensor], Tensor]


def knn_density(dist: Tensor, k: int, scale: Tensor,
                refine: Optional[PairDistance] = None) -> Tensor:
    """Step 2: DPC-kNN local density ``exp(-mean_kNN (D / s)^2)``.

    Args:
        dist: Distances ``[B, N, N]`` with zeros on the diagonal.
        k: Neighbours, ``1 <= k < N``.
        scale: Per-image scale ``s`` of shape ``[B]``.
        refine: The distances of chosen pairs (``index [B, N, m]`` to
            ``[B, N, m]``), e.g. :func:`pair_distance`: the neighbours are
            found on ``dist``, their distances taken from ``refine``.
            Default: ``dist``'s own.

    Returns:
        Density ``rho`` of shape ``[B, N]``.
    """
    # The k + 1 smallest include the token itself (distance exactly 0).
    if refine is None:
        nearest = dist.topk(k + 1, dim=-1, largest=False).values[..., 1:]
    else:
        nearest = refine(dist.topk(k + 1, dim=-1,
                                   largest=False).indices[..., 1:])
    nearest = nearest / scale.view(-1, 1, 1)
    return torch.exp(-nearest.pow(2).mean(-1))


def density_rank(rho: Tensor) -> Tensor:
    """Position of every token in the order of decreasing density.

    Ties are broken by token index (a stable sort), so the order is strict and
    deterministic on every device.

    Returns:
        Long tensor ``[B, N]``; rank 0 is the global density peak.
    """
    order = stable_order(rho, descending=True)
    rank = torch.empty_like(order)
    positions = torch.arange(rho.shape[-1], device=rho.device)
    rank.scatter_(-1, order, positions.expand_as(order))
    return rank


def distance_indicator(dist: Tensor, rho: Tensor,
                       refine: Optional[PairDistance] = None) -> Tensor:
    """Step 3: distance to the nearest token of higher density.

    Args:
        dist: Distances ``[B, N, N]``.
        rho: Densities ``[B, N]``.
        refine: As in :func:`knn_density`: the nearest denser token is
            found on ``dist``, its distance taken from ``refine``.

    Returns:
        ``delta`` of shape ``[B, N]``; the global density peak gets its largest
        distance.
    """
    rank = density_rank(rho)
    denser = rank.unsqueeze(1) < rank.unsqueeze(2)  # [B, i, j]: j above i
    masked = torch.where(denser, dist, float('inf'))
    # the peak's row only (one N x N pass fewer than the max of every row)
    peak = rank.argmin(dim=-1).view(-1, 1, 1).expand(-1, 1, dist.shape[-1])
    if refine is None:
        largest = dist.gather(1, peak).amax(dim=-1)  # [B, 1]
        return torch.where(rank == 0, largest, masked.amin(dim=-1))
    farthest = dist.gather(1, peak).argmax(dim=-1)  # [B, 1]
    partner = torch.where(rank == 0, farthest, masked.argmin(dim=-1))
    return refine(partner.unsqueeze(-1)).squeeze(-1)


def density_peaks(x: Tensor,
                  hw_shape: Tuple[int, int],
                  k: int,
                  spatial_weight: float) -> Tuple[Tensor, Tensor, Tensor]:
    """Steps 1-3 in the global form: neighbours chosen on the ``N x N``
    matrix, their distances recomputed from the features
    (:func:`pair_distance`), so the density order does not depend on a
    matrix product's rounding.

    Args:
        x: Tokens ``[B, N, C]``.
        hw_shape: The token grid ``(H, W)``.
        k: Neighbours of the density, ``1 <= k < N``.
        spatial_weight: See :func:`spatial_aware_distance`.

    Returns:
        ``(rho, delta, scale)``: ``[B, N]``, ``[B, N]`` and ``[B]``; the
        ``N x N`` distances are freed.
    """
    dist, scale = spatial_aware_distance(x, hw_shape, spatial_weight)
    refine = functools.partial(pair_distance, x, hw_shape, spatial_weight,
                               scale)
    rho = knn_density(dist, k, scale, refine)
    return rho, distance_indicator(dist, rho, refine), scale


def select_anchors(rho: Tensor, delta: Tensor, num_clusters: int) -> Tensor:
    """Step 4: the ``num_clusters`` tokens with the highest ``rho * delta``.

    Args:
        rho: Densities ``[B, N]``.
        delta: Distance indicators ``[B, N]``.
        num_clusters: Anchors per image ``M``, ``1 <= M <= N``.

    Returns:
        Token indices of the anchors ``[B, M]``, in increasing order (so
        merged tokens keep the raster order of their anchors).
    """
    score = rho * delta
    order = stable_order(score, descending=True)
    return order[:, :num_clusters].sort(dim=-1).values


def assign_to_anchors(x: Tensor, anchors: Tensor) -> Tensor:
    """Step 5: each token joins the anchor nearest in feature space.

    Args:
        x: Patch tokens ``[B, N, C]``.
        anchors: Anchor token indices ``[B, M]``.

    Returns:
        Cluster id of every token ``[B, N]`` (values in ``[0, M)``); anchor
        ``m`` is always in cluster ``m``.
    """
    anchor_feats = x.gather(
        1, anchors.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
    dist = pairwise_feature_distance(x, anchor_feats)
    cluster_ids = torch.arange(anchors.shape[1], device=x.device).expand_as(
        anchors)
    index = dist.argmin(dim=-1)
    index.scatter_(1, anchors, cluster_ids)
    return index
