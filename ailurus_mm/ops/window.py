"""Windowed approximation of the clustering, with no ``O(N^2)`` step.

For long sequences the global form needs ``N x N`` matrices. With a window
radius ``w``, the kNN and delta candidates of a token are restricted to its
``(2w + 1) x (2w + 1)`` grid neighbourhood, and each token joins the nearest
anchor (in feature space) among the anchors inside that neighbourhood; tokens
with no anchor in their window fall back to all anchors. Time is
``O(N w^2 C)`` plus the fallback, memory ``O(N w^2)``. The loops below run
over window offsets, never over tokens. Not differentiable (selection only).

The radius is clipped to the grid (:func:`window_radii`): offsets that can
never land on the grid are not computed, which changes no result, so a
window larger than the grid costs no more than one that just covers it.
:func:`~ailurus_mm.ops.cluster_tokens` goes further and runs the global form
when the clipped window has at least as many candidates per token as the
grid (:func:`use_window`).
"""
import math
from typing import List, NamedTuple, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .density import density_rank, lower_median, pairwise_feature_distance


class WindowNeighbours(NamedTuple):
    """Every token's window neighbours (the token itself excluded).

    Attributes:
        feature_dist: ``|x_i - x_j| / sqrt(C)`` of shape ``[B, N, K]``
            (``inf`` where the neighbour falls outside the grid).
        index: Token index of every neighbour ``[N, K]`` (0 where outside).
        inside: Whether the neighbour is on the grid ``[N, K]``.
    """
    feature_dist: Tensor
    index: Tensor
    inside: Tensor


def window_radii(window: int,
                 hw_shape: Tuple[int, int]) -> Tuple[int, int]:
    """The radius actually used along rows and columns of an ``H x W``
    grid: ``(min(window, H - 1), min(window, W - 1))``.

    A row offset beyond ``H - 1`` (column offset beyond ``W - 1``) never
    lands on the grid, so leaving it out changes no result.
    """
    return min(int(window), int(hw_shape[0]) - 1), min(
        int(window), int(hw_shape[1]) - 1)


def window_offsets(window: int,
                   hw_shape: Tuple[int, int]) -> List[Tuple[int, int]]:
    """Grid offsets ``(dy, dx)`` of a token's window neighbours, the token
    itself excluded, in raster order, clipped to the grid: at most
    ``(2H - 1)(2W - 1) - 1`` whatever ``window`` is."""
    rows, cols = window_radii(window, hw_shape)
    return [(dy, dx) for dy in range(-rows, rows + 1)
            for dx in range(-cols, cols + 1) if (dy, dx) != (0, 0)]


def use_window(window: Optional[int], hw_shape: Tuple[int, int]) -> bool:
    """Whether the windowed form is cheaper than the global one on this grid.

    False for ``None`` and when the clipped window has at least ``N - 1``
    candidates per token, as many as the global form compares every token
    with: it would then do more work than the global form for a coarser
    result.
    """
    if window is None:
        return False
    num_tokens = int(hw_shape[0]) * int(hw_shape[1])
    return len(window_offsets(window, hw_shape)) < num_tokens - 1


def _shift(grid: Tensor, dy: int, dx: int, fill: float) -> Tensor:
    """``out[..., r, c] = grid[..., r + dy, c + dx]`` (``fill`` outside)."""
    height, width = grid.shape[-2:]
    pad = max(abs(dy), abs(dx))
    padded = F.pad(grid, (pad, pad, pad, pad), value=fill)
    return padded[..., pad + dy:pad + dy + height, pad + dx:pad + dx + width]


