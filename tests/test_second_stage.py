"""A second clustering stage (``second_stage=(layer, num_clusters)``): the
merged tokens are clustered again by their features and centroids, sizes
carry over, recovery composes the two assignments."""
import pytest
import torch

from ailurus_mm.ops import (ClusterConfig, cluster_positions, cluster_tokens,
                            cluster_with_config, compose_assignments,
                            merge_tokens, recover_tokens)
from conftest import vit_pair

TINY = dict(img_size=(64, 64), embed_dims=32, num_layers=4, num_heads=2,
            drop_path_rate=0.0, out_indices=(0, 1, 2, 3))


@pytest.mark.parametrize('reducer', ['dpc_knn', 'farthest', 'tome',
                                     'random'])
def test_merging_twice_equals_merging_once_with_the_composed_assignment(
        reducer):
    torch.manual_seed(0)
    x = torch.randn(2, 48, 16)
    first = cluster_tokens(x, (6, 8), 20, reducer=reducer)
    merged = merge_tokens(x, first.index, first.sizes)
    config = ClusterConfig(num_clusters=1.0, reducer=reducer)
    second = cluster_with_config(merged, (6, 8), config, 7,
                                 token_sizes=first.sizes,
                                 positions=cluster_positions(first))
    twice = merge_tokens(merged, second.index, second.sizes, first.sizes)
    composed = compose_assignments(first, second)
    once = merge_tokens(x, composed.index, composed.sizes)
    torch.testing.assert_close(twice, once, rtol=1e-5, atol=1e-6)
    assert composed.sizes.sum(1).tolist() == [48.0, 48.0]
    # every grid token's recovered feature is its final cluster's
    torch.testing.assert_close(recover_tokens(twice, composed.index),
                               recover_tokens(once, composed.index))
    # the composed anchors are grid tokens of their own clusters
    assert torch.equal(composed.index.gather(1, composed.anchors),
                       torch.arange(7).expand(2, -1))


def test_cluster_positions_are_the_size_weighted_centroids():
    x = torch.randn(1, 16, 8)
    first = cluster_tokens(x, (4, 4), 5)
    positions = cluster_positions(first)
    rows, cols = torch.div(torch.arange(16), 4, rounding_mode='floor'), \
        torch.arange(16) % 4
    for m in range(5):
        members = first.index[0] == m
        assert positions[0, m, 0] == pytest.approx(
            rows[members].float().mean().item())
        assert positions[0, m, 1] == pytest.approx(
            cols[members].float().mean().item())


@pytest.mark.parametrize('prop_attn', [False, True])
def test_the_backbone_runs_two_stages(prop_attn):
    from ailurus_mm.models import TokenRecover

    vanilla, ailurus = vit_pair(TINY, cluster_layer=0, num_clusters=0.5,
                                second_stage=(1, 0.25), prop_attn=prop_attn)
    seen = []
    hooks = [layer.register_forward_hook(
        lambda m, args, out: seen.append(args[0].shape[1]))
        for layer in ailurus.layers]
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        outputs = ailurus(images)
        expected = vanilla(images)
    for hook in hooks:
        hook.remove()
    assert seen == [17, 9, 5, 5]  # 16 patches + cls; 8 after 0, 4 after 1
    # out_indices 0-3: an output is taken before its layer's clustering
    assert outputs.stages == (0, 1, 2, 2)
    assert [a.num_clusters for a in outputs.assignments] == [8, 4]
    recovered = TokenRecover()(outputs)
    # exactly the vanilla layout: maps of the full grid at every index
    assert [t.shape for t in recovered] == [t.shape for t in expected]
    # the stage-1 output is restored with the stage-1 assignment
    first = outputs.assignments[0]
    torch.testing.assert_close(
        recovered[1], recover_tokens(outputs.features[1], first.index)
        .reshape(2, 4, 4, 32).permute(0, 3, 1, 2))
    torch.testing.assert_close(recovered[0], expected[0])  # untouched


