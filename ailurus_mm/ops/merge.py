"""Merge tokens into clusters and recover the full grid (docs/method.md,
steps 6 and 8).

Both functions are differentiable with respect to the features; the cluster
indices are integer tensors and carry no gradient.
"""
from typing import Optional

from torch import Tensor


def merge_tokens(x: Tensor,
                 index: Tensor,
                 sizes: Tensor,
                 token_sizes: Optional[Tensor] = None) -> Tensor:
    """Size-weighted mean of the tokens of every cluster.

    Args:
        x: Tokens ``[B, N, C]``.
        index: Cluster id of every token ``[B, N]``, values in
            ``[0, num_clusters)``.
        sizes: Total weight of every cluster ``[B, M]``, as in
            :class:`ClusterAssignment` (the sum of ``token_sizes`` over its
            members).
        token_sizes: Optional weights ``[B, N]`` (how many original tokens
            each input token already stands for); ones if ``None``.

    Returns:
        Cluster features ``[B, M, C]``. Differentiable w.r.t. ``x``.
    """
    batch, _, channels = x.shape
    if token_sizes is not None:
        x = x * token_sizes.to(x.dtype).unsqueeze(-1)
    summed = x.new_zeros(batch, sizes.shape[1], channels).scatter_add_(
        1, index.unsqueeze(-1).expand(-1, -1, channels), x)
    return summed / sizes.to(x.dtype).clamp_min(1e-6).unsqueeze(-1)


def recover_tokens(z: Tensor, index: Tensor) -> Tensor:
    """Give every original token the feature of its cluster.

    ``y[:, p] = z[:, index[:, p]]``.

    Args:
        z: Cluster features ``[B, M, C]``.
        index: Cluster id of every original token ``[B, N]``.

    Returns:
        Tokens ``[B, N, C]``. Differentiable w.r.t. ``z``.
    """
    return z.gather(1, index.unsqueeze(-1).expand(-1, -1, z.shape[-1]))
