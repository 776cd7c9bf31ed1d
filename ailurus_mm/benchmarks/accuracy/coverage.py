"""The coverage study (``--studies coverage``): ``dpc_cover`` with one part
changed at a time, to show what each part of it is worth.

Every variant is ``dpc_cover`` (:mod:`ailurus_mm.ops.cover`) built from the
same pieces with one change:

- the coverage rule: none (top-M of ``rho * delta``, the paper's step 4),
  a fixed square of half a cluster spacing (the first probe's rule), or
  the best token of each of ``M`` grid cells, instead of the widest disk
  that leaves ``M`` anchors;
- the score: ``rho`` alone, or random, instead of ``rho * delta``;
- the refinement: 0, 1 or 5 Lloyd iterations instead of 3, a reach of 1
  or 2 cluster spacings instead of 1.5, or a spatial term in the
  assignment distance.

The variants are registered as reducers (``dpc_cover@<change>``) only
while a study runs, in the benchmark's processes: they are not part of the
package's reducers.
"""
import contextlib
import functools
import math
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from ailurus_mm.ops import REDUCERS, ClusterConfig, register_reducer
from ailurus_mm.ops import cover
from ailurus_mm.ops.baselines import grid_clusters
from ailurus_mm.ops.density import density_peaks, grid_positions
from ailurus_mm.ops.reducers import Clusters
from ..presets import Preset
from .grid import Setting

# name -> the change (keyword arguments of :func:`variant`).
VARIANTS: Dict[str, Dict] = {
    'dpc_cover@top_m': dict(rule='top_m'),
    'dpc_cover@square': dict(rule='square'),
    'dpc_cover@per_cell': dict(rule='per_cell'),
    'dpc_cover@score_rho': dict(score='rho'),
    'dpc_cover@score_random': dict(score='random'),
    'dpc_cover@iters0': dict(iterations=0),
    'dpc_cover@iters1': dict(iterations=1),
    'dpc_cover@iters5': dict(iterations=5),
    'dpc_cover@reach1': dict(reach=1.0),
    'dpc_cover@reach2': dict(reach=2.0),
    'dpc_cover@spatial_assign': dict(spatial=0.5),
}
KEEPS = (0.25, 0.15)


def _anchors(score: Tensor, hw_shape: Tuple[int, int], num_anchors: int,
             rule: str) -> Tensor:
    batch, num_tokens = score.shape
    if rule == 'disk':
        return cover.cover_anchors(score, hw_shape, num_anchors).anchors
    priority = cover.token_priority(score)
    if rule == 'top_m':
        chosen = torch.zeros_like(priority)
    elif rule == 'square':
        # Chebyshev radius: half a cluster spacing (the disk of radius^2
        # 2 r^2 is that square for r <= 2, all this study reaches)
        radius = int(0.5 * cover.cluster_spacing(num_tokens, num_anchors))
        chosen = cover.suppress(priority, hw_shape, [2 * radius * radius])[
            :, 0].float() if radius else torch.zeros_like(priority)
    else:  # per_cell: the best token of each grid cell
        cell, _ = grid_clusters(hw_shape, num_anchors, score.device)
        cell = cell.expand(batch, -1)
        best = priority.new_zeros(batch, num_anchors).scatter_reduce(
            1, cell, priority, 'amax')
        chosen = (priority == best.gather(1, cell)).float()
    key = priority + num_tokens * chosen
    return key.topk(num_anchors, dim=-1).indices.sort(dim=-1).values


def variant(x: Tensor, hw_shape: Tuple[int, int], num_anchors: int,
            config: ClusterConfig, positions: Optional[Tensor] = None,
            rule: str = 'disk', score: str = 'rho_delta',
            iterations: int = 3, reach: float = 1.5,
            spatial: float = 0.0) -> Clusters:
    """``dpc_cover`` with one part changed (the defaults are its own)."""
    k = max(1, min(config.k, x.shape[1] - 1))
    rho, delta, _ = density_peaks(x, hw_shape, k, config.spatial_weight)
    if score == 'rho_delta':
        values = rho * delta
    elif score == 'rho':
        values = rho
    else:
        values = torch.rand(rho.shape[-1], generator=torch.Generator(
        ).manual_seed(0)).to(rho.device).expand_as(rho)
    num_tokens = x.shape[1]
    spacing = cover.cluster_spacing(num_tokens, num_anchors)
    anchors = _anchors(values, hw_shape, num_anchors, rule)
    radii = cover.covering_radii(anchors, hw_shape,
                                 max(1, int(reach * spacing)))
    if spatial:  # positions as channels, per cluster spacing
        grid = grid_positions(hw_shape, x.device)
        scale = (x - x.roll(7, 1)).norm(dim=-1).median(dim=1).values
        x = torch.cat([x, grid.expand(x.shape[0], -1, -1) * (
            spatial * scale / spacing).view(-1, 1, 1)], -1)
    layout = cover.window_layout(x, anchors, hw_shape, radii)
    centres = x.gather(1, anchors.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
    index = cover.assign_in_windows(layout, centres)
    for _ in range(iterations):
        centres = cover.cluster_means(x, index, num_anchors, centres)
        index = cover.assign_in_windows(layout, centres)
    ids = torch.arange(num_anchors, device=x.device).expand_as(anchors)
    return Clusters(index.scatter(1, anchors, ids), anchors)


def register() -> None:
    """Register the variants as reducers (idempotent)."""
    for name, change in VARIANTS.items():
        if name not in REDUCERS:
            register_reducer(name, knobs=('k', 'spatial_weight'),
                             description=f'dpc_cover, {change}')(
                functools.partial(variant, **change))


@contextlib.contextmanager
def registered() -> Iterator[None]:
    """The variants are reducers inside the block only."""
    new = [name for name in VARIANTS if name not in REDUCERS]
    register()
    try:
        yield
    finally:
        for name in new:
            REDUCERS.pop(name, None)


def coverage_settings(keeps: Sequence[float] = KEEPS) -> List[Setting]:
    """Every variant at every keep, with proportional attention (call
    inside :func:`registered`)."""
    return [Setting(Preset(name, dict(reducer=name)), keep, True,
                    label=name)
            for name in VARIANTS for keep in keeps
            if not math.isclose(keep, 1.0)]
