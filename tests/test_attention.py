"""The per-key attention bias (proportional attention) in O(L): equal to
the ``[B * heads, L, L]`` mask it replaces; every layer's hooks fire."""
import math

import pytest
import torch
from mmseg.models.backbones.vit import TransformerEncoderLayer

from ailurus_mm.models import AiluRusViT, TokenRecover
from ailurus_mm.models.attention import (KeyBiasEncoderLayer,
                                         KeyBiasMultiheadAttention,
                                         enable_key_bias)
from ailurus_mm.ops.attention import (key_bias_attention,
                                      self_attention_with_key_bias,
                                      size_bias)

TINY = dict(img_size=(64, 64), patch_size=16, embed_dims=32, num_layers=4,
            num_heads=2, mlp_ratio=2)


def full_mask(key_bias: torch.Tensor, num_heads: int) -> torch.Tensor:
    """The old path's ``[B * heads, L, L]`` float mask."""
    batch, length = key_bias.shape
    return key_bias[:, None, None, :].expand(
        batch, num_heads, length, length).reshape(batch * num_heads, length,
                                                  length)


def old_layer_forward(layer, x, key_bias):
    """What AiluRusViT._run_layer did before: mmcv's attention with a full
    mask, then the FFN."""
    mask = full_mask(key_bias, layer.attn.attn.num_heads)
    x = layer.attn(layer.norm1(x), identity=x, attn_mask=mask)
    return layer.ffn(layer.norm2(x), identity=x)


def test_key_bias_attention_is_softmax_of_biased_logits():
    torch.manual_seed(0)
    query, key = torch.randn(2, 3, 5, 8), torch.randn(2, 3, 7, 8)
    value = torch.randn(2, 3, 7, 4)
    key_bias = torch.randn(2, 7)
    logits = query @ key.transpose(-1, -2) / 8**0.5 + key_bias[:, None,
                                                               None, :]
    expected = logits.softmax(-1) @ value
    torch.testing.assert_close(
        key_bias_attention(query, key, value, key_bias), expected,
        atol=1e-6, rtol=0)


def test_repeated_keys_equal_one_key_with_log_count():
    """Why proportional attention and merged decoding are exact."""
    torch.manual_seed(0)
    channels, num_heads = 16, 4
    weights = [torch.randn(3 * channels, channels) / 4, torch.randn(
        3 * channels), torch.randn(channels, channels) / 4, torch.randn(
            channels)]
    unique = torch.randn(1, 4, channels)
    counts = torch.tensor([[1, 3, 2, 5]])
    repeated = unique.repeat_interleave(counts[0], dim=1)
    expected = self_attention_with_key_bias(
        repeated, *weights, num_heads, torch.zeros(1, repeated.shape[1]))
    merged = self_attention_with_key_bias(unique, *weights, num_heads,
                                          size_bias(counts))
    torch.testing.assert_close(
        merged.repeat_interleave(counts[0], dim=1), expected, atol=1e-5,
        rtol=0)


def test_size_bias_pads_extra_tokens_with_zero():
    bias = size_bias(torch.tensor([[1, 4]]), num_leading=1, num_trailing=2)
    torch.testing.assert_close(
        bias, torch.tensor([[0.0, 0.0, math.log(4.0), 0.0, 0.0]]))


def test_key_bias_shape_is_checked():
    q = torch.randn(1, 2, 3, 4)
    with pytest.raises(ValueError, match=r'key_bias must be \[B, L_k\] = '
                       r'\[1, 3\], got \[1, 4\]'):
        key_bias_attention(q, q, q, torch.zeros(1, 4))


def make_layer(**kwargs):
    torch.manual_seed(0)
    layer = TransformerEncoderLayer(embed_dims=32, num_heads=4,
                                    feedforward_channels=64, **kwargs)
    enable_key_bias([layer])
    return layer


@pytest.mark.parametrize('batch,length', [(1, 9), (2, 17)])
@pytest.mark.parametrize('qkv_bias', [True, False])
def test_layer_equals_full_mask_path(batch, length, qkv_bias):
    layer = make_layer(qkv_bias=qkv_bias).eval()
    x = torch.randn(batch, length, 32)
    key_bias = torch.rand(batch, length) * 3
    with torch.no_grad():
        expected = old_layer_forward(layer, x, key_bias)
        actual = layer(x, key_bias=key_bias)
        plain = layer(x)
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=0)
    assert not torch.allclose(actual, plain, atol=1e-3)


@pytest.mark.parametrize('with_cp', [False, True])
def test_layer_gradients_equal_full_mask_path(with_cp):
    layer = make_layer(with_cp=with_cp).train()
    x = torch.randn(2, 9, 32, requires_grad=True)
    key_bias = torch.rand(2, 9) * 3
    old_layer_forward(layer, x, key_bias).pow(2).sum().backward()
    expected = {n: p.grad.clone() for n, p in layer.named_parameters()}
    expected['x'] = x.grad.clone()
    layer.zero_grad()
    x.grad = None
    layer(x, key_bias=key_bias).pow(2).sum().backward()
    actual = {n: p.grad for n, p in layer.named_parameters()}
    actual['x'] = x.grad
    assert actual.keys() == expected.keys()
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], atol=1e-5,
                                   rtol=0, msg=name)


