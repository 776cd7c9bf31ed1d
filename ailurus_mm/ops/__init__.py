"""The AiluRus algorithm as pure torch functions (no mm dependencies).

- :class:`ClusterConfig`: the knobs, their defaults and validation;
- :data:`REDUCERS` / :func:`register_reducer`: the token reducers
  (``dpc_cover``, ours and the default, :mod:`.cover`; ``dpc_knn``, the
  paper's, :mod:`.density`; the field's, :mod:`.baselines`);
- :func:`cluster_tokens` -> :class:`ClusterAssignment`, then
  :func:`merge_tokens` and :func:`recover_tokens`.
"""
from .cluster_config import ClusterConfig, resolve_num_clusters
from .clustering import (ClusterAssignment, cluster_tokens,
                         cluster_with_config)
from .density import (assign_to_anchors, distance_indicator, knn_density,
                      select_anchors, spatial_aware_distance)
from .merge import merge_tokens, recover_tokens
from .reducers import REDUCERS, Clusters, ReducerSpec, register_reducer

__all__ = [
    'ClusterConfig', 'resolve_num_clusters', 'REDUCERS', 'ReducerSpec',
    'Clusters', 'register_reducer', 'ClusterAssignment', 'cluster_tokens',
    'cluster_with_config', 'spatial_aware_distance', 'knn_density',
    'distance_indicator', 'select_anchors', 'assign_to_anchors',
    'merge_tokens', 'recover_tokens'
]