def sampled_median_distance(x: Tensor, num_shifts: int = 8) -> Tensor:
    """Median feature distance of an image estimated from ``N * num_shifts``
    deterministic pairs ``(i, (i + shift) mod N)`` with shifts spread over the
    sequence, instead of all ``N^2`` pairs.

    Args:
        x: Patch tokens ``[B, N, C]``.
        num_shifts: Pairs per token.

    Returns:
        Estimated median of ``|x_i - x_j| / sqrt(C)``, shape ``[B]``.
    """
    num_tokens, channels = x.shape[1], x.shape[2]
    shifts = sorted({max(1, (num_tokens * s) // (num_shifts + 1))
                     for s in range(1, num_shifts + 1)})
    samples = [(x - x.roll(shift, dims=1)).norm(dim=-1) for shift in shifts]
    samples = torch.cat(samples, dim=1) / math.sqrt(channels)
    return lower_median(samples, dim=1)


def window_neighbours(x: Tensor, hw_shape: Tuple[int, int],
                      window: int) -> WindowNeighbours:
    """Feature distances from every token to its window neighbours.

    Distances are symmetric, so only half of the offsets are computed; the
    other half are the same maps shifted back.
    """
    batch, num_tokens, channels = x.shape
    height, width = hw_shape
    grid = x.reshape(batch, height, width, channels)
    offsets = window_offsets(window, hw_shape)
    half = {}
    for dy, dx in offsets[len(offsets) // 2:]:  # the "positive" half
        shifted = _shift(grid.permute(0, 3, 1, 2), dy, dx, 0.0)
        diff = grid - shifted.permute(0, 2, 3, 1)
        half[(dy, dx)] = torch.linalg.vector_norm(diff, dim=-1)
    rows = torch.arange(height, device=x.device).view(-1, 1)
    cols = torch.arange(width, device=x.device).view(1, -1)
    dists, index, inside = [], [], []
    for dy, dx in offsets:
        if (dy, dx) in half:
            dist = half[(dy, dx)]
        else:  # d(p, p - o) = d(p - o, p): the map of -o, shifted by o
            dist = _shift(half[(-dy, -dx)], dy, dx, float('inf'))
        valid = ((rows + dy >= 0) & (rows + dy < height) & (cols + dx >= 0)
                 & (cols + dx < width))
        dists.append(dist.masked_fill(~valid, float('inf')))
        index.append(((rows + dy) * width + cols + dx).clamp(
            0, num_tokens - 1).masked_fill(~valid, 0))
        inside.append(valid)
    feature_dist = torch.stack(dists, -1).reshape(batch, num_tokens, -1)
    return WindowNeighbours(
        feature_dist / math.sqrt(channels),
        torch.stack(index, -1).reshape(num_tokens, -1),
        torch.stack(inside, -1).reshape(num_tokens, -1))


def window_density_and_delta(
        x: Tensor, hw_shape: Tuple[int, int], k: int, spatial_weight: float,
        window: int) -> Tuple[Tensor, Tensor, WindowNeighbours]:
    """Steps 1-3 of docs/method.md restricted to a spatial window.

    Uses the same spatial-aware distance as the global form, with the median
    feature distance estimated by :func:`sampled_median_distance`. Tokens
    with no denser token inside their window (local density peaks) get the
    largest window distance of the image as ``delta``, as the global peak
    does.

    Args:
        x: Patch tokens ``[B, N, C]`` on the grid ``hw_shape``.
        hw_shape: ``(H, W)`` with ``H * W == N``.
        k: Neighbours for the density; clipped to the window size.
        spatial_weight: ``lambda``, ``>= 0``.
        window: Radius ``w >= 1``, clipped to the grid
            (:func:`window_radii`).

    Returns:
        ``(rho, delta, neighbours)``; ``rho`` and ``delta`` are ``[B, N]``.
    """
    batch, num_tokens, _ = x.shape
    scale = sampled_median_distance(x).clamp_min(torch.finfo(x.dtype).eps)
    neighbours = window_neighbours(x, hw_shape, window)
    offsets = window_offsets(window, hw_shape)
    spatial = x.new_tensor([math.hypot(dy, dx) for dy, dx in offsets])
    dist = neighbours.feature_dist + (spatial_weight * scale).view(
        -1, 1, 1) * spatial / max(hw_shape)

    num_neighbours = min(k, len(offsets))
    nearest = dist.topk(num_neighbours, dim=-1, largest=False).values
    # Tokens near the border may have fewer valid neighbours than k: their
    # missing entries are inf; average over the valid ones only.
    finite = torch.isfinite(nearest)
    nearest = torch.where(finite, nearest / scale.view(-1, 1, 1), 0.)
    rho = torch.exp(-nearest.pow(2).sum(-1) / finite.sum(-1).clamp_min(1))

    rank = density_rank(rho)
    neighbour_rank = rank[:, neighbours.index]  # [B, N, K]
    denser = (neighbour_rank < rank.unsqueeze(-1)) & neighbours.inside
    delta = dist.masked_fill(~denser, float('inf')).amin(dim=-1)
    largest = dist.masked_fill(~neighbours.inside, 0.).amax(dim=(1, 2))
    delta = torch.where(torch.isinf(delta), largest.view(-1, 1), delta)
    return rho, delta, neighbours


def assign_in_window(x: Tensor, anchors: Tensor,
                     neighbours: WindowNeighbours) -> Tensor:
    """Step 5 with a window: each token joins the anchor nearest in feature
    space among the anchors in its window (ties: the first in raster order
    of the window); tokens with none fall back to all anchors.

    Args:
        x: Patch tokens ``[B, N, C]``.
        anchors: Anchor token indices ``[B, M]``, increasing.
        neighbours: From :func:`window_neighbours` on the same ``x``.

    Returns:
        Cluster id of every token ``[B, N]``; anchor ``m`` is in cluster
        ``m``.
    """
    batch, num_tokens, _ = x.shape
    num_anchors = anchors.shape[1]
    cluster_ids = torch.arange(num_anchors, device=x.device)
    cluster_of = torch.full((batch, num_tokens), -1, dtype=torch.long,
                            device=x.device)
    cluster_of.scatter_(1, anchors, cluster_ids.expand_as(anchors))
    neighbour_cluster = cluster_of[:, neighbours.index]  # [B, N, K]
    is_anchor = (neighbour_cluster >= 0) & neighbours.inside
    dist = neighbours.feature_dist.masked_fill(~is_anchor, float('inf'))
    best = dist.argmin(dim=-1, keepdim=True)
    index = neighbour_cluster.gather(-1, best).squeeze(-1)
    orphans = ~is_anchor.any(dim=-1)
    for b in range(batch):  # a loop over images, for the few orphans
        tokens = orphans[b].nonzero().squeeze(-1)
        if tokens.numel():
            index[b, tokens] = pairwise_feature_distance(
                x[b, tokens][None], x[b, anchors[b]][None])[0].argmin(-1)
    index.scatter_(1, anchors, cluster_ids.expand_as(anchors))
    return index
