"""Entry point of the clustering: tokens in, a :class:`ClusterAssignment`
out, with any registered reducer (:mod:`ailurus_mm.ops.reducers`)."""
from typing import Any, NamedTuple, Optional, Tuple

import torch
from torch import Tensor

from .cluster_config import ClusterConfig, Count
from .reducers import REDUCERS


class ClusterAssignment(NamedTuple):
    """Result of clustering the patch tokens of a batch.

    Attributes:
        index: Cluster id of every patch token of the grid ``[B, N]``
            (long).
        sizes: Number of original tokens in every cluster ``[B, M]``.
        anchors: Grid index of every cluster's anchor (its representative
            token for reducers without anchors) ``[B, M]`` (long).
        hw_shape: The token grid ``(H, W)``, ``H * W == N``.
    """
    index: Tensor
    sizes: Tensor
    anchors: Tensor
    hw_shape: Tuple[int, int]

    @property
    def num_clusters(self) -> int:
        return self.sizes.shape[1]


def _conditioned(x: Tensor) -> Tensor:
    """``x`` in float32, non-finite values replaced by 0 and every image
    scaled by a power of two so that its largest magnitude is in
    ``[0.25, 1)``: squared distances can then neither overflow nor
    underflow, and since the scale is a power of two (exact) and every
    reducer is invariant to a per-image scale, nothing else changes."""
    x = torch.nan_to_num(x.float(), nan=0.0, posinf=0.0, neginf=0.0)
    peak = x.abs().amax(dim=(1, 2))
    # 2^-e with peak * 2^-e in [0.5, 1): e = floor(log2(peak)) + 1 (frexp's
    # exponent), written with log2/floor/pow, which every exporter knows.
    exponent = torch.floor(torch.log2(peak.clamp_min(2.0**-120))) + 1
    return x * torch.pow(2.0, -exponent.clamp(-120, 120)).view(-1, 1, 1)


def cluster_with_config(x: Tensor,
                        hw_shape: Tuple[int, int],
                        config: ClusterConfig,
                        num_anchors: int) -> ClusterAssignment:
    """Run the reducer of an already validated ``config`` for
    ``num_anchors < N`` clusters (what ``AiluRusViT`` calls at every
    forward; :func:`cluster_tokens` is the checked entry point).

    Args:
        x: Tokens ``[B, N, C]``.
        hw_shape: The patch grid ``(H, W)``.
        config: The knobs.
        num_anchors: ``M`` in ``[1, N)`` (:meth:`ClusterConfig.num_anchors`).

    Returns:
        The :class:`ClusterAssignment`.
    """
    index, anchors = REDUCERS[config.reducer].fn(
        _conditioned(x), hw_shape, num_anchors, config)
    sizes = torch.zeros(anchors.shape, dtype=torch.float32,
                        device=x.device).scatter_add_(
                            1, index, torch.ones(index.shape,
                                                 dtype=torch.float32,
                                                 device=x.device))
    return ClusterAssignment(index, sizes, anchors, tuple(hw_shape))


@torch.no_grad()
def cluster_tokens(x: Tensor,
                   hw_shape: Tuple[int, int],
                   num_clusters: Optional[Count] = None,
                   *,
                   config: Optional[ClusterConfig] = None,
                   **knobs: Any) -> ClusterAssignment:
    """Cluster patch tokens: by default ailurus_mm's density peaks that
    cover the image (``dpc_cover``), or another registered reducer
    (``dpc_knn`` is the paper's steps 1-5).

    Not differentiable: the result is an assignment of tokens to clusters.
    Use :func:`merge_tokens` and :func:`recover_tokens` for the features.

    Args:
        x: Patch tokens ``[B, N, C]`` (no cls token), row-major on the grid.
        hw_shape: ``(H, W)`` with ``H * W == N``.
        num_clusters: Anchors per image: an int count or a float fraction of
            ``N`` (:func:`resolve_num_clusters`).
        config: The knobs as a :class:`ClusterConfig`, instead of
            ``num_clusters`` and ``**knobs``.
        **knobs: Other :class:`ClusterConfig` knobs (``reducer``, ``k``,
            ``spatial_weight``, ``window``, ...), validated exactly as
            ``AiluRusViT`` validates them.

    Returns:
        The :class:`ClusterAssignment` (every token its own cluster when
        ``M >= N``).
    """
    if config is None:
        if num_clusters is None:
            raise TypeError('cluster_tokens needs num_clusters (or config)')
        ClusterConfig.check_names(list(knobs))
        config = ClusterConfig(num_clusters=num_clusters, **knobs)
    elif num_clusters is not None or knobs:
        raise TypeError('cluster_tokens takes either config or '
                        'num_clusters and knobs, not both')
    num_tokens = int(x.shape[1])
    hw_shape = (int(hw_shape[0]), int(hw_shape[1]))
    if hw_shape[0] * hw_shape[1] != num_tokens:
        raise ValueError(f'hw_shape {tuple(hw_shape)} does not match '
                         f'{num_tokens} tokens')
    num_anchors = config.num_anchors(num_tokens)
    if num_anchors is None:
        index = torch.arange(num_tokens, device=x.device).expand(
            x.shape[0], -1)
        return ClusterAssignment(index, torch.ones(index.shape,
                                                   device=x.device),
                                 index, hw_shape)
    return cluster_with_config(x, hw_shape, config, num_anchors)
