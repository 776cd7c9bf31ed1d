"""The accuracy benchmark: proxy dataset, training, evaluation, report."""
import os.path as osp

import numpy as np
import pytest
import torch

from ailurus_mm.testing.scenes import (PROXY_CLASSES, ade20k_label,
                                       make_proxy_ade20k, render_scene)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
PROXY = osp.join(REPO, 'configs', 'proxy',
                 'segmenter_vit-t_mask_1xb8-800_ailurus-proxy-320x320.py')

# The proxy config shrunk to seconds on a CPU: 64x64 training images
# (16 tokens), validation at 64 and 128 (64 tokens).
TINY_PROXY = f'''
_base_ = [{PROXY!r}]
crop_size = (64, 64)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(img_size=crop_size, embed_dims=32, num_layers=3,
                  num_heads=2),
    decode_head=dict(in_channels=32, channels=32, num_heads=2,
                     embed_dims=32, num_layers=1))
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(pipeline=[
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='PackSegInputs')]))
val_dataloader = dict(num_workers=0, persistent_workers=False)
test_dataloader = val_dataloader
'''


@pytest.fixture
def tiny_proxy_config(tmp_path):
    path = tmp_path / 'tiny_proxy.py'
    path.write_text(TINY_PROXY)
    return str(path)


def test_scene_is_the_same_at_twice_the_resolution():
    _, small = render_scene(7, 80, 80)
    _, large = render_scene(7, 160, 160)
    # Nearest-neighbour downsampling of the 2x labels gives the 1x labels
    # except on a thin band along the region boundaries.
    agreement = (large[1::2, 1::2] == small).mean()
    assert agreement > 0.97
    boundary = (np.diff(small.astype(int), axis=0) != 0).mean()
    assert 1 - agreement < 2 * boundary


def test_scenes_have_the_hard_cases():
    labels = [render_scene(seed, 160, 160)[1] for seed in range(30)]
    present = {int(v) for label in labels for v in np.unique(label)}
    ids = {ade20k_label(name) for name in PROXY_CLASSES}
    assert present <= ids | {0}
    assert present >= ids  # every class, thin poles and small plants too
    assert any((label == 0).mean() > 0.01 for label in labels)  # clutter
    # Poles are thin: their area is far below their bounding boxes'.
    pole = labels[0] == ade20k_label('pole')
    assert 0 < pole.mean() < 0.05
    # Classes that differ only in texture have the same base colour.
    image, label = render_scene(3, 160, 160)
    assert image.dtype == np.uint8 and image.shape == (160, 160, 3)


def test_mmseg_reads_the_proxy_with_its_classes(tmp_path):
    from mmengine.registry import init_default_scope
    from mmseg.datasets import ADE20KDataset

    init_default_scope('mmseg')
    root = make_proxy_ade20k(str(tmp_path), num_train=2, num_val=1, size=32)
    assert sorted(root) == ['training', 'validation', 'validation_2x']
    dataset = ADE20KDataset(
        data_root=str(tmp_path), metainfo=dict(classes=PROXY_CLASSES),
        data_prefix=dict(img_path='images/validation_2x',
                         seg_map_path='annotations/validation_2x'),
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='LoadAnnotations', reduce_zero_label=True)])
    sample = dataset[0]
    raw = render_scene(500_000, 64, 64)[1]
    expected = np.full(raw.shape, 255, np.uint8)
    for new_id, name in enumerate(PROXY_CLASSES):
        expected[raw == ade20k_label(name)] = new_id
    assert sample['img'].shape == (64, 64, 3)
    assert np.array_equal(sample['gt_seg_map'], expected)


def test_miou_is_iou_metrics_own():
    from mmseg.evaluation import IoUMetric

    from ailurus_mm.analysis.accuracy import miou

    rng = np.random.default_rng(0)
    metric = IoUMetric()
    metric.dataset_meta = dict(classes=('a', 'b', 'c'))
    results = []
    for _ in range(3):
        pred = torch.from_numpy(rng.integers(0, 3, (8, 8)))
        label = torch.from_numpy(rng.integers(0, 3, (8, 8)))
        results.append(metric.intersect_and_union(pred, label, 3, 255))
    expected = metric.compute_metrics(results)['mIoU']
    assert miou(results) == pytest.approx(expected, abs=0.005)


def test_fastest_within_budget():
    from ailurus_mm.analysis.accuracy import Row, fastest_within

    def row(reducer, keep, drop, kept):
        return Row('2x', 1600, reducer, True, keep, kept, 50 - drop,
                   0, 0, drop)

    rows = [row('vanilla', 1.0, 0.0, 1600), row('a', 0.5, 0.2, 800),
            row('a', 0.25, 0.9, 400), row('b', 0.35, 0.3, 560),
            row('b', 0.25, 0.31, 400)]
    assert fastest_within(rows, '2x', 0.3).reducer == 'b'
    assert fastest_within(rows, '2x', 0.3).keep == 0.35
    assert fastest_within(rows, '2x', 0.1) is None
    assert fastest_within(rows, '2x', 0.3, reducers=['a']).keep == 0.5


def test_unknown_reducer_name():
    from ailurus_mm.analysis.accuracy import find_reducers

    with pytest.raises(ValueError, match=r"unknown reducers \['nope'\]"):
        find_reducers(['ailurus', 'nope'])


