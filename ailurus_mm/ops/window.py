"""Windowed approximation of the density and distance indicator.

For long sequences the global form needs an ``N x N`` matrix. With a window
radius ``w`` the kNN and delta candidates of a token are restricted to its
``(2w + 1) x (2w + 1)`` grid neighbourhood, so time is ``O(N w^2 C)`` and
memory ``O(N w^2)``. The loop below runs over the window offsets, never over
tokens. Not differentiable (selection only).
"""
import math
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .density import density_rank


def _window_offsets(window: int) -> list:
    return [(dy, dx) for dy in range(-window, window + 1)
            for dx in range(-window, window + 1) if (dy, dx) != (0, 0)]


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
    batch, num_tokens, channels = x.shape
    shifts = sorted({max(1, (num_tokens * s) // (num_shifts + 1))
                     for s in range(1, num_shifts + 1)})
    samples = [(x - x.roll(shift, dims=1)).norm(dim=-1) for shift in shifts]
    samples = torch.cat(samples, dim=1) / math.sqrt(channels)
    return samples.median(dim=1).values


def window_density_and_delta(x: Tensor, hw_shape: Tuple[int, int], k: int,
                             spatial_weight: float,
                             window: int) -> Tuple[Tensor, Tensor]:
    """Steps 1-3 of METHOD.md restricted to a spatial window.

    Uses the same spatial-aware distance as the global form. Tokens with no
    denser token inside their window (local density peaks) get the largest
    window distance of the image as ``delta``, as the global peak does.

    Args:
        x: Patch tokens ``[B, N, C]`` on the grid ``hw_shape``.
        hw_shape: ``(H, W)`` with ``H * W == N``.
        k: Neighbours for the density; clipped to the window size.
        spatial_weight: ``lambda``, ``>= 0``.
        window: Radius ``w >= 1``.

    Returns:
        ``(rho, delta)``, each ``[B, N]``.
    """
    batch, num_tokens, channels = x.shape
    height, width = hw_shape
    scale = sampled_median_distance(x).clamp_min(torch.finfo(x.dtype).eps)

    grid = x.reshape(batch, height, width, channels)
    padded = F.pad(grid, (0, 0, window, window, window, window))
    valid = F.pad(
        x.new_ones(1, height, width), (window, window, window, window))
    offsets = _window_offsets(window)

    dists, masks = [], []
    for dy, dx in offsets:
        rows = slice(window + dy, window + dy + height)
        cols = slice(window + dx, window + dx + width)
        dists.append((grid - padded[:, rows, cols]).pow(2).sum(-1))
        masks.append(valid[:, rows, cols] > 0)
    feat = torch.stack(dists, dim=-1).reshape(batch, num_tokens, -1)
    feat = feat.sqrt_().div_(math.sqrt(channels))
    inside = torch.stack(masks, dim=-1).reshape(1, num_tokens, -1)
    spatial = x.new_tensor([math.hypot(dy, dx) for dy, dx in offsets])
    dist = feat + (spatial_weight * scale).view(-1, 1, 1) * spatial / max(
        hw_shape)
    dist = dist.masked_fill(~inside, float('inf'))

    num_neighbours = min(k, len(offsets))
    nearest = dist.topk(num_neighbours, dim=-1, largest=False).values
    # Tokens near the border may have fewer valid neighbours than k: their
    # missing entries are inf; average over the valid ones only.
    finite = torch.isfinite(nearest)
    nearest = torch.where(finite, nearest / scale.view(-1, 1, 1), 0.)
    rho = torch.exp(-nearest.pow(2).sum(-1) / finite.sum(-1).clamp_min(1))

    rank = density_rank(rho).reshape(batch, height, width).float()
    padded_rank = F.pad(rank, (window, window, window, window),
                        value=float('inf'))
    neighbour_rank = torch.stack([
        padded_rank[:, window + dy:window + dy + height,
                    window + dx:window + dx + width] for dy, dx in offsets
    ], dim=-1).reshape(batch, num_tokens, -1)
    denser = neighbour_rank < rank.reshape(batch, num_tokens, 1)
    delta = dist.masked_fill(~denser, float('inf')).amin(dim=-1)
    largest = dist.masked_fill(~inside, 0.).amax(dim=(1, 2))
    delta = torch.where(torch.isinf(delta), largest.view(-1, 1), delta)
    return rho, delta