def test_enable_key_bias_keeps_parameters_and_rejects_others():
    layer = TransformerEncoderLayer(embed_dims=8, num_heads=2,
                                    feedforward_channels=16)
    names = list(layer.state_dict())
    enable_key_bias([layer])
    enable_key_bias([layer])  # idempotent
    assert type(layer) is KeyBiasEncoderLayer
    assert type(layer.attn) is KeyBiasMultiheadAttention
    assert list(layer.state_dict()) == names
    with pytest.raises(TypeError, match='needs mmseg\'s '
                       'TransformerEncoderLayer, got Linear'):
        enable_key_bias([torch.nn.Linear(2, 2)], 'head.layers')


def build_backbone(**kwargs):
    torch.manual_seed(0)
    backbone = AiluRusViT(**TINY, **kwargs)
    backbone.init_weights()
    return backbone.eval()


@pytest.mark.parametrize('with_cls_token', [True, False])
def test_backbone_prop_attn_equals_full_mask_path(with_cls_token):
    """Every layer after clustering, fed the same input, gives what the old
    full-mask path gives (recorded with forward hooks)."""
    backbone = build_backbone(num_clusters=0.4, cluster_layer=1,
                              prop_attn=True, with_cls_token=with_cls_token,
                              out_indices=(3, ))
    calls = []
    hooks = [
        layer.register_forward_hook(
            lambda m, args, kwargs, out: calls.append(
                (m, args[0], kwargs.get('key_bias'), out)),
            with_kwargs=True) for layer in backbone.layers
    ]
    with torch.no_grad():
        outputs = backbone(torch.randn(2, 3, 80, 96))
    for hook in hooks:
        hook.remove()
    assert [bias is None for _, _, bias, _ in calls] == [True, True, False,
                                                         False]
    sizes = outputs.assignment.sizes
    extra = int(with_cls_token)
    expected_bias = torch.cat([torch.zeros(2, extra), sizes.log()], dim=1)
    for layer, x, key_bias, out in calls[2:]:
        torch.testing.assert_close(key_bias, expected_bias)
        with torch.no_grad():
            expected = old_layer_forward(layer, x, expected_bias)
        torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize('num_clusters', [1.0, 0.5])
@pytest.mark.parametrize('prop_attn', [False, True])
@pytest.mark.parametrize('with_cp,training', [(False, False), (True, True)])
def test_hooks_fire_on_every_layer(prop_attn, num_clusters, with_cp,
                                   training):
    backbone = build_backbone(num_clusters=num_clusters, cluster_layer=1,
                              prop_attn=prop_attn, with_cp=with_cp)
    backbone.train(training)
    lengths = []
    hooks = [
        layer.register_forward_hook(
            lambda m, args, out: lengths.append(out.shape[1]))
        for layer in backbone.layers
    ] + [
        layer.attn.register_forward_pre_hook(
            lambda m, args: lengths.append(-1))
        for layer in backbone.layers
    ]
    outputs = backbone(torch.randn(1, 3, 64, 64))  # 16 patch tokens
    seen = list(lengths)  # forward only (with_cp recomputes in backward)
    if training:
        TokenRecover()(outputs)[0].sum().backward()
    for hook in hooks:
        hook.remove()
    kept = 17 if num_clusters == 1.0 else 9
    assert [n for n in seen if n > 0] == [17, 17, kept, kept]
    assert seen.count(-1) == 4  # and each layer's attention module


@pytest.mark.parametrize('prop_attn', [False, True])
def test_with_cp_gradients_equal_without(prop_attn):
    grads = []
    for with_cp in (False, True):
        backbone = build_backbone(num_clusters=0.5, prop_attn=prop_attn,
                                  with_cp=with_cp, out_indices=(3, ))
        backbone.train()
        images = torch.randn(2, 3, 64, 64, generator=torch.Generator()
                             .manual_seed(1))
        TokenRecover()(backbone(images))[0].pow(2).mean().backward()
        grads.append({n: p.grad for n, p in backbone.named_parameters()})
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, atol=1e-6, rtol=0,
                                   msg=name)


def test_backbone_bias_is_linear_in_tokens():
    """O(B * L): the bias the layers get is [B, L], never [B*heads, L, L]."""
    backbone = build_backbone(num_clusters=0.5, prop_attn=True)
    shapes = []
    hook = backbone.layers[3].register_forward_pre_hook(
        lambda m, args, kwargs: shapes.append(tuple(kwargs['key_bias']
                                                    .shape)),
        with_kwargs=True)
    with torch.no_grad():
        backbone(torch.randn(2, 3, 64, 64))
    hook.remove()
    assert shapes == [(2, 9)]
