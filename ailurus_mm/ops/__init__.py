"""The AiluRus algorithm as pure torch functions (no mm dependencies).

- :class:`ClusterConfig`: the knobs, their defaults and validation;
- :data:`REDUCERS` / :func:`register_reducer`: the token reducers;
- :func:`cluster_tokens` -> :class:`ClusterAssignment`, then
  :func:`merge_tokens` and :func:`recover_tokens`;
- :func:`anchor_scores` / :func:`calibrate_anchor_threshold`: a per-image
  count by content at a chosen mean keep ratio.
"""
from .cluster_config import ClusterConfig, resolve_num_clusters
from .clustering import (ClusterAssignment, anchor_scores,
                         calibrate_anchor_threshold, cluster_positions,
                         cluster_tokens, cluster_with_config,
                         compose_assignments)
from .density import (assign_to_anchors, decision_scores,
                      distance_indicator, knn_density, select_anchors,
                      select_anchors_above, spatial_aware_distance)
from .merge import merge_tokens, recover_tokens
from .reducers import REDUCERS, Clusters, ReducerSpec, register_reducer

__all__ = [
    'ClusterConfig', 'resolve_num_clusters', 'REDUCERS', 'ReducerSpec',
    'Clusters', 'register_reducer', 'ClusterAssignment', 'cluster_tokens',
    'cluster_with_config', 'cluster_positions', 'compose_assignments',
    'anchor_scores', 'calibrate_anchor_threshold', 'spatial_aware_distance',
    'knn_density', 'distance_indicator', 'select_anchors',
    'decision_scores', 'select_anchors_above', 'assign_to_anchors',
    'merge_tokens', 'recover_tokens'
]
