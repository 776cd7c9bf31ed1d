"""Numerics and bounded knobs: fp16/bf16 merging, autocast, the window
clipped to the grid, torch.compile."""
import pytest
import torch

import ailurus_mm.ops.reducers as reducers
from ailurus_mm.models import TokenRecover
from conftest import vit_pair
from ailurus_mm.ops import cluster_tokens, merge_tokens
from ailurus_mm.ops.window import (assign_in_window, use_window,
                                   window_density_and_delta,
                                   window_neighbours, window_offsets)

TINY = dict(img_size=(64, 64), patch_size=16, embed_dims=32, num_layers=3,
            num_heads=2, mlp_ratio=2, drop_path_rate=0.0)

# ------------------------------------------------------------ merge_tokens


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_merge_of_large_activations_does_not_overflow(dtype):
    # 64 tokens of about 3000 in one cluster: the sum (about 196000) is
    # beyond fp16's largest value (65504), the mean is not.
    values = 3000.0 + 2 * torch.arange(64, dtype=torch.float64)
    x = values.view(1, 64, 1).expand(1, 64, 4).to(dtype)
    index = torch.zeros(1, 64, dtype=torch.long)
    sizes = torch.full((1, 1), 64.0)
    merged = merge_tokens(x, index, sizes)
    assert merged.dtype == dtype
    assert torch.isfinite(merged).all()
    # the float64 mean of the same (rounded) inputs, to the dtype's precision
    expected = x.double().mean(dim=1, keepdim=True).to(dtype)
    torch.testing.assert_close(merged, expected, atol=0, rtol=0)


def test_bf16_merge_keeps_small_members_next_to_a_large_one():
    # One token of 256 and 256 tokens of 1: in bf16 (8 significant bits)
    # 256 + 1 rounds back to 256, so a bf16 running sum stays at 256 and
    # the mean comes out near 1. The true mean is 512 / 257 = 1.992.
    x = torch.ones(1, 257, 2, dtype=torch.bfloat16)
    x[0, 0] = 256.0
    index = torch.zeros(1, 257, dtype=torch.long)
    merged = merge_tokens(x, index, torch.full((1, 1), 257.0))
    assert merged.dtype == torch.bfloat16
    expected = torch.full((1, 1, 2), 512.0 / 257.0).to(torch.bfloat16)
    torch.testing.assert_close(merged, expected, atol=0, rtol=0)


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16,
                                   torch.float32, torch.float64])
def test_merge_keeps_dtype_and_gradient(dtype):
    x = torch.tensor([[[1.0], [2.0], [4.0], [8.0]]], dtype=dtype,
                     requires_grad=True)
    index = torch.tensor([[0, 1, 0, 1]])
    token_sizes = torch.tensor([[1.0, 3.0, 1.0, 1.0]])
    sizes = torch.tensor([[2.0, 4.0]])
    merged = merge_tokens(x, index, sizes, token_sizes)
    assert merged.dtype == dtype
    # (1 + 4) / 2 and (3 * 2 + 8) / 4, by hand
    expected = torch.tensor([[[2.5], [3.5]]], dtype=dtype)
    torch.testing.assert_close(merged, expected, atol=0, rtol=0)
    merged.sum().backward()
    assert x.grad.dtype == dtype
    torch.testing.assert_close(
        x.grad, torch.tensor([[[0.5], [0.75], [0.5], [0.25]]], dtype=dtype))


# ----------------------------------------------------- half-precision models


def build_pair(**kwargs):
    """A vanilla VisionTransformer and an AiluRusViT with the same weights;
    the AiluRus knobs go to the latter only."""
    return vit_pair(TINY, **kwargs)


def large_activation_pair(dtype, **knobs):
    """Both models in ``dtype``, with the patch embedding scaled so that the
    residual stream holds activations above 10000: the sum of a cluster of
    a few of them exceeds fp16's range."""
    vanilla, ailurus = build_pair(**knobs)
    for model in (vanilla, ailurus):
        with torch.no_grad():
            model.patch_embed.projection.weight.mul_(8000.0)
        model.to(dtype)
    return vanilla, ailurus


def images(dtype):
    torch.manual_seed(1)
    # a smooth image: neighbouring patches are similar, so clusters are big
    ramp = torch.linspace(0.5, 1.0, 64)
    image = (ramp.view(1, 1, 64, 1) * ramp.view(1, 1, 1, 64)).expand(
        2, 3, 64, 64)
    return (image + 0.01 * torch.rand(2, 3, 64, 64)).to(dtype)


