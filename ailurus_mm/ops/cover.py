"""Density peaks that cover the image: ailurus_mm's clustering
(``reducer='dpc_cover'``, beyond the paper; docs/method.md).

The paper's step 4 takes the ``M`` tokens of highest ``rho * delta``: on
real images they crowd onto textured and boundary tokens and leave flat
regions to a few far anchors. Here the same scores choose anchors that
cover the grid, and a few local Lloyd iterations refine the clusters:

1. Anchors (:func:`cover_anchors`): tokens in score order, skipping any
   token within a disk around an anchor already taken (greedy
   suppression), the ``M`` best of them. The disk is chosen per image: the
   widest whose suppression still takes at least ``M`` tokens, so anchors
   keep apart as far as the count allows while the lowest-scored of the
   survivors (flat regions) are left to their neighbours. The greedy pass
   is computed as rounds of batched local-maximum tests (:func:`suppress`),
   for all candidate disks at once, never a loop over tokens.
2. Refinement (:func:`assign_in_windows`): every token joins the nearest
   centre in feature space among the anchors within ``reach`` cells of it
   (the anchors stay where they are; their centres move), then centres
   become their members' means; ``iterations`` times, then a last
   assignment. Each pass compares every token with the anchors of its
   tile of the grid only: ``O(N w^2 C)`` for a reach of ``w`` cluster
   spacings, in batched matrix products, no ``N x M`` or ``N x N``
   matrix.
3. Every anchor stays in its own cluster, so none is empty.

Everything is per image (a batch equals its images one by one) and
deterministic: ties go to the lower token index in step 1 and to the
spatially nearer anchor (then a fixed offset order) in step 2; a near tie
in step 2 (within the matrix product's rounding) is decided on the feature
differences, so the product's rounding (BLAS, device, runtime) does not
choose. Not differentiable (selection only).
"""
import math
from typing import List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .density import stable_order
from .merge import segment_sum


def cluster_spacing(num_tokens: int, num_anchors: int) -> float:
    """Side of the grid cell one anchor stands for, ``sqrt(N / M)``."""
    return math.sqrt(num_tokens / num_anchors)


def token_priority(score: Tensor) -> Tensor:
    """Distinct priorities in the order of decreasing ``score`` (ties: the
    lower token index first), ``N`` for the best token down to 1.

    Args:
        score: ``[B, N]``.

    Returns:
        Float ``[B, N]`` (integers, exact up to ``N = 2^24``).
    """
    num_tokens = score.shape[-1]
    order = stable_order(score, descending=True)
    ranks = torch.arange(num_tokens, 0, -1, device=score.device,
                         dtype=torch.float32)
    return torch.empty_like(ranks.expand_as(order)).scatter_(
        -1, order, ranks.expand_as(order))


# While exporting to ONNX (a static graph, no data-dependent loop): at most
# EXPORT_ROUNDS suppression rounds (tokens still undecided then are not
# taken; real images need at most 8, docs/usage.md), and the assignment
# window is the reach plus EXPORT_MARGIN cells for every image instead of
# being widened per image (real images need at most 3 more). Anywhere
# else the results are exact.
EXPORT_ROUNDS = 16
EXPORT_MARGIN = 4

# A token's two nearest centres are a near tie when their squared
# distances from the matrix product differ by at most this much of
# ``|token|^2 + |centre|^2``: about 8 times the product's typical rounding
# error for 1000 channels (``sqrt(C)`` float32 epsilons), 4 times for
# 4000. A few tokens per assignment pass on real images (at most 9 of
# 2700 on CamVid); while exporting, the EXPORT_TIES nearest a tie of
# every image are compared on the features.
TIE_BOUND = 2.0**-16
EXPORT_TIES = 64


def exporting() -> bool:
    """Whether the model is being exported to ONNX."""
    return torch.onnx.is_in_onnx_export()


# The most disks :func:`cover_anchors` tries per call (spread over the
# candidates when there are more: only at keep ratios below about 0.1).
MAX_DISKS = 8


def suppression_radii(spacing: float) -> List[int]:
    """The squared disk radii :func:`cover_anchors` chooses from for a
    cluster spacing: every ``dy^2 + dx^2`` (a distinct disk on the grid)
    from 1 up to ``1.2 spacing^2``, where even a perfect packing of the
    disks leaves fewer than ``M`` anchors; at most :data:`MAX_DISKS`,
    evenly spread over them (the smallest and the largest kept)."""
    limit = max(1, int(1.2 * spacing * spacing))
    side = math.isqrt(limit)
    radii = sorted({dy * dy + dx * dx for dy in range(side + 1)
                    for dx in range(side + 1)} & set(range(1, limit + 1)))
    if len(radii) <= MAX_DISKS:
        return radii
    picks = torch.linspace(0, len(radii) - 1, MAX_DISKS).round().long()
    return [radii[i] for i in picks.tolist()]


