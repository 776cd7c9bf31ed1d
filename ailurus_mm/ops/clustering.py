"""Entry point of the clustering: tokens in, a :class:`ClusterAssignment`
out, with any registered reducer (:mod:`ailurus_mm.ops.reducers`)."""
from typing import Any, NamedTuple, Optional, Sequence, Tuple

import torch
from torch import Tensor

from .cluster_config import ClusterConfig, Count, resolve_num_clusters
from .density import decision_scores, density_peaks, grid_positions
from .merge import merge_tokens
from .reducers import REDUCERS


class ClusterAssignment(NamedTuple):
    """Result of clustering the patch tokens of a batch.

    Attributes:
        index: Cluster id of every patch token of the grid ``[B, N]``
            (long).
        sizes: Number of original tokens in every cluster ``[B, M]``; 0
            marks a padding slot (``anchor_threshold``: an image with fewer
            clusters than ``M``), which no token joins.
        anchors: Grid index of every cluster's anchor (its representative
            token for reducers without anchors) ``[B, M]`` (long); padding
            slots repeat the image's first anchor.
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
    ``[0.5, 1)``: squared distances can then neither overflow nor
    underflow, and since the scale is a power of two (exact) and every
    reducer is invariant to a per-image scale, nothing else changes."""
    x = torch.nan_to_num(x.float(), nan=0.0, posinf=0.0, neginf=0.0)
    peak = x.abs().amax(dim=(1, 2))
    exponent = torch.frexp(peak).exponent.clamp(-120, 120)
    return torch.ldexp(x, -exponent.view(-1, 1, 1).to(x.dtype))


def cluster_with_config(x: Tensor,
                        hw_shape: Tuple[int, int],
                        config: ClusterConfig,
                        num_anchors: int,
                        token_sizes: Optional[Tensor] = None,
                        positions: Optional[Tensor] = None
                        ) -> ClusterAssignment:
    """Run the reducer of an already validated ``config`` for
    ``num_anchors`` clusters (what ``AiluRusViT`` calls at every forward;
    :func:`cluster_tokens` is the checked entry point).

    Args:
        x: Tokens ``[B, N, C]``.
        hw_shape: The patch grid ``(H, W)``.
        config: The knobs.
        num_anchors: ``M >= 1`` (the most per image with
            ``anchor_threshold``); ``M >= N`` merges nothing.
        token_sizes: Optional ``[B, N]`` sizes of already merged tokens;
            ``sizes`` then sums them.
        positions: ``None`` for the row-major grid, else the ``[B, N, 2]``
            centroids of merged tokens (see :func:`cluster_positions`).

    Returns:
        The :class:`ClusterAssignment` of the ``N`` tokens (its ``index``
        refers to them, not to the grid, when ``positions`` is given).
    """
    batch, num_tokens = int(x.shape[0]), int(x.shape[1])
    if num_tokens == 1 or (num_anchors >= num_tokens and
                           config.anchor_threshold is None):
        anchors = torch.arange(num_tokens, device=x.device).expand(batch, -1)
        index = anchors.clone()
    else:
        num_anchors = min(num_anchors, num_tokens)
        index, anchors = REDUCERS[config.reducer].fn(
            _conditioned(x), hw_shape, num_anchors, config, positions)
    weights = torch.ones(index.shape, dtype=torch.float32,
                         device=x.device) if token_sizes is None else \
        token_sizes.float()
    sizes = weights.new_zeros(batch, anchors.shape[1]).scatter_add_(
        1, index, weights)
    return ClusterAssignment(index, sizes, anchors, tuple(hw_shape))