@pytest.mark.parametrize('prop_attn', [False, True])
def test_fp16_ailurus_is_finite_where_fp16_vanilla_is(prop_attn):
    vanilla, ailurus = large_activation_pair(
        torch.float16, cluster_layer=0, num_clusters=2, prop_attn=prop_attn,
        out_indices=(0, 1, 2))
    inputs = images(torch.float16)
    with torch.no_grad():
        reference = vanilla(inputs)
        assert len(reference) == 3
        assert all(torch.isfinite(out).all() for out in reference)
        raw = ailurus(inputs)
        outputs = TokenRecover()(raw)
    # The case of the issue: summed in fp16, some cluster of the clustered
    # layer's tokens (output 0, equal in both models) would overflow.
    tokens = reference[0].flatten(2).transpose(1, 2).float()  # [B, N, C]
    index = raw.assignment.index
    sums = torch.zeros(2, raw.assignment.num_clusters, 32).scatter_add_(
        1, index.unsqueeze(-1).expand(-1, -1, 32), tokens)
    assert sums.abs().amax() > torch.finfo(torch.float16).max
    assert all(out.dtype == torch.float16 for out in outputs)
    assert all(torch.isfinite(out).all() for out in outputs)


@pytest.mark.parametrize('knobs', [
    dict(),
    dict(prop_attn=True),
    dict(window=1),
])
def test_bf16_autocast_inference_is_finite(knobs):
    """Inference of a whole Segmenter under CPU autocast (bf16)."""
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    init_default_scope('mmseg')
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='EncoderDecoder',
        backbone=dict(type='AiluRusViT', cluster_layer=0, num_clusters=0.5,
                      **TINY, **knobs),
        neck=dict(type='TokenRecover'),
        decode_head=dict(type='SegmenterMaskTransformerHead', in_channels=32,
                         channels=32, num_classes=5, num_layers=1,
                         num_heads=2, embed_dims=32, dropout_ratio=0.0,
                         loss_decode=dict(type='CrossEntropyLoss')))).eval()
    inputs = images(torch.float32)
    with torch.no_grad():
        expected = model(inputs, mode='tensor')
        with torch.autocast('cpu', dtype=torch.bfloat16):
            logits = model(inputs, mode='tensor')
    assert logits.shape == (2, 5, 4, 4)
    assert torch.isfinite(logits).all()
    # bf16 keeps about 2-3 significant digits: same logits, roughly
    assert (logits.float() - expected).abs().max() < 0.1 * (
        expected.abs().max() + 1)


# ---------------------------------------------------- window, bounded cost


@pytest.mark.parametrize('window,hw_shape,count', [
    (1, (4, 4), 8),
    (3, (4, 4), 48),  # covers the grid: (2 * 3 + 1)^2 - 1
    (100, (4, 4), 48),  # clipped to the grid
    (10**6, (3, 5), 44),  # (2 * 2 + 1) * (2 * 4 + 1) - 1
    (5, (1, 4), 6),  # one row: only column offsets
])
def test_window_offsets_are_clipped_to_the_grid(window, hw_shape, count):
    offsets = window_offsets(window, hw_shape)
    assert len(offsets) == count
    height, width = hw_shape
    assert all(abs(dy) < height and abs(dx) < width for dy, dx in offsets)


def test_huge_window_builds_no_more_neighbours_than_the_grid_has():
    # 3x3 grid: every token has at most 24 offsets that can land on it;
    # unclipped, window=60 would build (2 * 60 + 1)^2 - 1 = 14640.
    x = torch.randn(1, 9, 4)
    neighbours = window_neighbours(x, (3, 3), 60)
    assert neighbours.index.shape == (9, 24)
    assert neighbours.feature_dist.shape == (1, 9, 24)


def test_clipping_the_window_changes_no_result():
    torch.manual_seed(0)
    x = torch.randn(2, 20, 8)
    results = []
    for window in (4, 7, 1000):  # all cover the 4 x 5 grid
        rho, delta, neighbours = window_density_and_delta(
            x, (4, 5), 3, 1.0, window)
        anchors = torch.tensor([[0, 6, 13], [2, 9, 19]])
        results.append((rho, delta, assign_in_window(x, anchors,
                                                     neighbours)))
    for rho, delta, index in results[1:]:
        torch.testing.assert_close(rho, results[0][0], atol=0, rtol=0)
        torch.testing.assert_close(delta, results[0][1], atol=0, rtol=0)
        assert torch.equal(index, results[0][2])