def disk_rectangles(radius2: int) -> List[Tuple[int, int]]:
    """The disk ``dy^2 + dx^2 <= radius2`` of grid offsets as a union of
    centred rectangles ``(half height, half width)``: one per row extent,
    none inside another."""
    halves = [(a, math.isqrt(radius2 - a * a))
              for a in range(math.isqrt(radius2) + 1)]
    return [(a, b) for a, b in halves
            if not any(c >= a and d >= b and (c, d) != (a, b)
                       for c, d in halves)]


class _Disks(NamedTuple):
    """The disks of :func:`suppress` as rectangles: every distinct
    rectangle of :func:`disk_rectangles` over the radii, and which radius
    holds which ``[Q, R]``."""
    rectangles: List[Tuple[int, int]]
    member: Tensor


def _disks(radii2: Sequence[int], device: torch.device) -> _Disks:
    per_radius = [disk_rectangles(r2) for r2 in radii2]
    rectangles = sorted({rect for rects in per_radius for rect in rects})
    member = torch.tensor([[rect in rects for rects in per_radius]
                           for rect in rectangles], device=device)
    return _Disks(rectangles, member)


def _disk_max(values: Tensor, disks: _Disks) -> Tensor:
    """Maximum of ``values [B, R, H, W]`` (``>= 0``) over the disk of
    radius ``r`` around every cell, per radius ``r``: the maximum of its
    rectangles' max-pools (cells off the grid do not count)."""
    pooled = torch.stack([
        F.max_pool2d(values, (2 * a + 1, 2 * b + 1), 1, (a, b))
        for a, b in disks.rectangles])  # [Q, B, R, H, W]
    return pooled.masked_fill(~disks.member[:, None, :, None, None],
                              0.0).amax(dim=0)


def suppress(priority: Tensor, hw_shape: Tuple[int, int],
             radii2: Sequence[int]) -> Tensor:
    """Greedy suppression on the grid, for several disk radii at once:
    tokens in priority order, each taken unless a token already taken is
    within the disk (Euclidean distance ``<= r``).

    Computed in rounds: a token is taken when it has the highest priority
    among the undecided tokens of its disk; the undecided tokens in the
    disk of a taken token are skipped. Each round takes at least the best
    undecided token, and the result equals the sequential greedy pass (a
    token is decided only after every better token near it).

    Args:
        priority: Distinct positive priorities ``[B, N]``
            (:func:`token_priority`).
        hw_shape: ``(H, W)``.
        radii2: Squared radii ``r^2 >= 1``.

    Returns:
        Bool ``[B, R, N]``: the tokens taken, per radius.
    """
    batch, num_tokens = priority.shape
    height, width = hw_shape
    disks = _disks(radii2, priority.device)
    priority = priority.view(batch, 1, height, width).expand(
        -1, len(radii2), -1, -1)
    taken = torch.zeros_like(priority, dtype=torch.bool)
    undecided = ~taken
    rounds = 0
    while True:
        candidates = priority.masked_fill(~undecided, 0.0)
        new = undecided & (candidates == _disk_max(candidates, disks))
        taken = taken | new
        undecided = undecided & ~(_disk_max(new.float(), disks) > 0)
        rounds += 1
        done = rounds == EXPORT_ROUNDS if exporting() else \
            not bool(undecided.any())
        if done:
            return taken.view(batch, len(radii2), num_tokens)


class CoverAnchors(NamedTuple):
    """What :func:`cover_anchors` returns.

    Attributes:
        anchors: Anchor token indices ``[B, M]``, increasing.
        radius2: The squared suppression radius chosen per image ``[B]``.
        filled: Whether each anchor was taken by the suppression (False)
            or fills up to ``M`` (True) ``[B, M]``.
    """
    anchors: Tensor
    radius2: Tensor
    filled: Tensor