@torch.no_grad()
def cluster_tokens(x: Tensor,
                   hw_shape: Tuple[int, int],
                   num_clusters: Optional[Count] = None,
                   *,
                   config: Optional[ClusterConfig] = None,
                   token_sizes: Optional[Tensor] = None,
                   **knobs: Any) -> ClusterAssignment:
    """Cluster patch tokens: by default AiluRus's spatial-aware density-peak
    clustering (docs/method.md, steps 1-5), or another registered reducer.

    Not differentiable: the result is an assignment of tokens to clusters.
    Use :func:`merge_tokens` and :func:`recover_tokens` for the features.

    Args:
        x: Patch tokens ``[B, N, C]`` (no cls token), row-major on the grid.
        hw_shape: ``(H, W)`` with ``H * W == N``.
        num_clusters: Anchors per image: an int count or a float fraction of
            ``N`` (:func:`resolve_num_clusters`).
        config: The knobs as a :class:`ClusterConfig`, instead of
            ``num_clusters`` and ``**knobs``.
        token_sizes: Optional sizes ``[B, N]`` of already merged tokens;
            ``sizes`` then sums them.
        **knobs: Other :class:`ClusterConfig` knobs (``reducer``, ``k``,
            ``spatial_weight``, ``window``, ``anchor_threshold``, ...),
            validated exactly as ``AiluRusViT`` validates them.

    Returns:
        The :class:`ClusterAssignment`.
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
    return cluster_with_config(
        x, hw_shape, config,
        resolve_num_clusters(config.num_clusters, num_tokens), token_sizes)


def cluster_positions(assignment: ClusterAssignment) -> Tensor:
    """The (row, column) centroid of every cluster on the grid,
    ``[B, M, 2]`` (padding slots at 0)."""
    grid = grid_positions(assignment.hw_shape, assignment.index.device)
    grid = grid.expand(assignment.index.shape[0], -1, -1)
    return merge_tokens(grid, assignment.index, assignment.sizes.clamp_min(
        1e-6))


def compose_assignments(first: ClusterAssignment,
                        second: ClusterAssignment) -> ClusterAssignment:
    """The assignment of the grid tokens after two clusterings: ``second``
    clusters the ``M1`` clusters of ``first`` (its ``sizes`` summed over
    ``first.sizes``) into ``M2``.

    Merging the grid tokens once with the result equals merging them with
    ``first`` and then the merged tokens, weighted by their sizes, with
    ``second``.
    """
    return ClusterAssignment(
        index=second.index.gather(1, first.index),
        sizes=second.sizes,
        anchors=first.anchors.gather(1, second.anchors),
        hw_shape=first.hw_shape)


@torch.no_grad()
def anchor_scores(x: Tensor,
                  hw_shape: Tuple[int, int],
                  k: int = 5,
                  spatial_weight: float = 1.0) -> Tensor:
    """The decision scores that ``anchor_threshold`` is compared with (the
    global ``dpc_knn`` form), for calibrating it.

    Args:
        x: Patch tokens ``[B, N, C]``.
        hw_shape: ``(H, W)``.

    Returns:
        ``[B, N]``.
    """
    rho, delta, scale = density_peaks(
        _conditioned(x), hw_shape, max(1, min(k, x.shape[1] - 1)),
        spatial_weight)
    return decision_scores(rho, delta, scale)


def calibrate_anchor_threshold(scores: Sequence[Tensor],
                               num_clusters: Count) -> float:
    """The ``anchor_threshold`` that keeps as many tokens in total over a
    calibration set as ``num_clusters`` in every image would: the same mean
    token count, spread over the images by content.

    Args:
        scores: Decision scores of calibration images, each ``[N]`` or
            ``[B, N]`` (``N`` may differ between entries), e.g. from
            :func:`anchor_scores`.
        num_clusters: An int count or a float fraction, as for
            ``AiluRusViT`` (:func:`resolve_num_clusters` for every image).

    Returns:
        A threshold midway between the last score kept and the first one
        left out when all scores are ranked together.
    """
    rows = [s.reshape(-1, s.shape[-1]).float() for s in scores]
    if not rows:
        raise ValueError('calibrate_anchor_threshold needs the scores of at '
                         'least one image')
    total = sum(r.shape[0] * resolve_num_clusters(num_clusters, r.shape[1])
                for r in rows)
    ranked = torch.cat([r.flatten() for r in rows]).sort(
        descending=True).values
    if total >= ranked.numel():
        return float(ranked[-1]) - 1.0
    return float(ranked[total - 1] + ranked[total]) / 2
