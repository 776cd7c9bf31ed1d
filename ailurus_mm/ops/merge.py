"""Merge tokens into clusters and recover the full grid (docs/method.md,
steps 6 and 8).

Both functions are differentiable with respect to the features; the cluster
indices are integer tensors and carry no gradient.
"""
from typing import Optional

import torch
from torch import Tensor


def merge_tokens(x: Tensor,
                 index: Tensor,
                 sizes: Tensor,
                 token_sizes: Optional[Tensor] = None) -> Tensor:
    """Size-weighted mean of the tokens of every cluster.

    The sum is accumulated in float32 for lower-precision inputs (fp16,
    bf16) and the mean is cast back to ``x.dtype``: summing a cluster of
    large fp16 activations in fp16 overflows to ``inf`` (65504 is its
    largest value) although their mean is representable, and bf16 sums lose
    small members next to large ones. float32 and float64 inputs are summed
    in their own dtype.

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
        Cluster features ``[B, M, C]`` in ``x.dtype``. Differentiable w.r.t.
        ``x``.
    """
    batch, _, channels = x.shape
    dtype = torch.promote_types(x.dtype, torch.float32)
    values = x.to(dtype)
    if token_sizes is not None:
        values = values * token_sizes.to(dtype).unsqueeze(-1)
    summed = values.new_zeros(batch, sizes.shape[1], channels).scatter_add_(
        1, index.unsqueeze(-1).expand(-1, -1, channels), values)
    mean = summed / sizes.to(dtype).clamp_min(1e-6).unsqueeze(-1)
    return mean.to(x.dtype)


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
