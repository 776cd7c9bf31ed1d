"""AiluRusViT + TokenRecover against mmseg's own VisionTransformer."""
import pytest
import torch
from mmseg.models.backbones import VisionTransformer

from ailurus_mm.models import AiluRusOutputs, AiluRusViT, TokenRecover
from conftest import vit_pair
from ailurus_mm.ops import resolve_num_clusters

TINY = dict(
    img_size=(64, 64),
    patch_size=16,
    embed_dims=32,
    num_layers=4,
    num_heads=2,
    mlp_ratio=2,
    norm_cfg=dict(type='LN', eps=1e-6))


def build_pair(**kwargs):
    """A vanilla VisionTransformer and an AiluRusViT with the same weights."""
    return vit_pair(TINY, **kwargs)


def run(backbone, images):
    return TokenRecover()(backbone(images))


def assert_same_outputs(actual, expected, atol=1e-5):
    assert len(actual) == len(expected)
    for out, ref in zip(actual, expected):
        if isinstance(ref, (list, tuple)):
            assert isinstance(out, list)
            assert len(out) == len(ref) == 2
            torch.testing.assert_close(out[0], ref[0], atol=atol, rtol=0)
            torch.testing.assert_close(out[1], ref[1], atol=atol, rtol=0)
        else:
            assert out.shape == ref.shape
            torch.testing.assert_close(out, ref, atol=atol, rtol=0)


VARIANTS = [
    dict(),
    dict(out_indices=(0, 1, 2, 3)),
    dict(out_indices=[1, 3], final_norm=True),
    dict(with_cls_token=False, out_indices=(0, 3)),
    dict(output_cls_token=True, out_indices=(0, 2, 3)),
    dict(out_origin=True, pre_norm=True, final_norm=True),
]


@pytest.mark.parametrize('size', [(64, 64), (48, 80), (50, 37), (17, 100)])
@pytest.mark.parametrize('variant', VARIANTS)
def test_nothing_merged_equals_vanilla(variant, size):
    vanilla, ailurus = build_pair(num_clusters=1.0, **variant)
    images = torch.randn(2, 3, *size)
    with torch.no_grad():
        expected = vanilla(images)
        raw = ailurus(images)
        actual = TokenRecover()(raw)
    assert raw.assignment is None
    assert_same_outputs(actual, expected, atol=1e-5)


@pytest.mark.parametrize('num_clusters', [10**6, 16])
def test_count_at_least_tokens_equals_vanilla(num_clusters):
    vanilla, ailurus = build_pair(num_clusters=num_clusters,
                                  out_indices=(1, 3))
    images = torch.randn(1, 3, 64, 64)  # 16 patch tokens
    with torch.no_grad():
        assert_same_outputs(run(ailurus, images), vanilla(images))


