"""The token reducers: one table, one signature.

A reducer groups the patch tokens of every image into ``M`` clusters. Each
is one function registered here with :func:`register_reducer`, which also
declares the knobs of :class:`~ailurus_mm.ops.ClusterConfig` it reads (the
others must keep their defaults; ``ClusterConfig`` refuses them otherwise,
for ``AiluRusViT`` and ``cluster_tokens`` alike). Adding a reducer is one
function plus its ``@register_reducer`` line.

Every reducer takes ``(x, hw_shape, num_anchors, config)``:

- ``x``: float32 tokens ``[B, N, C]``, row-major on the grid;
- ``hw_shape``: the patch grid ``(H, W)``;
- ``num_anchors``: ``M`` in ``[1, N)``;
- ``config``: the :class:`~ailurus_mm.ops.ClusterConfig`;

and returns a :class:`Clusters`: the cluster of every token ``[B, N]``
(values in ``[0, M)``, no cluster empty) and one representative token per
cluster ``[B, M]`` (increasing, so merged tokens keep the raster order).
Reducers run under ``torch.no_grad()`` and are deterministic: ties go to
the lower index, seeds are fixed. ``docs/method.md`` describes each.
"""
from typing import TYPE_CHECKING, Callable, Dict, NamedTuple, Tuple

from torch import Tensor

from . import baselines
from .cover import cover_clusters
from .density import (assign_to_anchors, density_peaks, knn_density,
                      select_anchors, spatial_aware_distance)
from .window import assign_in_window, use_window, window_density_and_delta

if TYPE_CHECKING:  # (cluster_config imports this module)
    from .cluster_config import ClusterConfig


class Clusters(NamedTuple):
    """What a reducer returns.

    Attributes:
        index: Cluster of every token ``[B, N]`` (long).
        anchors: Representative token of every cluster ``[B, M]`` (long,
            increasing).
    """
    index: Tensor
    anchors: Tensor


ReducerFn = Callable[[Tensor, Tuple[int, int], int, 'ClusterConfig'],
                     Clusters]


class ReducerSpec(NamedTuple):
    """A registered reducer.

    Attributes:
        fn: The function (see the module docstring).
        knobs: The ``ClusterConfig`` knobs it reads besides
            ``num_clusters``.
        description: One line, for reports.
    """
    fn: ReducerFn
    knobs: Tuple[str, ...]
    description: str


REDUCERS: Dict[str, ReducerSpec] = {}


def register_reducer(name: str,
                     knobs: Tuple[str, ...] = (),
                     description: str = '') -> Callable[[ReducerFn],
                                                        ReducerFn]:
    """Register a reducer function under ``name`` (a decorator)."""

    def decorator(fn: ReducerFn) -> ReducerFn:
        if name in REDUCERS:
            raise KeyError(f'reducer {name!r} is already registered')
        REDUCERS[name] = ReducerSpec(fn, tuple(knobs), description)
        return fn

    return decorator


@register_reducer(
    'dpc_cover', knobs=('k', 'spatial_weight', 'window'),
    description='density peaks that cover the image, refined locally '
    '(ailurus_mm, the default)')
def dpc_cover(x: Tensor, hw_shape: Tuple[int, int], num_anchors: int,
              config: 'ClusterConfig') -> Clusters:
    """The spatial-aware density peaks (steps 1-3, global or windowed)
    choose anchors that cover the grid, then local Lloyd iterations refine
    the clusters (:mod:`ailurus_mm.ops.cover`)."""
    k = max(1, min(config.k, x.shape[1] - 1))
    if use_window(config.window, hw_shape):
        rho, delta, _ = window_density_and_delta(
            x, hw_shape, k, config.spatial_weight, config.window)
    else:
        rho, delta, _ = density_peaks(x, hw_shape, k, config.spatial_weight)
    return Clusters(*cover_clusters(x, hw_shape, rho * delta, num_anchors))


@register_reducer(
    'dpc_knn', knobs=('k', 'spatial_weight', 'window'),
    description='the paper\'s spatial-aware DPC-kNN, top-M of rho * delta '
    '(plain DPC-kNN with spatial_weight=0)')
def dpc_knn(x: Tensor, hw_shape: Tuple[int, int], num_anchors: int,
            config: 'ClusterConfig') -> Clusters:
    """AiluRus's spatial-aware density-peak clustering as the paper
    writes it (steps 1-5), in the global form or the windowed one
    (``window``)."""
    k = max(1, min(config.k, x.shape[1] - 1))
    if use_window(config.window, hw_shape):
        rho, delta, neighbours = window_density_and_delta(
            x, hw_shape, k, config.spatial_weight, config.window)
        anchors = select_anchors(rho, delta, num_anchors)
        return Clusters(assign_in_window(x, anchors, neighbours), anchors)
    rho, delta, _ = density_peaks(x, hw_shape, k, config.spatial_weight)
    anchors = select_anchors(rho, delta, num_anchors)
    return Clusters(assign_to_anchors(x, anchors), anchors)


@register_reducer(
    'farthest', knobs=('k', 'spatial_weight'),
    description='farthest-point anchors from the density peak')
def farthest(x: Tensor, hw_shape: Tuple[int, int], num_anchors: int,
             config: 'ClusterConfig') -> Clusters:
    """Farthest-point sampling under the spatial-aware distance, seeded at
    the density peak, then nearest-anchor assignment."""
    dist, scale = spatial_aware_distance(x, hw_shape, config.spatial_weight)
    rho = knn_density(dist, max(1, min(config.k, x.shape[1] - 1)), scale)
    anchors = baselines.farthest_point_anchors(dist, rho, num_anchors)
    del dist
    return Clusters(assign_to_anchors(x, anchors), anchors)


@register_reducer('kmeans', description='Expedite-style local k-means')
def kmeans(x: Tensor, hw_shape: Tuple[int, int], num_anchors: int,
           config: 'ClusterConfig') -> Clusters:
    """Local k-means from the pooled grid (Expedite)."""
    return Clusters(*baselines.kmeans_clusters(x, hw_shape, num_anchors))


@register_reducer('tome', description='ToMe-style bipartite matching')
def tome(x: Tensor, hw_shape: Tuple[int, int], num_anchors: int,
         config: 'ClusterConfig') -> Clusters:
    """Bipartite soft matching by cosine similarity, in one step."""
    return Clusters(*baselines.bipartite_clusters(x, num_anchors))


@register_reducer('random', description='random anchors')
def random(x: Tensor, hw_shape: Tuple[int, int], num_anchors: int,
           config: 'ClusterConfig') -> Clusters:
    """A fixed random subset of tokens as anchors, nearest-anchor
    assignment."""
    anchors = baselines.random_anchors(x.shape[1], num_anchors,
                                       x.device).expand(x.shape[0], -1)
    return Clusters(assign_to_anchors(x, anchors), anchors)


@register_reducer('grid', description='grid pooling (low resolution)')
def grid(x: Tensor, hw_shape: Tuple[int, int], num_anchors: int,
         config: 'ClusterConfig') -> Clusters:
    """Pooling to ``M`` near-equal cells of the grid."""
    index, centres = baselines.grid_clusters(hw_shape, num_anchors,
                                             x.device)
    batch = x.shape[0]
    return Clusters(index.expand(batch, -1), centres.expand(batch, -1))
