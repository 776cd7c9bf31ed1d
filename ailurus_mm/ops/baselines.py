"""The field's other token reducers, as clusterings of the patch tokens
(registered in :mod:`ailurus_mm.ops.reducers`).

Every function here returns a cluster id per token (``[B, N]``, values in
``[0, M)``, every cluster non-empty) and one representative token per
cluster (``[B, M]``, increasing, so merged tokens keep the raster order),
exactly like the spatial-aware DPC-kNN of :mod:`ailurus_mm.ops.density`.
So all of them run through the same merge, later layers, and recovery of
``AiluRusViT``, and are compared at equal token counts on one checkpoint.
They are deterministic (fixed seeds, stable sorts, ties to the lower token
index) and not differentiable (selection only). See ``docs/method.md``,
"Reducers".

- :func:`grid_clusters`: naive low resolution, ``M`` near-equal cells;
- :func:`kmeans_clusters`: Expedite-style k-means, centres from the pooled
  grid, a few hard iterations, each token choosing among the centres of
  nearby cells only;
- :func:`bipartite_clusters`: ToMe-style bipartite soft matching by cosine
  similarity, down to ``M`` tokens in one step;
- :func:`random_anchors`: a fixed random subset of tokens as anchors (then
  nearest-anchor assignment);
- :func:`farthest_point_anchors`: farthest-point sampling under a distance
  matrix, seeded at the density peak (then nearest-anchor assignment).
"""
import math
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .density import stable_order
from .merge import segment_sum


def grid_layout(hw_shape: Tuple[int, int],
                num_clusters: int) -> Tuple[int, Tensor]:
    """Split an ``H x W`` grid into exactly ``M`` near-equal cells.

    The rows are cut into ``R`` bands (``R`` about ``sqrt(M H / W)``), band
    ``b`` into ``q`` or ``q + 1`` columns (``M = R q + rest``), so every cell
    holds at least one token whenever ``M <= H W``.

    Args:
        hw_shape: ``(H, W)``.
        num_clusters: ``M`` in ``[1, H * W]``.

    Returns:
        ``(R, columns)``: the number of bands and the columns of each band
        (long ``[R]``, summing to ``M``).
    """
    height, width = hw_shape
    if not 1 <= num_clusters <= height * width:
        raise ValueError(f'num_clusters={num_clusters} must be in [1, '
                         f'{height * width}] for a {height}x{width} grid')
    bands = min(height, max(1, round(math.sqrt(num_clusters * height /
                                               width))))
    while math.ceil(num_clusters / bands) > width:
        bands += 1
    base, rest = divmod(num_clusters, bands)
    columns = torch.full((bands, ), base, dtype=torch.long)
    # The extra columns go to evenly spread bands.
    extra = torch.linspace(0, bands - 1, rest).round().long() if rest else \
        torch.empty(0, dtype=torch.long)
    if rest:
        taken = torch.zeros(bands, dtype=torch.bool)
        for b in extra.tolist():  # resolve rounding collisions
            while taken[b]:
                b = (b + 1) % bands
            taken[b] = True
        columns += taken.long()
    return bands, columns


