"""Merge tokens into clusters and recover the full grid (docs/method.md,
steps 6 and 8).

Both functions are differentiable with respect to the features; the cluster
indices are integer tensors and carry no gradient.
"""
from typing import Optional

import torch
from torch import Tensor


def segment_sum(values: Tensor, index: Tensor, num_segments: int) -> Tensor:
    """Sum of the tokens of every segment: ``out[b, m] = sum of values[b,
    n] over n with index[b, n] == m``.

    ``scatter_add_`` along the tokens, computed as ``index_add_`` over the
    flattened rows, which adds in the same token order (the same floats)
    and is about 10 times faster on a CPU (0.2 ms against 2.8 ms for 1600 x
    1024 tokens). While exporting to ONNX: ``scatter_add_`` itself
    (``ScatterElements``).

    Args:
        values: ``[B, N, C]``.
        index: ``[B, N]``, values in ``[0, num_segments)``.
        num_segments: ``M``.

    Returns:
        ``[B, M, C]`` in ``values.dtype``. Differentiable w.r.t. ``values``.
    """
    batch, _, channels = values.shape
    if torch.onnx.is_in_onnx_export():
        return values.new_zeros(batch, num_segments, channels).scatter_add_(
            1, index.unsqueeze(-1).expand(-1, -1, channels), values)
    rows = index + num_segments * torch.arange(
        batch, device=index.device).unsqueeze(-1)
    return values.new_zeros(batch * num_segments, channels).index_add_(
        0, rows.flatten(), values.reshape(-1, channels)).view(
            batch, num_segments, channels)


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
    summed = segment_sum(values, index, sizes.shape[1])
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