@pytest.mark.slow
def test_whole_benchmark_on_a_tiny_model(tmp_path, tiny_proxy_config):
    from mmseg.registry import MODELS

    from ailurus_mm.analysis.accuracy import (read_csv,
                                              run_accuracy_benchmark)

    out = tmp_path / 'out'
    summary = run_accuracy_benchmark(
        str(out), num_train=4, num_val=4, size=64, iters=2,
        reducers=['tome', 'grid'], keeps=[1.0, 0.5], jobs=2,
        config=tiny_proxy_config, log=lambda *a: None)
    rows = read_csv(str(out / 'accuracy.csv'))
    # 2 splits x (vanilla + 2 reducers x 2 prop_attn x 2 keeps), in the
    # order of one process although two evaluated them.
    assert len(rows) == 2 * (1 + 2 * 2 * 2)
    assert [(r.reducer, r.prop_attn, r.keep) for r in rows[:5]] == [
        ('vanilla', None, 1.0), ('tome', False, 1.0), ('tome', False, 0.5),
        ('tome', True, 1.0), ('tome', True, 0.5)]
    assert [r.tokens for r in rows if r.reducer == 'vanilla'] == [16, 64]
    for row in rows:
        if row.reducer != 'vanilla' and row.keep == 1.0:
            # Nothing merged: exactly the vanilla model.
            assert row.drop == 0 and row.kept_tokens == row.tokens
        if row.keep == 0.5:
            assert row.kept_tokens == row.tokens // 2
    for name in ('accuracy.png', 'accuracy.md', 'summary.json'):
        assert (out / name).stat().st_size > 0
    assert '| tome | True |' in (out / 'accuracy.md').read_text()
    # The export is a clean fp16 state dict that loads strictly.
    exported = torch.load(summary['checkpoint'], weights_only=True)
    assert set(exported) == {'state_dict', 'meta'}
    dtypes = {v.dtype for v in exported['state_dict'].values()}
    assert dtypes == {torch.float16}
    from ailurus_mm.analysis.accuracy import proxy_config
    cfg = proxy_config(str(out / 'data'), str(tmp_path), tiny_proxy_config)
    model = MODELS.build(cfg.model)
    model.load_state_dict(exported['state_dict'], strict=True)
    # Fine-tuning ran with clustering in the loop and its control.
    ft = summary['finetune']
    assert ft['knobs']['num_clusters'] == 0.25 and ft['iters'] == 1
    assert set(ft) >= {'1x', '2x'}
    assert set(ft['train_seconds']) == {'finetune', 'control'}
    assert set(ft['1x']) >= {'finetuned_vanilla_control',
                             'vanilla_control_no_finetune', 'gap_closed'}
    assert ft['2x']['vanilla'] == pytest.approx(
        next(r.miou for r in rows if r.split == '2x' and
             r.reducer == 'vanilla'), abs=1e-3)


def test_per_image_count_is_calibrated_to_the_mean(tmp_path,
                                                   tiny_proxy_config):
    """``ailurus_adaptive``: the threshold from the split's own decision
    scores gives images different counts with the keep ratio's mean."""
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    from ailurus_mm.analysis.accuracy import (ailurus_model_cfg,
                                              build_segmentor,
                                              cluster_layer_scores,
                                              evaluate_settings,
                                              find_reducers, load_batches,
                                              proxy_config, splits)
    from ailurus_mm.ops import calibrate_anchor_threshold

    make_proxy_ade20k(str(tmp_path / 'data'), 2, 6, 64, 0)
    cfg = proxy_config(str(tmp_path / 'data'), str(tmp_path),
                       tiny_proxy_config)
    init_default_scope('mmseg')
    torch.manual_seed(0)
    state_dict = MODELS.build(cfg.model).state_dict()
    batches, _ = load_batches(cfg, splits()[1])  # 128x128: 64 tokens
    model = build_segmentor(ailurus_model_cfg(cfg.model, num_clusters=1.0),
                            state_dict, 'cpu')
    scores = cluster_layer_scores(model, batches)
    assert [s.shape for s in scores] == [(1, 64)] * 6
    layer = model.backbone.layers[model.backbone.cluster_layer]
    assert not layer._forward_hooks  # removed after use
    threshold = calibrate_anchor_threshold(scores, 32)
    adaptive = build_segmentor(ailurus_model_cfg(
        cfg.model, num_clusters=1.0, anchor_threshold=threshold),
        state_dict, 'cpu')
    counts = []
    with torch.no_grad():
        for batch in batches:
            data = adaptive.data_preprocessor(batch, False)
            counts.append(adaptive.backbone(
                data['inputs']).assignment.num_clusters)
    assert sum(counts) == 6 * 32 and len(set(counts)) > 1, counts
    rows = evaluate_settings(cfg, state_dict,
                             find_reducers(['ailurus_adaptive']), [0.5],
                             [True], splits()[1:], log=lambda *a: None)
    assert [(r.reducer, r.kept_tokens) for r in rows] == [
        ('vanilla', 64), ('ailurus_adaptive', 32)]


@pytest.mark.slow
def test_finetune_only_with_another_recipe(tmp_path, tiny_proxy_config):
    """--finetune-only: no reducer table, the fine-tuning study at the
    default setting with the recipe given (and its markdown)."""
    from ailurus_mm.analysis.accuracy import accuracy_main

    out = tmp_path / 'out'
    summary = accuracy_main([
        '--out-dir', str(out), '--num-train', '4', '--num-val', '2',
        '--size', '64', '--iters', '4', '--config', tiny_proxy_config,
        '--finetune-only', '--ft-fraction', '0.5', '--ft-lr-factor', '0.2',
        '--ft-train-keep', '0.5'])
    ft = summary['finetune']
    assert (ft['iters'], ft['train_keep'], ft['knobs']['num_clusters']) == (
        2, 0.5, 0.25)
    assert ft['lr'] == pytest.approx(0.2 * 0.001)
    assert not (out / 'accuracy.csv').exists()
    assert (out / 'summary.json').is_file()
    assert (out / 'finetune' / 'iter_2.pth').is_file()