def test_batch_of_two_equals_two_batches_of_one():
    from ailurus_mm.models import TokenRecover

    _, ailurus = vit_pair(TINY, cluster_layer=0, num_clusters=0.5,
                          second_stage=(2, 0.25))
    torch.manual_seed(1)
    images = torch.randn(2, 3, 64, 64)
    recover = TokenRecover()
    with torch.no_grad():
        batch = ailurus(images)
        singles = [ailurus(images[i:i + 1]) for i in range(2)]
    for i, single in enumerate(singles):
        for both, one in zip(batch.assignments, single.assignments):
            assert torch.equal(both.index[i], one.index[0])
            assert torch.equal(both.sizes[i], one.sizes[0])
        for got, want in zip(recover(batch), recover(single)):
            torch.testing.assert_close(got[i:i + 1], want, rtol=1e-5,
                                       atol=1e-5)


def test_a_second_stage_that_keeps_every_merged_token_changes_nothing():
    _, one = vit_pair(TINY, cluster_layer=0, num_clusters=0.5)
    _, two = vit_pair(TINY, cluster_layer=0, num_clusters=0.5,
                      second_stage=(2, 0.5))
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a, b = one(images), two(images)
    assert len(b.assignments) == 1
    for x, y in zip(a.features, b.features):
        assert torch.equal(x, y)


def test_merged_decoding_equals_recovery_with_two_stages():
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    import ailurus_mm.models  # noqa: F401
    init_default_scope('mmseg')
    cfg = dict(
        type='AiluRusEncoderDecoder',
        backbone=dict(type='AiluRusViT', img_size=(64, 64), embed_dims=32,
                      num_layers=4, num_heads=2, cluster_layer=0,
                      num_clusters=0.5, second_stage=(2, 0.25)),
        neck=dict(type='TokenRecover'),
        decode_head=dict(type='SegmenterMaskTransformerHead',
                         in_channels=32, channels=32, num_classes=5,
                         num_layers=1, num_heads=2, embed_dims=32))
    torch.manual_seed(0)
    plain = MODELS.build(cfg).eval()
    merged = MODELS.build(dict(cfg, merged_decode=True)).eval()
    merged.load_state_dict(plain.state_dict())
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(merged(images, mode='tensor'),
                                   plain(images, mode='tensor'),
                                   rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('knobs, match', [
    (dict(second_stage=(2, 0.1), window=2), r'does not combine with window'),
    (dict(second_stage=(2, 0.1), anchor_threshold=0.5),
     r'does not combine with anchor_threshold'),
    (dict(second_stage=(2, 0.1), recover_detail=True),
     r'does not combine with recover_detail'),
    (dict(second_stage=(2, 0.1), reducer='kmeans'),
     r"reducer='kmeans' needs the token grid"),
    (dict(second_stage=(1, 0.1), cluster_layer=1),
     r'second_stage layer must be an int >= 2'),
    (dict(second_stage=(2, 0)), r'second_stage num_clusters must be >= 1'),
    (dict(second_stage=3), r'second_stage must be None or \(layer, '
     r'num_clusters\), got 3'),
])
def test_second_stage_is_validated(knobs, match):
    with pytest.raises(ValueError, match=match):
        ClusterConfig(**knobs)


def test_second_stage_layer_must_fit_the_network():
    from ailurus_mm.models import AiluRusViT

    with pytest.raises(ValueError, match=r'second_stage layer must be an int'
                       r' \[2, 2\]'):
        AiluRusViT(**dict(TINY, out_indices=-1), second_stage=(3, 0.1))


def test_mean_kept_fraction_counts_both_stages():
    one = ClusterConfig(cluster_layer=1, num_clusters=0.25)
    two = ClusterConfig(cluster_layer=1, num_clusters=0.5,
                        second_stage=(3, 0.1875))
    # 12 layers: 2 full, then 10 at 0.25 / 2 at 0.5 and 8 at 0.1875
    assert one.mean_kept_fraction(12, 1600) == pytest.approx(4.5 / 12)
    assert two.mean_kept_fraction(12, 1600) == pytest.approx(4.5 / 12)