def test_vanilla_state_dict_loads_strictly():
    vanilla = VisionTransformer(**TINY, final_norm=True)
    ailurus = AiluRusViT(**TINY, final_norm=True)
    assert list(vanilla.state_dict()) == list(ailurus.state_dict())
    result = ailurus.load_state_dict(vanilla.state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys


def count_tokens_per_layer(backbone, images):
    seen = []
    hooks = [
        layer.register_forward_hook(
            lambda module, args, out: seen.append(args[0].shape[1]))
        for layer in backbone.layers
    ]
    try:
        with torch.no_grad():
            outputs = backbone(images)
    finally:
        for hook in hooks:
            hook.remove()
    return seen, outputs


@pytest.mark.parametrize('with_cls_token', [True, False])
@pytest.mark.parametrize('cluster_layer,num_clusters', [(0, 5), (1, 0.5),
                                                        (2, 0.25)])
def test_later_layers_see_merged_tokens(cluster_layer, num_clusters,
                                        with_cls_token):
    _, ailurus = build_pair(
        cluster_layer=cluster_layer,
        num_clusters=num_clusters,
        with_cls_token=with_cls_token)
    images = torch.randn(2, 3, 96, 80)  # 6 x 5 = 30 patch tokens
    seen, outputs = count_tokens_per_layer(ailurus, images)
    extra = 1 if with_cls_token else 0
    kept = resolve_num_clusters(num_clusters, 30)
    expected = [30 + extra] * (cluster_layer + 1) + [kept + extra] * (
        4 - cluster_layer - 1)
    assert seen == expected
    assert outputs.assignment.sizes.shape == (2, kept)


@pytest.mark.parametrize('variant', VARIANTS)
def test_merged_outputs_keep_vanilla_shapes(variant):
    vanilla, ailurus = build_pair(num_clusters=0.3, cluster_layer=1,
                                  **variant)
    images = torch.randn(2, 3, 50, 70)
    with torch.no_grad():
        expected = vanilla(images)
        actual = run(ailurus, images)
    assert len(actual) == len(expected)
    for out, ref in zip(actual, expected):
        if isinstance(ref, list):
            assert [o.shape for o in out] == [r.shape for r in ref]
        else:
            assert out.shape == ref.shape


def test_outputs_before_clustering_are_untouched():
    vanilla, ailurus = build_pair(num_clusters=0.3, cluster_layer=1,
                                  out_indices=(0, 1, 2, 3))
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = vanilla(images)
        raw = ailurus(images)
        actual = TokenRecover()(raw)
    assert raw.merged == (False, False, True, True)
    assert_same_outputs(actual[:2], expected[:2])
    # after clustering, every grid position carries its cluster's feature:
    # as many distinct vectors as clusters
    distinct = actual[3][0].flatten(1).T.unique(dim=0)
    assert distinct.shape[0] == raw.assignment.num_clusters


@pytest.mark.parametrize('window', [None, 1])
@pytest.mark.parametrize('prop_attn', [False, True])
def test_batch_of_two_equals_two_batches_of_one(prop_attn, window):
    _, ailurus = build_pair(num_clusters=0.4, prop_attn=prop_attn,
                            window=window, out_indices=(1, 3))
    images = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        batched = run(ailurus, images)
        singles = [run(ailurus, images[i:i + 1]) for i in range(2)]
    for level, out in enumerate(batched):
        joined = torch.cat([single[level] for single in singles])
        torch.testing.assert_close(out, joined, atol=1e-5, rtol=0)


def test_repeated_runs_are_identical():
    _, ailurus = build_pair(num_clusters=0.4, out_indices=(3, ))
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        first = run(ailurus, images)[0]
        second = run(ailurus, images)[0]
    assert torch.equal(first, second)


def test_prop_attn_changes_later_layers_only():
    _, plain = build_pair(num_clusters=0.3, prop_attn=False,
                          out_indices=(1, 3))
    _, proportional = build_pair(num_clusters=0.3, prop_attn=True,
                                 out_indices=(1, 3))
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a, b = run(plain, images), run(proportional, images)
    torch.testing.assert_close(a[0], b[0])
    assert not torch.allclose(a[1], b[1])


@pytest.mark.parametrize('with_cp', [False, True])
@pytest.mark.parametrize('prop_attn', [False, True])
def test_training_sends_gradients_to_every_parameter(with_cp, prop_attn):
    _, ailurus = build_pair(
        num_clusters=0.5,
        drop_path_rate=0.1,
        with_cp=with_cp,
        prop_attn=prop_attn,
        out_indices=(0, 3),
        final_norm=True,
        output_cls_token=True)
    ailurus.train()
    outputs = run(ailurus, torch.randn(2, 3, 64, 64))
    loss = sum(out[0].pow(2).mean() + out[1].pow(2).mean() for out in outputs)
    loss.backward()
    no_grad = [
        name for name, param in ailurus.named_parameters()
        if param.grad is None or not param.grad.abs().sum() > 0
    ]
    assert no_grad == []


def test_without_token_recover_a_head_fails_clearly():
    _, ailurus = build_pair(num_clusters=0.5)
    outputs = ailurus(torch.randn(1, 3, 64, 64))
    assert isinstance(outputs, AiluRusOutputs)
    with pytest.raises(TypeError, match=r"add the neck `dict\(type='Token"):
        outputs[0]
    with pytest.raises(TypeError, match='TokenRecover'):
        len(outputs)


def test_token_recover_rejects_other_inputs():
    with pytest.raises(TypeError, match='expects the output of AiluRusViT'):
        TokenRecover()(torch.randn(1, 3, 4, 4))


@pytest.mark.parametrize('knobs,match', [
    (dict(cluster_layer=3), r'cluster_layer must be an int \[0, 2\].*'
     r'num_layers=4.*got 3'),
    (dict(cluster_layer=-1), r'cluster_layer must be an int >= 0'),
    (dict(cluster_layer=1.0), r'cluster_layer must be an int'),
    (dict(num_clusters=0), r'num_clusters must be >= 1 as a count, got 0'),
    (dict(num_clusters=-0.5), r'num_clusters as a fraction must be in '
     r'\(0, 1\], got -0.5'),
    (dict(num_clusters=2.0), r'in \(0, 1\], got 2.0'),
    (dict(num_clusters='all'), r'int count or a float fraction'),
    (dict(k=0), r'k must be an int >= 1 \(neighbours'),
    (dict(k=2.5), r'k must be an int >= 1'),
    (dict(spatial_weight=-1.0), r'spatial_weight must be a finite number '
     r'>= 0.*got -1.0'),
    (dict(spatial_weight=float('nan')), r'spatial_weight must be a finite'),
    (dict(window=0), r'window must be an int >= 1 or None'),
    (dict(prop_attn='yes'), r"prop_attn must be True or False, got 'yes'"),
    (dict(out_indices=[1, 9]), r'out_indices \[9\] out of range'),
])
def test_invalid_knobs_fail_at_construction(knobs, match):
    error = TypeError if knobs.get('num_clusters') == 'all' else ValueError
    with pytest.raises(error, match=match):
        AiluRusViT(**TINY, **knobs)


def test_image_smaller_than_one_patch():
    _, ailurus = build_pair()
    with pytest.raises(ValueError,
                       match=r'input of size \(12, 40\) is smaller than one '
                       r'patch \(16x16\)'):
        ailurus(torch.randn(1, 3, 12, 40))


def test_single_patch_image_runs():
    _, ailurus = build_pair(num_clusters=0.5)
    out = run(ailurus, torch.randn(1, 3, 16, 16))
    assert out[0].shape == (1, 32, 1, 1)


@pytest.mark.parametrize('with_cls_token', [True, False])
@pytest.mark.parametrize('out_indices', [(3, ), (1, 3)])
def test_recover_detail_restores_each_tokens_own_stream(with_cls_token,
                                                        out_indices):
    """With the layers after clustering doing nothing (their residual
    branches zeroed), every token's stream is its cluster's mean plus its
    own deviation: ``recover_detail=True`` gives the vanilla outputs
    exactly, the final norm included (the deviation joins the stream
    before the norm), where the paper's recovery does not."""
    kwargs = dict(cluster_layer=1, num_clusters=0.25, final_norm=True,
                  with_cls_token=with_cls_token, out_indices=out_indices)
    vanilla, ailurus = build_pair(recover_detail=True, **kwargs)
    _, plain = build_pair(recover_detail=False, **kwargs)
    with torch.no_grad():
        for model in (vanilla, ailurus, plain):
            for layer in model.layers[2:]:
                for name in ('attn.attn.out_proj', 'ffn.layers.1'):
                    module = layer.get_submodule(name)
                    module.weight.zero_()
                    module.bias.zero_()
        images = torch.randn(2, 3, 96, 80)  # 30 tokens -> 8 clusters
        expected = vanilla(images)
        raw = ailurus(images)
        assert raw.assignment is not None
        assert_same_outputs(TokenRecover()(raw), expected, atol=1e-5)
        without = TokenRecover()(plain(images))
    assert not torch.allclose(without[-1], expected[-1], atol=1e-3)


@pytest.mark.parametrize('knob, value', [('second_stage', (2, 0.1)),
                                         ('anchor_threshold', 0.5)])
def test_a_retired_knob_is_named_with_why(knob, value):
    from ailurus_mm.models import AiluRusViT
    from ailurus_mm.ops import ClusterConfig

    with pytest.raises(TypeError, match=rf"knob '{knob}' was retired: "):
        AiluRusViT(img_size=(32, 32), embed_dims=16, num_layers=3,
                   num_heads=2, **{knob: value})
    with pytest.raises(TypeError, match=rf"knob '{knob}' was retired"):
        ClusterConfig().replace(**{knob: value})


def test_the_constructor_knobs_are_cluster_configs_fields():
    """Explicit, typed keyword-only arguments: the same names, order and
    defaults as ClusterConfig's fields."""
    import inspect

    from ailurus_mm.models import AiluRusViT
    from ailurus_mm.ops import ClusterConfig

    parameters = inspect.signature(AiluRusViT.__init__).parameters
    knobs = [p for p in parameters.values()
             if p.kind is inspect.Parameter.KEYWORD_ONLY]
    assert [p.name for p in knobs] == list(ClusterConfig.names())
    assert {p.name: p.default for p in knobs} == ClusterConfig.defaults()