@pytest.mark.parametrize('hw_shape', [(4, 4), (6, 7), (8, 8), (3, 12)])
@pytest.mark.parametrize('window', [1, 2, 3, 5, 100, 10**9])
def test_window_never_costs_more_than_the_global_form(
        monkeypatch, hw_shape, window):
    """cluster_tokens compares a token with fewer candidates under a window
    than under the global form (N - 1), or runs the global form."""
    used = []

    def spy(x, hw, k, spatial_weight, radius):
        used.append(len(window_offsets(radius, hw)))
        return window_density_and_delta(x, hw, k, spatial_weight, radius)

    monkeypatch.setattr(reducers, 'window_density_and_delta', spy)
    num_tokens = hw_shape[0] * hw_shape[1]
    torch.manual_seed(0)
    x = torch.randn(1, num_tokens, 8)
    result = cluster_tokens(x, hw_shape, 0.5, window=window)
    assert result.sizes.sum() == num_tokens
    assert used == ([len(window_offsets(window, hw_shape))]
                    if use_window(window, hw_shape) else [])
    assert all(count < num_tokens - 1 for count in used)


def test_window_covering_the_grid_is_the_global_form():
    torch.manual_seed(0)
    x = torch.randn(2, 16, 8)
    assert not use_window(100, (4, 4))
    windowed = cluster_tokens(x, (4, 4), 6, window=100)
    exact = cluster_tokens(x, (4, 4), 6, window=None)
    for got, want in zip(windowed[:3], exact[:3]):
        assert torch.equal(got, want)


def test_model_with_huge_window_runs_on_a_small_grid():
    # unclipped, window=20 would build (2 * 20 + 1)^2 - 1 = 1680 offsets
    # for a 4 x 4 grid (15 other tokens)
    _, ailurus = build_pair(cluster_layer=0, num_clusters=0.5, window=20)
    _, exact = build_pair(cluster_layer=0, num_clusters=0.5)
    inputs = images(torch.float32)
    with torch.no_grad():
        got = TokenRecover()(ailurus(inputs))
        want = TokenRecover()(exact(inputs))
    torch.testing.assert_close(got, want, atol=0, rtol=0)


# ------------------------------------------------------------ torch.compile


@pytest.mark.slow
@pytest.mark.parametrize('reducer, fullgraph', [('dpc_knn', True),
                                                ('dpc_cover', False)])
def test_compiled_backbone_matches_eager(reducer, fullgraph):
    """torch.compile (inductor) of the backbone with proportional attention
    against eager mode: the paper's form as one graph (``fullgraph=True``
    fails on any graph break), the default ``dpc_cover`` with the breaks
    where it decides from the data how many rounds and how wide a window
    it needs."""
    import torch._dynamo

    torch._dynamo.reset()
    _, ailurus = build_pair(cluster_layer=0, num_clusters=0.5,
                            out_indices=(0, 2), prop_attn=True,
                            reducer=reducer)
    inputs = images(torch.float32)
    with torch.no_grad():
        eager = TokenRecover()(ailurus(inputs))
        compiled = TokenRecover()(torch.compile(
            ailurus, fullgraph=fullgraph)(inputs))
    assert len(compiled) == len(eager) == 2
    for got, want in zip(compiled, eager):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize('knobs,one_graph', [
    (dict(reducer='dpc_knn'), True),
    (dict(reducer='dpc_knn', prop_attn=True), True),
    # the fallback for tokens with no anchor in their window: a nonzero()
    # per image, whose size depends on the data
    (dict(reducer='dpc_knn', window=1), False),
    # rounds and window widths decided from the data (host syncs)
    (dict(reducer='dpc_cover'), False),
])
def test_graph_breaks(knobs, one_graph):
    """What docs/usage.md states: the paper's form without a window is one
    graph for torch.compile; a window, and dpc_cover's data-dependent
    loops, break it."""
    import torch._dynamo

    torch._dynamo.reset()
    _, ailurus = build_pair(cluster_layer=0, num_clusters=0.5, **knobs)
    with torch.no_grad():
        explained = torch._dynamo.explain(ailurus)(images(torch.float32))
    if one_graph:
        assert explained.graph_break_count == 0
        assert explained.graph_count == 1
    else:
        assert explained.graph_break_count > 0
