"""Self-attention with a per-key additive bias, in O(L) extra memory.

Proportional attention adds ``log(size)`` of every key token to the
attention logits. As a full ``[B * heads, L, L]`` mask this costs O(L^2)
memory and time only to repeat one number per key; here the bias stays
``[B, L]`` and is broadcast by PyTorch's ``scaled_dot_product_attention``.

Attention over ``n`` identical keys and values equals attention over one
of them with ``log n`` added to its logit (``n * exp(s) = exp(s + log n)``),
which is what :func:`size_bias` gives for merged tokens.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor


def size_bias(sizes: Tensor, num_leading: int = 0,
              num_trailing: int = 0, dtype: Optional[torch.dtype] = None
              ) -> Tensor:
    """Per-key bias ``log(size)`` of merged tokens, 0 for extra tokens.

    Args:
        sizes: Tokens each merged token stands for ``[B, M]`` (``>= 1``).
        num_leading: Unmerged tokens in front (e.g. a cls token): bias 0.
        num_trailing: Unmerged tokens after them (e.g. class embeddings):
            bias 0.
        dtype: Dtype of the bias (default: that of ``sizes`` if floating,
            else float32).

    Returns:
        ``[B, num_leading + M + num_trailing]``. Not differentiable (sizes
        are counts).
    """
    if dtype is None:
        dtype = sizes.dtype if sizes.is_floating_point() else torch.float32
    log_sizes = sizes.to(dtype).log()
    if num_leading or num_trailing:
        log_sizes = F.pad(log_sizes, (num_leading, num_trailing))
    return log_sizes


def key_bias_attention(query: Tensor,
                       key: Tensor,
                       value: Tensor,
                       key_bias: Tensor,
                       dropout_p: float = 0.0) -> Tensor:
    """``softmax(q k^T / sqrt(d) + bias_key) v`` with a per-key bias.

    Args:
        query: ``[B, heads, L_q, d]``.
        key: ``[B, heads, L_k, d]``.
        value: ``[B, heads, L_k, d_v]``.
        key_bias: ``[B, L_k]``, added to the logits of every query for that
            key (broadcast over heads and queries, never expanded).
        dropout_p: Dropout on the attention weights (pass 0 in eval).

    Returns:
        ``[B, heads, L_q, d_v]``. Differentiable w.r.t. query, key, value.
    """
    if key_bias.shape != (key.shape[0], key.shape[2]):
        raise ValueError(f'key_bias must be [B, L_k] = '
                         f'{[key.shape[0], key.shape[2]]}, got '
                         f'{list(key_bias.shape)}')
    mask = key_bias.to(query.dtype)[:, None, None, :]
    return F.scaled_dot_product_attention(
        query, key, value, attn_mask=mask, dropout_p=dropout_p)


def self_attention_with_key_bias(x: Tensor,
                                 in_proj_weight: Tensor,
                                 in_proj_bias: Optional[Tensor],
                                 out_proj_weight: Tensor,
                                 out_proj_bias: Optional[Tensor],
                                 num_heads: int,
                                 key_bias: Tensor,
                                 dropout_p: float = 0.0) -> Tensor:
    """Multi-head self-attention (``nn.MultiheadAttention``'s parameters and
    arithmetic) with a per-key bias on the logits.

    Args:
        x: Tokens ``[B, L, C]``.
        in_proj_weight: Packed q, k, v projection ``[3C, C]``.
        in_proj_bias: ``[3C]`` or ``None``.
        out_proj_weight: ``[C, C]``.
        out_proj_bias: ``[C]`` or ``None``.
        num_heads: Heads; ``C`` must be divisible by it.
        key_bias: ``[B, L]`` (see :func:`key_bias_attention`).
        dropout_p: Dropout on the attention weights.

    Returns:
        ``[B, L, C]``.
    """
    batch, length, channels = x.shape
    head_dims = channels // num_heads
    qkv = F.linear(x, in_proj_weight, in_proj_bias)
    query, key, value = qkv.reshape(batch, length, 3, num_heads,
                                    head_dims).permute(2, 0, 3, 1, 4)
    out = key_bias_attention(query, key, value, key_bias, dropout_p)
    out = out.transpose(1, 2).reshape(batch, length, channels)
    return F.linear(out, out_proj_weight, out_proj_bias)
