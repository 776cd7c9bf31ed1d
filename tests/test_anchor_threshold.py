"""Per-image cluster count by content (``anchor_threshold``): anchors are
the tokens whose DPC decision score is above a threshold; a batch is padded
to its largest count with empty clusters whose keys are masked, so a batch
gives exactly what its images give one by one."""
import re

import pytest
import torch
from mmengine.registry import DefaultScope
from mmseg.registry import MODELS

from ailurus_mm.models import AiluRusViT
from ailurus_mm.ops import (anchor_scores, cluster_tokens, select_anchors,
                            select_anchors_above, calibrate_anchor_threshold)
from ailurus_mm.ops.density import (decision_scores, distance_indicator,
                                    knn_density, spatial_aware_distance)
from test_merged_decode import HEADS, predict_logits, segmentor_cfg

HW = (8, 8)


def busy_and_plain(channels=16, seed=0):
    """Two images of 64 tokens: one of noise, one of four flat regions
    (plus a little noise), so the threshold gives them different counts."""
    generator = torch.Generator().manual_seed(seed)
    busy = torch.randn(64, channels, generator=generator)
    regions = torch.randn(4, channels, generator=generator) * 3
    quadrant = (torch.arange(8)[:, None] // 4) * 2 + torch.arange(8) // 4
    plain = regions[quadrant.flatten()] + 0.01 * torch.randn(
        64, channels, generator=generator)
    return torch.stack([busy, plain])


def _select_reference(score, threshold, max_clusters):
    """One image at a time, with Python lists."""
    anchors = []
    for row in score.tolist():
        count = min(max(sum(s > threshold for s in row), 1), max_clusters)
        order = sorted(range(len(row)), key=lambda i: (-row[i], i))
        anchors.append(sorted(order[:count]))
    slots = max(len(a) for a in anchors)
    return ([a + [a[0]] * (slots - len(a)) for a in anchors],
            [[True] * len(a) + [False] * (slots - len(a)) for a in anchors])


@pytest.mark.parametrize('threshold, max_clusters',
                         [(0.0, 64), (0.3, 64), (0.3, 5), (0.8, 64),
                          (1e9, 64)])
def test_select_anchors_above_matches_reference(threshold, max_clusters):
    score = torch.rand(3, 40, generator=torch.Generator().manual_seed(1))
    score[1] *= 0.5  # fewer above the threshold in image 1
    anchors, valid = select_anchors_above(score, threshold, max_clusters)
    expected_anchors, expected_valid = _select_reference(
        score, threshold, max_clusters)
    assert anchors.tolist() == expected_anchors
    assert valid.tolist() == expected_valid


def test_counts_follow_content_and_batch_equals_single_images():
    x = busy_and_plain()
    threshold = calibrate_anchor_threshold([anchor_scores(x, HW)], 16)
    batch = cluster_tokens(x, HW, 1.0, anchor_threshold=threshold)
    counts = (batch.sizes > 0).sum(1).tolist()
    assert counts[0] > 16 > counts[1] and sum(counts) == 32
    assert batch.num_clusters == counts[0]
    for b in range(2):
        single = cluster_tokens(x[b:b + 1], HW, 1.0,
                                anchor_threshold=threshold)
        m = counts[b]
        assert single.num_clusters == m
        assert torch.equal(single.index, batch.index[b:b + 1])
        assert torch.equal(single.sizes, batch.sizes[b:b + 1, :m])
        assert torch.equal(single.anchors, batch.anchors[b:b + 1, :m])
        # every token in one real cluster; padding empty, never joined
        assert batch.index[b].max() < m
        assert (batch.sizes[b, :m] > 0).all()
        assert (batch.sizes[b, m:] == 0).all()
        assert batch.sizes[b].sum() == 64
        # an anchor is in its own cluster
        assert torch.equal(batch.index[b, batch.anchors[b, :m]],
                           torch.arange(m))


def test_a_threshold_between_two_scores_equals_the_fixed_count():
    """For one image, the threshold that keeps M tokens gives the paper's
    top-M anchors and the same assignment."""
    x = busy_and_plain()[:1]
    scores = anchor_scores(x, HW)
    for m in (1, 9, 30):
        threshold = calibrate_anchor_threshold([scores], m)
        by_count = cluster_tokens(x, HW, m)
        by_threshold = cluster_tokens(x, HW, 1.0, anchor_threshold=threshold)
        assert torch.equal(by_threshold.anchors, by_count.anchors), m
        assert torch.equal(by_threshold.index, by_count.index), m


def test_num_clusters_caps_the_count():
    x = busy_and_plain()
    result = cluster_tokens(x, HW, 10, anchor_threshold=1e-6)
    assert (result.sizes > 0).sum(1).tolist() == [10, 10]


def test_anchor_scores_are_the_decision_scores():
    x = busy_and_plain()
    dist, scale = spatial_aware_distance(x, HW, 1.0)
    rho = knn_density(dist, 5, scale)
    delta = distance_indicator(dist, rho)
    torch.testing.assert_close(anchor_scores(x, HW),
                               decision_scores(rho, delta, scale))
    # the same order as the paper's rho * delta
    assert torch.equal(select_anchors(rho, delta, 12),
                       select_anchors(anchor_scores(x, HW), torch.ones_like(
                           rho), 12))


def test_calibrated_threshold_keeps_the_same_total():
    scores = [torch.rand(2, 50, generator=torch.Generator().manual_seed(s))
              for s in range(3)]
    for num_clusters, total in ((1, 6), (12, 72), (0.25, 6 * 12),
                                (1.0, 300)):
        threshold = calibrate_anchor_threshold(scores, num_clusters)
        kept = torch.cat(scores).gt(threshold).sum().item()
        assert kept == total, num_clusters
    # images of different sizes: the fraction of all their tokens
    mixed = [torch.rand(1, 40), torch.rand(3, 100)]
    threshold = calibrate_anchor_threshold(mixed, 0.5)
    assert sum(s.gt(threshold).sum().item() for s in mixed) == 20 + 150
    with pytest.raises(ValueError, match='at least one image'):
        calibrate_anchor_threshold([], 0.5)
    with pytest.raises(ValueError, match='num_clusters'):
        calibrate_anchor_threshold(scores, 0)


@pytest.mark.parametrize('value', [float('nan'), float('inf'), True,
                                   'high', [0.5]])
def test_ailurus_vit_refuses_a_bad_threshold(value):
    with pytest.raises(ValueError, match='anchor_threshold must be None or '
                       'a finite number .*' + re.escape(repr(value))):
        AiluRusViT(img_size=(32, 32), embed_dims=16, num_layers=2,
                   num_heads=2, cluster_layer=0, anchor_threshold=value)


@pytest.mark.parametrize('knobs, match', [
    (dict(window=2), 'needs the global clustering: leave window at None'),
    (dict(reducer='tome'), "anchor_threshold=0.5 is not used by "
     "reducer='tome'.*applies to the reducers \\('dpc_knn',\\)"),
])
def test_ailurus_vit_refuses_a_threshold_it_cannot_use(knobs, match):
    with pytest.raises(ValueError, match=match):
        AiluRusViT(img_size=(32, 32), embed_dims=16, num_layers=2,
                   num_heads=2, cluster_layer=0, anchor_threshold=0.5,
                   **knobs)


def _images():
    """A busy image and a plain one (flat colour regions)."""
    generator = torch.Generator().manual_seed(0)
    busy = torch.randn(3, 64, 64, generator=generator)
    plain = torch.zeros(3, 64, 64)
    plain[:, :32] = 1.0
    plain[:, :, 40:] -= 2.0
    return torch.stack([busy, plain])


@pytest.mark.parametrize('merged_decode', [False, True])
@pytest.mark.parametrize('prop_attn', [False, True])
def test_padded_batch_predicts_as_single_images(prop_attn, merged_decode):
    """The padding clusters are masked in the backbone and head attention:
    predicting a batch equals predicting its images one at a time."""
    with DefaultScope.overwrite_default_scope('mmseg'):
        torch.manual_seed(0)
        model = MODELS.build(segmentor_cfg(
            HEADS['mask'], merged_decode, backbone=dict(
                prop_attn=prop_attn, num_clusters=1.0,
                anchor_threshold=0.05)))
        model.init_weights()
        model.eval()
        images = _images()
        with torch.no_grad():
            assignment = model.backbone(images).assignment
        counts = (assignment.sizes > 0).sum(1).tolist()
        assert counts[0] != counts[1], counts  # the batch is padded
        batch_logits, batch_pred = predict_logits(model, images)
        for b in range(2):
            logits, pred = predict_logits(model, images[b:b + 1])
            torch.testing.assert_close(batch_logits[b:b + 1], logits,
                                       atol=1e-5, rtol=0)
            assert torch.equal(batch_pred[b:b + 1], pred)