def cover_anchors(score: Tensor, hw_shape: Tuple[int, int],
                  num_anchors: int) -> CoverAnchors:
    """Step 1: ``M`` anchors in score order that keep apart.

    Per image, the widest disk of :func:`suppression_radii` whose greedy
    suppression (:func:`suppress`) still takes at least ``M`` tokens; the
    ``M`` best of them are the anchors. If even the smallest disk takes
    fewer, the best skipped tokens fill the rest.

    Args:
        score: Anchor scores ``[B, N]`` (e.g. ``rho * delta``).
        hw_shape: The grid ``(H, W)``, ``H * W == N``.
        num_anchors: ``M`` in ``[1, N]``.

    Returns:
        :class:`CoverAnchors`. No two anchors that are not fillers are
        within the chosen radius of each other.
    """
    batch, num_tokens = score.shape
    priority = token_priority(score)
    radii2 = suppression_radii(cluster_spacing(num_tokens, num_anchors))
    taken = suppress(priority, hw_shape, radii2)  # [B, R, N]
    enough = taken.sum(-1) >= num_anchors
    # The widest radius with enough tokens taken (else the smallest).
    steps = torch.arange(1, len(radii2) + 1, device=score.device)
    choice = (enough * steps).argmax(dim=-1)
    chosen = taken.gather(1, choice.view(-1, 1, 1).expand(
        -1, 1, num_tokens)).squeeze(1)
    # Taken tokens first (in priority order), then the skipped ones.
    key = priority + num_tokens * chosen
    anchors = key.topk(num_anchors, dim=-1).indices.sort(dim=-1).values
    return CoverAnchors(anchors, torch.tensor(radii2, device=score.device)[
        choice], ~chosen.gather(1, anchors))


def _dilate(mask: Tensor, radius: int) -> Tensor:
    """Whether any ``True`` of ``mask [B, 1, H, W]`` is within Chebyshev
    ``radius``."""
    if radius == 0:
        return mask
    return F.max_pool2d(mask.float(), 2 * radius + 1, 1, radius) > 0


def covering_radii(anchors: Tensor, hw_shape: Tuple[int, int],
                   minimum: int) -> Tensor:
    """Per image, the smallest Chebyshev radius ``>= minimum`` within which
    every token has an anchor.

    Args:
        anchors: ``[B, M]`` token indices.
        hw_shape: ``(H, W)``.
        minimum: ``>= 0``.

    Returns:
        Long ``[B]``.
    """
    batch = anchors.shape[0]
    height, width = hw_shape
    marks = torch.zeros(batch, height * width, dtype=torch.bool,
                        device=anchors.device)
    marks.scatter_(1, anchors, torch.ones_like(anchors, dtype=torch.bool))
    marks = marks.view(batch, 1, height, width)
    if exporting():  # a fixed number of steps, at most EXPORT_MARGIN more
        radii = torch.full((batch, ), minimum + EXPORT_MARGIN,
                           dtype=torch.long, device=anchors.device)
        for radius in range(minimum + EXPORT_MARGIN - 1, minimum - 1, -1):
            covered = _dilate(marks, radius).flatten(1).all(dim=1)
            radii = torch.where(covered, radius, radii)
        return radii
    radii = torch.full((batch, ), minimum, dtype=torch.long,
                       device=anchors.device)
    radius = minimum
    covered = _dilate(marks, radius).flatten(1).all(dim=1)
    while not bool(covered.all()):
        radius += 1
        radii = torch.where(covered, radii, radius)
        covered = _dilate(marks, radius).flatten(1).all(dim=1)
    return radii


def tile_side(reach: int) -> int:
    """Side of the square tiles :func:`assign_in_windows` cuts the grid
    into for a window radius ``reach``: ``2 reach`` (at least 4), so an
    anchor reaches at most 3 tiles per axis."""
    return max(4, 2 * reach)


def _tile_count(length, side: int):
    """``ceil(length / side)`` (``length`` may be a traced size)."""
    return (length + side - 1) // side


def _tiles(values: Tensor, hw_shape: Tuple[int, int], side: int) -> Tensor:
    """``[B, N, ...]`` on the row-major grid to ``[B, T, side^2, ...]``
    tiles (the grid padded with zeros to whole tiles)."""
    batch, _, *rest = values.shape
    height, width = hw_shape
    rows, cols = _tile_count(height, side), _tile_count(width, side)
    grid = values.reshape(batch, height, width, -1)
    grid = F.pad(grid, (0, 0, 0, cols * side - width, 0,
                        rows * side - height))
    grid = grid.view(batch, rows, side, cols, side, grid.shape[-1])
    return grid.permute(0, 1, 3, 2, 4, 5).reshape(
        batch, rows * cols, side * side, *rest)


