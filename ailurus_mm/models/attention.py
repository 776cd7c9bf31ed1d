"""A per-key attention bias for mmseg's ``TransformerEncoderLayer``.

:func:`enable_key_bias` turns existing layers (of a backbone or of a decode
head) into :class:`KeyBiasEncoderLayer`, and their attention into
:class:`KeyBiasMultiheadAttention`, by a class swap: same modules, same
parameter names, same ``forward(x)``; ``layer(x, key_bias=bias)`` adds
``bias[b, j]`` to the attention logits of key ``j`` in image ``b`` through
PyTorch's ``scaled_dot_product_attention`` (O(B * heads * L) extra memory,
no ``[B * heads, L, L]`` mask). The layer and attention modules themselves
are called either way, so forward hooks on them fire, and the bias is an
argument of the checkpointed function, so ``with_cp`` recomputes the same
thing.
"""
from typing import Iterable, Optional

import torch.utils.checkpoint as cp
from mmcv.cnn.bricks.transformer import MultiheadAttention
from mmseg.models.backbones.vit import TransformerEncoderLayer
from torch import Tensor, nn

from ailurus_mm.ops.attention import self_attention_with_key_bias


class KeyBiasMultiheadAttention(MultiheadAttention):
    """mmcv's ``MultiheadAttention`` (self-attention, batch first) that also
    takes a per-key bias; installed by :func:`enable_key_bias`."""

    def forward(self, query: Tensor, *args,
                key_bias: Optional[Tensor] = None, **kwargs) -> Tensor:
        """Args:
            query: Normalised tokens ``[B, L, C]``.
            key_bias: Optional ``[B, L]`` added to the attention logits of
                every key; then only ``identity`` may be given besides
                (self-attention). ``None``: exactly mmcv's forward.

        Returns:
            ``identity + dropout(proj(attention))``, ``[B, L, C]``.
        """
        if key_bias is None:
            return super().forward(query, *args, **kwargs)
        if args or set(kwargs) - {'identity'}:
            raise TypeError('with key_bias, KeyBiasMultiheadAttention takes '
                            'query and identity only (self-attention), got '
                            f'{len(args)} more positional and '
                            f'{sorted(set(kwargs) - {"identity"})}')
        identity = kwargs.get('identity')
        if identity is None:
            identity = query
        mha = self.attn
        out = self_attention_with_key_bias(
            query, mha.in_proj_weight, mha.in_proj_bias, mha.out_proj.weight,
            mha.out_proj.bias, mha.num_heads, key_bias,
            dropout_p=mha.dropout if mha.training else 0.0)
        return identity + self.dropout_layer(self.proj_drop(out))


class KeyBiasEncoderLayer(TransformerEncoderLayer):
    """mmseg's ``TransformerEncoderLayer`` with an optional per-key bias.

    Not built from configs: :func:`enable_key_bias` swaps the class of
    layers that already exist, so checkpoints and configs are untouched.
    """

    def forward(self, x: Tensor, key_bias: Optional[Tensor] = None
                ) -> Tensor:
        """Args:
            x: Tokens ``[B, L, C]``.
            key_bias: Optional ``[B, L]`` added to the attention logits of
                every key (``None``: exactly mmseg's layer).

        Returns:
            ``[B, L, C]``.
        """
        if key_bias is None:
            return super().forward(x)

        def _inner_forward(x: Tensor, key_bias: Tensor) -> Tensor:
            x = self.attn(self.norm1(x), identity=x, key_bias=key_bias)
            return self.ffn(self.norm2(x), identity=x)

        if self.with_cp and x.requires_grad:
            return cp.checkpoint(_inner_forward, x, key_bias,
                                 use_reentrant=False)
        return _inner_forward(x, key_bias)


def _check_layer(layer: nn.Module, where: str) -> None:
    if not isinstance(layer, TransformerEncoderLayer):
        raise TypeError(f'{where}: a per-key attention bias needs mmseg\'s '
                        f'TransformerEncoderLayer, got '
                        f'{type(layer).__name__}')
    attn = getattr(layer, 'attn', None)
    mha = getattr(attn, 'attn', None)
    if not isinstance(attn, MultiheadAttention) or not isinstance(
            mha, nn.MultiheadAttention):
        raise TypeError(f'{where}: a per-key attention bias needs mmcv\'s '
                        f'MultiheadAttention in layer.attn, got '
                        f'{type(attn).__name__}')
    if not attn.batch_first or not mha._qkv_same_embed_dim or \
            mha.bias_k is not None or mha.add_zero_attn:
        raise ValueError(f'{where}: a per-key attention bias needs batch '
                         'first self-attention with packed q, k, v '
                         'projections and no bias_k/add_zero_attn')


def check_key_bias(layers: Iterable[nn.Module], where: str = 'layer'
                   ) -> None:
    """Raise unless :func:`enable_key_bias` can prepare ``layers`` (it
    changes nothing).

    Raises:
        TypeError, ValueError: A layer of another kind, naming it.
    """
    for layer in layers:
        _check_layer(layer, where)
        for module, allowed in ((layer, (TransformerEncoderLayer,
                                         KeyBiasEncoderLayer)),
                                (layer.attn, (MultiheadAttention,
                                              KeyBiasMultiheadAttention))):
            if type(module) not in allowed:
                raise TypeError(
                    f'{where}: cannot add a per-key attention bias to '
                    f'{type(module).__name__}, a subclass of '
                    f'{allowed[0].__name__} with its own forward')


def enable_key_bias(layers: Iterable[nn.Module], where: str = 'layer'
                    ) -> None:
    """Let ``layers`` take ``key_bias`` (class swap, in place; idempotent).
    Every layer is checked (:func:`check_key_bias`) before any is changed.

    Args:
        layers: mmseg ``TransformerEncoderLayer`` modules (exactly that
            class or :class:`KeyBiasEncoderLayer`).
        where: Named in errors (e.g. ``'AiluRusViT.layers'``).

    Raises:
        TypeError, ValueError: A layer of another kind, naming it.
    """
    layers = list(layers)
    check_key_bias(layers, where)
    for layer in layers:
        layer.__class__ = KeyBiasEncoderLayer
        layer.attn.__class__ = KeyBiasMultiheadAttention
