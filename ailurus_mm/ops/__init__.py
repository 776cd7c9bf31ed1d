"""The AiluRus algorithm as pure torch functions (no mm dependencies)."""
from .clustering import (REDUCERS, ClusterAssignment, anchor_scores,
                         cluster_tokens, resolve_num_clusters,
                         calibrate_anchor_threshold)
from .density import (assign_to_anchors, decision_scores,
                      distance_indicator, knn_density, select_anchors,
                      select_anchors_above, spatial_aware_distance)
from .merge import merge_tokens, recover_tokens
from .reducers import (bipartite_clusters, farthest_point_anchors,
                       grid_clusters, grid_layout, kmeans_clusters,
                       random_anchors)
from .window import assign_in_window, window_density_and_delta

__all__ = [
    'REDUCERS', 'ClusterAssignment', 'cluster_tokens', 'resolve_num_clusters',
    'spatial_aware_distance', 'knn_density', 'distance_indicator',
    'select_anchors', 'assign_to_anchors', 'merge_tokens', 'recover_tokens',
    'window_density_and_delta', 'assign_in_window', 'grid_layout',
    'grid_clusters', 'kmeans_clusters', 'bipartite_clusters',
    'random_anchors', 'farthest_point_anchors', 'decision_scores',
    'select_anchors_above', 'anchor_scores', 'calibrate_anchor_threshold'
]