def _untile(values: Tensor, hw_shape: Tuple[int, int], side: int) -> Tensor:
    """The inverse of :func:`_tiles` for ``[B, T, side^2]``: ``[B, N]``."""
    batch = values.shape[0]
    height, width = hw_shape
    rows, cols = _tile_count(height, side), _tile_count(width, side)
    grid = values.view(batch, rows, cols, side, side).permute(0, 1, 3, 2, 4)
    grid = grid.reshape(batch, rows * side, cols * side)
    return grid[:, :height, :width].reshape(batch, height * width)


def _tile_candidates(anchors: Tensor, hw_shape: Tuple[int, int], side: int,
                     reach: int) -> Tensor:
    """Per tile, the clusters whose anchor is within ``reach`` of it:
    ``[B, T, K]`` (cluster ids in increasing order, -1 padding; ``K`` the
    most any tile of the batch has)."""
    batch, num_anchors = anchors.shape
    height, width = hw_shape
    rows, cols = _tile_count(height, side), _tile_count(width, side)
    num_tiles = rows * cols
    span = torch.arange(2 * reach // side + 2, device=anchors.device)

    def tiles_along(position: Tensor, count: int) -> Tuple[Tensor, Tensor]:
        # floor((position - reach) / side) with non-negative operands only
        # (an exported integer division truncates toward zero)
        lift = reach // side + 1
        first = (position - reach + lift * side) // side - lift
        index = first.unsqueeze(-1) + span  # [B, M, S]
        ok = (index >= 0) & (index < count) & \
            (index * side <= position.unsqueeze(-1) + reach)
        return index, ok

    tile_row, row_ok = tiles_along(anchors // width, rows)
    tile_col, col_ok = tiles_along(anchors % width, cols)
    tile = (tile_row.unsqueeze(-1) * cols + tile_col.unsqueeze(-2))
    ok = row_ok.unsqueeze(-1) & col_ok.unsqueeze(-2)
    tile = torch.where(ok, tile, num_tiles).view(batch, -1)  # [B, M * J]
    cluster = torch.arange(num_anchors, device=anchors.device)
    cluster = cluster.repeat_interleave(tile.shape[1] // num_anchors).expand(
        batch, -1)
    # Grouped by tile, clusters in increasing order within each.
    order = stable_order(tile, dim=1)
    tile, cluster = tile.gather(1, order), cluster.gather(1, order)
    counts = torch.zeros(batch, num_tiles + 1, dtype=torch.long,
                         device=anchors.device).scatter_add_(
                             1, tile, torch.ones_like(tile))
    slot = torch.arange(tile.shape[1], device=anchors.device) - (
        counts.cumsum(1) - counts).gather(1, tile)
    if exporting():  # a static bound: every anchor the region can hold
        width_k = min(num_anchors, (side + 2 * reach)**2)
    else:
        width_k = max(1, int(counts[:, :num_tiles].max()))
    real = tile < num_tiles
    flat = torch.where(real, tile * width_k + slot, num_tiles * width_k)
    table = torch.full((batch, num_tiles * width_k + 1), -1,
                       dtype=torch.long, device=anchors.device)
    table.scatter_(1, flat, torch.where(real, cluster, -1))
    return table[:, :-1].view(batch, num_tiles, width_k)


class WindowLayout(NamedTuple):
    """What every assignment pass of one clustering shares (the anchors and
    windows stay; only the centres move): see :func:`window_layout`.

    Attributes:
        table: Candidate clusters of every tile ``[B, T, K]`` (-1:
            padding).
        tokens: The tokens, tile by tile ``[B, T, S, C]``.
        tokens_sq: Their squared norms ``[B, T, S, 1]``.
        penalty: Per (token, candidate) pair, ``inf`` where the candidate
            is out of the token's window (or padding), else 0
            ``[B, T, S, K]``.
        order: Per pair, its tie-break rank (the nearer anchor first, then
            the offset in raster order) ``[B, T, S, K]``.
        hw_shape: ``(H, W)``.
        side: Tile side.
    """
    table: Tensor
    tokens: Tensor
    tokens_sq: Tensor
    penalty: Tensor
    order: Tensor
    hw_shape: Tuple[int, int]
    side: int


def window_layout(x: Tensor, anchors: Tensor, hw_shape: Tuple[int, int],
                  radii: Tensor, reach: Optional[int] = None
                  ) -> WindowLayout:
    """Cut the grid into tiles (:func:`tile_side`) and list, per tile, the
    anchors that can reach its tokens (within Chebyshev ``radii[b]``).

    Args:
        x: Tokens ``[B, N, C]`` (float32).
        anchors: Anchor token indices ``[B, M]`` (where each cluster's
            window is centred).
        hw_shape: ``(H, W)``.
        radii: Per-image window radius ``[B]`` (long); every token must
            have an anchor within it (:func:`covering_radii`).
        reach: The largest radius the tiles provide for (default:
            ``radii.max()``; a static bound while exporting).
    """
    batch = x.shape[0]
    width = hw_shape[1]
    if reach is None:
        reach = int(radii.max())
    side = tile_side(reach)
    if exporting() and (side + 2 * reach)**2 >= anchors.shape[1]:
        # every anchor is a candidate of every tile anyway (the static
        # width, _tile_candidates): one tile, no padding
        side = max(hw_shape)
    table = _tile_candidates(anchors, hw_shape, side, reach)  # [B, T, K]
    tokens = _tiles(x, hw_shape, side)  # [B, T, S, C]
    # Offsets token - anchor of every (token, candidate) pair.
    position = torch.arange(hw_shape[0] * width, device=x.device)
    position = _tiles(position.expand(batch, -1), hw_shape, side)
    anchor = anchors.gather(1, table.clamp_min(0).view(batch, -1)).view(
        table.shape)
    dy = (position // width).unsqueeze(-1) - (anchor // width).unsqueeze(-2)
    dx = (position % width).unsqueeze(-1) - (anchor % width).unsqueeze(-2)
    ring = torch.maximum(dy.abs(), dx.abs())
    inside = (table >= 0).unsqueeze(-2) & (ring <= radii.view(-1, 1, 1, 1))
    side_k = 2 * reach + 1
    return WindowLayout(
        table=table, tokens=tokens,
        tokens_sq=tokens.pow(2).sum(-1, keepdim=True),
        penalty=torch.zeros(inside.shape, dtype=x.dtype,
                            device=x.device).masked_fill_(~inside, math.inf),
        order=((ring * side_k + dy + reach) * side_k + dx +
               reach).masked_fill_(~inside, side_k**3),
        hw_shape=tuple(hw_shape), side=side)


def assign_in_windows(layout: WindowLayout, centres: Tensor) -> Tensor:
    """Step 2's assignment: every token joins the centre nearest in
    feature space among the anchors within its window (ties: the spatially
    nearer anchor, then the offset in raster order).

    Every tile compares its tokens with the centres of the anchors that
    can reach it, in one batched matrix product: ``O(N K C)`` for ``K``
    about ``(4 reach / spacing)^2`` anchors per tile, no ``N x M`` matrix.

    Args:
        layout: From :func:`window_layout`.
        centres: Cluster centres ``[B, M, C]``.

    Returns:
        Cluster of every token ``[B, N]``.
    """
    table = layout.table
    batch, num_clusters, channels = centres.shape
    slots = table.clamp_min(0).view(batch, -1)
    # index_select of rows: much faster than gather with an expanded index.
    rows = slots + num_clusters * torch.arange(
        batch, device=slots.device).unsqueeze(-1)
    candidates = centres.reshape(-1, channels).index_select(
        0, rows.flatten()).view(*table.shape, channels)
    centres_sq = centres.pow(2).sum(-1).gather(1, slots).view(table.shape)
    dist = torch.baddbmm(
        (layout.tokens_sq + centres_sq.unsqueeze(-2)).flatten(0, 1),
        layout.tokens.flatten(0, 1),
        candidates.flatten(0, 1).transpose(1, 2), alpha=-2.0)
    dist = dist.view(layout.penalty.shape).clamp_min_(0) + layout.penalty
    pick = _nearest(dist, layout.order)
    first = table.gather(2, pick)
    # A near tie (the runner-up within the product's rounding bound) is
    # decided on the feature differences instead: the product's terms
    # cancel, and its rounding differs between BLAS libraries, devices
    # and runtimes. The runner-up itself is found at the near ties only.
    rest = dist.scatter(-1, pick.unsqueeze(-1), math.inf)
    gap = rest.amin(dim=-1) - dist.amin(dim=-1)
    bound = TIE_BOUND * (layout.tokens_sq.squeeze(-1) +
                         centres_sq.gather(2, pick))
    image, position = _near_ties(gap, bound)

    def at(values: Tensor) -> Tensor:  # [B, T, S, ...] at the near ties
        return values.reshape(batch, -1, *values.shape[3:])[image, position]

    close = at(gap <= bound)
    tokens, order, pick = at(layout.tokens), at(layout.order), at(pick)
    second = _nearest(at(rest), order)
    first_id = at(first)
    second_id = table[image, position // layout.tokens.shape[2]].gather(
        -1, second.unsqueeze(-1)).squeeze(-1)
    flat = centres.reshape(-1, channels)

    def exact(cluster: Tensor) -> Tensor:
        centre = flat.index_select(0, (cluster + num_clusters * image)
                                   .flatten()).view(tokens.shape)
        return torch.linalg.vector_norm(tokens - centre, dim=-1)

    near, other = exact(first_id), exact(second_id)
    order_first = order.gather(-1, pick.unsqueeze(-1)).squeeze(-1)
    order_second = order.gather(-1, second.unsqueeze(-1)).squeeze(-1)
    swap = close & ((other < near) | ((other == near) &
                                      (order_second < order_first)))
    chosen = first.reshape(batch, -1).index_put(
        (image, position), torch.where(swap, second_id, first_id))
    return _untile(chosen.view(first.shape), layout.hw_shape, layout.side)


def _near_ties(gap: Tensor, bound: Tensor) -> Tuple[Tensor, Tensor]:
    """``(image, position)`` indices into ``[B, T * S]`` of the tokens
    whose two nearest centres are a near tie (``gap <= bound``, both
    ``[B, T, S]``): all of them, or while exporting (a static graph) the
    :data:`EXPORT_TIES` nearest a tie of every image."""
    batch = gap.shape[0]
    if not exporting():
        return (gap <= bound).view(batch, -1).nonzero(as_tuple=True)
    excess = (gap - bound).view(batch, -1)
    position = excess.topk(min(excess.shape[1], EXPORT_TIES), dim=-1,
                           largest=False).indices
    return torch.arange(batch, device=gap.device).unsqueeze(-1), position


def _nearest(dist: Tensor, order: Tensor) -> Tensor:
    """Per row of ``dist [..., K]``, the position of the least value (ties:
    the least ``order``)."""
    nearest = dist == dist.amin(dim=-1, keepdim=True)
    return order.masked_fill(~nearest, torch.iinfo(order.dtype).max).argmin(
        dim=-1)


def cluster_means(x: Tensor, index: Tensor, num_clusters: int,
                  previous: Tensor) -> Tensor:
    """Mean of every cluster's members ``[B, M, C]`` (an empty cluster
    keeps ``previous``)."""
    batch = x.shape[0]
    counts = x.new_zeros(batch, num_clusters).scatter_add_(
        1, index, x.new_ones(index.shape))
    sums = segment_sum(x, index, num_clusters)
    means = sums / counts.clamp_min(1).unsqueeze(-1)
    return torch.where(counts.unsqueeze(-1) > 0, means, previous)


def cover_clusters(x: Tensor,
                   hw_shape: Tuple[int, int],
                   score: Tensor,
                   num_anchors: int,
                   iterations: int = 3,
                   reach: float = 1.5) -> Tuple[Tensor, Tensor]:
    """Steps 1-3 (see the module docstring).

    Args:
        x: Tokens ``[B, N, C]`` (float32), row-major on the grid.
        hw_shape: ``(H, W)``.
        score: Anchor scores ``[B, N]`` (``rho * delta``).
        num_anchors: ``M`` in ``[1, N]``.
        iterations: Lloyd iterations (centre updates), ``>= 0``.
        reach: Window radius of the assignment in cluster spacings
            (:func:`cluster_spacing`), rounded down to whole cells (at
            least 1); widened for an image until every token has an anchor
            in it.

    Returns:
        ``(index [B, N], anchors [B, M])``: the cluster of every token and
        every cluster's anchor token (increasing).
    """
    num_tokens, channels = x.shape[1], x.shape[2]
    spacing = cluster_spacing(num_tokens, num_anchors)
    anchors = cover_anchors(score, hw_shape, num_anchors).anchors
    minimum = max(1, int(reach * spacing))
    radii = covering_radii(anchors, hw_shape, minimum)
    layout = window_layout(x, anchors, hw_shape, radii,
                           minimum + EXPORT_MARGIN if exporting() else None)
    centres = x.gather(1, anchors.unsqueeze(-1).expand(-1, -1, channels))
    index = assign_in_windows(layout, centres)
    for _ in range(iterations):
        centres = cluster_means(x, index, num_anchors, centres)
        index = assign_in_windows(layout, centres)
    ids = torch.arange(num_anchors, device=x.device).expand_as(anchors)
    return index.scatter(1, anchors, ids), anchors