def grid_clusters(hw_shape: Tuple[int, int], num_clusters: int,
                  device: torch.device) -> Tuple[Tensor, Tensor]:
    """Grid pooling: every token joins the cell of :func:`grid_layout` it
    lies in. The same for every image.

    Returns:
        ``(index, centres)``: the cell of every token ``[N]`` and the token
        at the centre of every cell ``[M]`` (increasing).
    """
    height, width = hw_shape
    bands, columns = grid_layout(hw_shape, num_clusters)
    rows = torch.arange(height)
    band_of_row = (rows * bands) // height  # [H]
    cols_in_band = columns[band_of_row]  # [H]
    cols = torch.arange(width)
    col_cell = (cols[None, :] * cols_in_band[:, None]) // width  # [H, W]
    first_cell = torch.cat([columns.new_zeros(1), columns.cumsum(0)[:-1]])
    index = (first_cell[band_of_row][:, None] + col_cell).reshape(-1)
    # Centre token of each cell: middle row of its band, middle column.
    band = torch.repeat_interleave(torch.arange(bands), columns)  # [M]
    within = torch.arange(num_clusters) - first_cell[band]
    row_lo = (band * height + bands - 1) // bands
    row_hi = ((band + 1) * height + bands - 1) // bands
    col_lo = (within * width + columns[band] - 1) // columns[band]
    col_hi = ((within + 1) * width + columns[band] - 1) // columns[band]
    centre = ((row_lo + row_hi - 1) // 2) * width + (col_lo + col_hi - 1) // 2
    return index.to(device), centre.to(device)


def _scatter_mean(x: Tensor, index: Tensor, num_clusters: int) -> Tuple[
        Tensor, Tensor]:
    """Mean of ``x [B, N, C]`` per cluster of ``index [B, N]``, and the
    member counts ``[B, M]``."""
    batch = x.shape[0]
    counts = x.new_zeros(batch, num_clusters).scatter_add_(
        1, index, x.new_ones(index.shape))
    sums = segment_sum(x, index, num_clusters)
    return sums / counts.clamp_min(1).unsqueeze(-1), counts


def _squared_distance(x: Tensor, centres: Tensor) -> Tensor:
    """``|x_i - c_m|^2`` for ``x [B, N, C]`` and ``centres [B, M, C]``."""
    return torch.baddbmm(
        x.pow(2).sum(-1, keepdim=True) + centres.pow(2).sum(-1).unsqueeze(1),
        x, centres.transpose(1, 2), alpha=-2.0).clamp_min_(0)


def kmeans_clusters(x: Tensor,
                    hw_shape: Tuple[int, int],
                    num_clusters: int,
                    iterations: int = 5,
                    window: int = 2) -> Tuple[Tensor, Tensor]:
    """Expedite-style local k-means (hard assignments).

    Centres start as the mean tokens of the :func:`grid_layout` cells; each
    iteration every token joins the nearest centre (feature distance) among
    the cells within ``window`` cells of its own (Chebyshev distance in cell
    units), and centres become the means of their members (an emptied
    cluster keeps its centre). After the last assignment every cluster keeps
    the token at its cell's centre, so none is empty.

    Args:
        x: Patch tokens ``[B, N, C]``.
        hw_shape: ``(H, W)``.
        num_clusters: ``M``.
        iterations: Centre updates.
        window: Neighbourhood radius in cells.

    Returns:
        ``(index [B, N], centre tokens [B, M])``.
    """
    batch, num_tokens, _ = x.shape
    height, width = hw_shape
    cell, centre_token = grid_clusters(hw_shape, num_clusters, x.device)
    # Which centres each token may join: cells near its own.
    bands, columns = grid_layout(hw_shape, num_clusters)
    cell_h, cell_w = height / bands, width / columns.float().mean().item()
    pos = torch.stack(torch.meshgrid(
        torch.arange(height, device=x.device, dtype=torch.float32),
        torch.arange(width, device=x.device, dtype=torch.float32),
        indexing='ij'), -1).reshape(-1, 2)
    centre_pos = pos[centre_token]
    gap = (pos[:, None] - centre_pos[None]).abs()  # [N, M, 2]
    allowed = (gap[..., 0] <= (window + 0.5) * cell_h) & \
        (gap[..., 1] <= (window + 0.5) * cell_w)
    allowed[torch.arange(num_tokens, device=x.device), cell] = True
    blocked = ~allowed

    index = cell.expand(batch, -1)
    centres, _ = _scatter_mean(x, index, num_clusters)
    for _ in range(iterations):
        dist = _squared_distance(x, centres).masked_fill_(blocked, math.inf)
        index = dist.argmin(-1)
        means, counts = _scatter_mean(x, index, num_clusters)
        centres = torch.where(counts.unsqueeze(-1) > 0, means, centres)
    dist = _squared_distance(x, centres).masked_fill_(blocked, math.inf)
    index = dist.argmin(-1)
    ids = torch.arange(num_clusters, device=x.device).expand(batch, -1)
    index.scatter_(1, centre_token.expand(batch, -1), ids)
    return index, centre_token.expand(batch, -1)


def bipartite_clusters(x: Tensor,
                       num_clusters: int) -> Tuple[Tensor, Tensor]:
    """ToMe-style bipartite soft matching down to ``M`` tokens in one step.

    Tokens are split into sources ``A`` and destinations ``B``; every source
    finds its most similar destination (cosine similarity of the features),
    and the ``N - M`` sources with the most similar match are merged into
    it; the other sources stay on their own. ToMe's alternating split
    (``A`` = even raster positions) can remove at most half of the tokens;
    to keep fewer than half, ``B`` is ``M`` evenly spaced tokens and every
    other token is merged.

    Args:
        x: Patch tokens ``[B, N, C]``.
        num_clusters: ``M`` in ``[1, N]``.

    Returns:
        ``(index [B, N], representative tokens [B, M])``: clusters are
        numbered in the raster order of their representatives (the
        destination, or the unmerged source itself).
    """
    batch, num_tokens, _ = x.shape
    device = x.device
    positions = torch.arange(num_tokens, device=device)
    num_merged = num_tokens - num_clusters
    if num_merged <= (num_tokens + 1) // 2:
        src, dst = positions[::2], positions[1::2]
    else:
        dst = torch.linspace(0, num_tokens - 1, num_clusters,
                             device=device).round().long()
        is_dst = torch.zeros(num_tokens, dtype=torch.bool, device=device)
        is_dst[dst] = True
        src = positions[~is_dst]
    if num_merged == 0 or dst.numel() == 0:
        index = positions.expand(batch, -1).clone()
        return index, index.clone()
    metric = F.normalize(x.float(), dim=-1)
    similarity = metric[:, src] @ metric[:, dst].transpose(1, 2)
    best, best_dst = similarity.max(dim=-1)  # first maximum on ties
    order = stable_order(best, descending=True)
    merged_src = order[:, :num_merged]  # positions in src
    target = torch.full((batch, num_tokens), -1, dtype=torch.long,
                        device=device)  # token each token is merged into
    target[:, dst] = dst
    target[:, src] = src
    rows = torch.arange(batch, device=device)[:, None]
    target[rows, src[merged_src]] = dst[best_dst.gather(1, merged_src)]
    is_rep = target == positions
    cluster_of = is_rep.long().cumsum(1) - 1  # id of each representative
    index = cluster_of.gather(1, target)
    representatives = positions.expand(batch, -1)[is_rep].view(batch, -1)
    return index, representatives


def random_anchors(num_tokens: int,
                   num_clusters: int,
                   device: torch.device,
                   seed: int = 0) -> Tensor:
    """``M`` anchors drawn at random from a fixed seed (the same for every
    image, so batches equal single images).

    Returns:
        Anchor token indices ``[M]``, increasing.
    """
    generator = torch.Generator().manual_seed(seed)
    anchors = torch.randperm(num_tokens, generator=generator)[:num_clusters]
    # As a plain list: a constant of a traced graph (ONNX export), the
    # same values.
    return torch.tensor(sorted(anchors.tolist()), device=device)


def farthest_point_anchors(dist: Tensor, rho: Tensor,
                           num_clusters: int) -> Tensor:
    """Farthest-point sampling of ``M`` anchors under ``dist``.

    The first anchor is the density peak (highest ``rho``, lowest index on
    ties); every next one is the token farthest from all anchors so far
    (lowest index on ties). ``M - 1`` sequential steps of ``O(N)`` work on
    the batch.

    Args:
        dist: Pairwise distances ``[B, N, N]``.
        rho: Densities ``[B, N]``.
        num_clusters: ``M`` in ``[1, N]``.

    Returns:
        Anchor token indices ``[B, M]``, increasing.
    """
    batch = dist.shape[0]
    rows = torch.arange(batch, device=dist.device)
    anchors = dist.new_empty(batch, num_clusters, dtype=torch.long)
    current = rho.argmax(dim=-1)
    anchors[:, 0] = current
    nearest = dist[rows, current].clone()  # distance to the nearest anchor
    nearest[rows, current] = -1.0
    for step in range(1, num_clusters):
        current = nearest.argmax(dim=-1)
        anchors[:, step] = current
        torch.minimum(nearest, dist[rows, current], out=nearest)
        nearest[rows, current] = -1.0
    return anchors.sort(dim=-1).values
