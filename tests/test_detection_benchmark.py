"""The detection accuracy benchmark: the synthetic COCO scenes, the vanilla
plain-ViT Mask R-CNN config trained on them, training and export."""
import copy
import hashlib
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config

from ailurus_mm.benchmarks.detection.instances import (
    DET_CLASSES, ID_STRIDE, MIN_AREA, TRAIN_SPLIT, VAL_2X_SPLIT, VAL_SPLIT,
    coco_split, make_detection_proxy, render_instances)
from ailurus_mm.benchmarks.detection.train import (DETECTOR_CONFIG,
                                                   detector_config,
                                                   export_fp16, train_detector)
from ailurus_mm.benchmarks.common.scenes import _BY_NAME, render_scene

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(REPO, 'configs', DETECTOR_CONFIG)

# sha256 of render_scene's image and label bytes at these (seed, size),
# computed from render_scene before its painting was split into
# SceneCanvas and friends for the detection scenes. The segmentation
# benchmark's shipped model was trained on these scenes: they must not
# change (numpy 1.26, OpenCV 4.11).
RENDER_SCENE_SHA256 = (
    '588af25075657dad466563e3524c42bca02fa1a36bd95d7828f246b4036218e2')

# The detector config shrunk to seconds on a CPU: a 2-layer ViT of 32
# dims, 64x64 images (4x4 tokens), 2 iterations, evaluated at the end. The
# data root is the real config's until detector_config sets it.
TINY_DETECTOR = '''
_base_ = [{config!r}]
image_size = (64, 64)
model = dict(
    data_preprocessor=dict(batch_augments=[
        dict(type='BatchFixedSizePad', size=image_size, pad_mask=True)]),
    backbone=dict(img_size=image_size, embed_dims=32, num_layers=2,
                  num_heads=2, mlp_ratio=2, out_indices=(1, )),
    neck=dict(in_channels=32, out_channels=16),
    rpn_head=dict(in_channels=16, feat_channels=16),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=16),
        bbox_head=dict(in_channels=16, fc_out_channels=32),
        mask_roi_extractor=dict(out_channels=16),
        mask_head=dict(in_channels=16, conv_out_channels=16)),
    # score_thr=0: an untrained model still detects something to evaluate
    test_cfg=dict(rcnn=dict(score_thr=0.0, max_per_img=20)))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomResize', scale=image_size, ratio_range=(0.5, 2.0),
         keep_ratio=True),
    dict(type='RandomCrop', crop_type='absolute_range',
         crop_size=image_size, recompute_bbox=True,
         allow_negative_crop=True),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-2, 1e-2)),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')]
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(num_workers=0, persistent_workers=False)
test_dataloader = val_dataloader
max_iters = 2
param_scheduler = [dict(type='LinearLR', start_factor=0.5, begin=0, end=2,
                        by_epoch=False)]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(interval=max_iters))
'''


def _box_of(mask: np.ndarray) -> np.ndarray:
    """``[x1, y1, x2, y2]`` (pixel edges) of a ``[H, W]`` mask."""
    ys, xs = np.nonzero(mask)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1],
                    np.float64)


def _xyxy(bbox) -> np.ndarray:
    x, y, w, h = bbox
    return np.array([x, y, x + w, y + h], np.float64)


@pytest.fixture(scope='module')
def proxy_root(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp('det_proxy'))
    make_detection_proxy(root, num_train=6, num_val=4, size=128, seed=0,
                         workers=1)
    return root


def test_render_scene_is_unchanged():
    digest = hashlib.sha256()
    for seed, size in ((0, 64), (7, 80), (3, 160), (500000, 96), (1, 320)):
        image, label = render_scene(seed, size, size)
        digest.update(image.tobytes())
        digest.update(label.tobytes())
    assert digest.hexdigest() == RENDER_SCENE_SHA256


def test_generator_writes_three_splits(proxy_root):
    splits = make_detection_proxy(proxy_root, 6, 4, 128, 0, workers=1)
    assert sorted(splits) == sorted([TRAIN_SPLIT, VAL_SPLIT, VAL_2X_SPLIT])
    sizes = {TRAIN_SPLIT: (6, 128), VAL_SPLIT: (4, 128),
             VAL_2X_SPLIT: (4, 256)}
    for name, (count, size) in sizes.items():
        assert splits[name] == coco_split(name)
        folder = osp.join(proxy_root, splits[name].img_prefix)
        files = sorted(os.listdir(folder))
        assert len(files) == count, (name, files)
        image = cv2.imread(osp.join(folder, files[0]))
        assert image.shape == (size, size, 3), name
        with open(osp.join(folder, files[0]), 'rb') as f:
            assert f.read(2) == b'\xff\xd8', f'{name}: not a JPEG'


@pytest.mark.parametrize('split', [TRAIN_SPLIT, VAL_SPLIT, VAL_2X_SPLIT])
def test_annotations_are_valid_coco(proxy_root, split):
    from pycocotools.coco import COCO

    coco = COCO(osp.join(proxy_root, coco_split(split).ann_file))
    categories = coco.loadCats(coco.getCatIds())
    assert [(c['id'], c['name']) for c in categories] == \
        list(enumerate(DET_CLASSES, start=1))
    annotations = coco.loadAnns(coco.getAnnIds())
    assert len(annotations) >= 3 * len(coco.getImgIds()), \
        f'only {len(annotations)} instances in {split}'
    ids = [a['id'] for a in annotations]
    assert len(set(ids)) == len(ids), 'annotation ids are not unique'
    bad = []
    for ann in annotations:
        mask = coco.annToMask(ann).astype(bool)
        if not (ann['iscrowd'] == 0 and ann['area'] == mask.sum()
                and mask.sum() > 0
                and np.abs(_box_of(mask) - _xyxy(ann['bbox'])).max() <= 1
                and 1 <= ann['category_id'] <= len(DET_CLASSES)
                and ann['id'] // ID_STRIDE == ann['image_id']):
            bad.append(ann['id'])
    assert not bad, f'{len(bad)} of {len(annotations)} annotations do ' \
        f'not fit their masks: {bad[:10]}'


def test_a_second_call_reuses_the_files(proxy_root):
    paths = [osp.join(proxy_root, coco_split(name).ann_file)
             for name in (TRAIN_SPLIT, VAL_SPLIT, VAL_2X_SPLIT)]
    paths.append(osp.join(proxy_root, 'train2017', '000000000001.jpg'))
    before = [os.stat(path).st_mtime_ns for path in paths]
    make_detection_proxy(proxy_root, 6, 4, 128, 0, workers=1)
    assert [os.stat(path).st_mtime_ns for path in paths] == before


def test_other_arguments_write_the_splits_again(tmp_path):
    root = str(tmp_path)
    make_detection_proxy(root, 2, 1, 64, 0, workers=1)
    make_detection_proxy(root, 2, 2, 64, 0, workers=1)
    for name, count in ((TRAIN_SPLIT, 2), (VAL_SPLIT, 2), (VAL_2X_SPLIT, 2)):
        with open(osp.join(root, coco_split(name).ann_file)) as f:
            data = json.load(f)
        assert len(data['images']) == count, name
        assert data['info']['num_images'] == count, name


def test_scenes_are_deterministic():
    image, instances = render_instances(11, 96, 96)
    again, instances_again = render_instances(11, 96, 96)
    assert np.array_equal(image, again)
    assert [(i.index, i.label) for i in instances] == \
        [(i.index, i.label) for i in instances_again]
    assert all(np.array_equal(a.mask, b.mask)
               for a, b in zip(instances, instances_again))


def _touching(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two masks overlap or share an edge (occlusion)."""
    grown = cv2.dilate(a.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    return bool((grown & b).any())


def test_scenes_have_the_hard_cases():
    size = 320
    counts = dict(small=0, large=0, same_class_pairs=0, thin=0, split=0,
                  car_and_person=0)
    for seed in range(30):
        _, instances = render_instances(seed, size, size)
        assert all(i.mask.sum() >= MIN_AREA for i in instances)
        labels = {DET_CLASSES[i.label] for i in instances}
        counts['car_and_person'] += {'car', 'person'} <= labels
        for k, instance in enumerate(instances):
            x1, y1, x2, y2 = _box_of(instance.mask)
            side = max(x2 - x1, y2 - y1)
            counts['small'] += side <= 32
            counts['large'] += instance.mask.sum() >= size * size / 9
            if DET_CLASSES[instance.label] == 'pole':
                # long and thin: at most 7 px wide across most of its length
                thin = instance.mask.sum() <= 7 * max(y2 - y1, x2 - x1)
                counts['thin'] += thin and side >= 48
            components, _ = cv2.connectedComponents(
                instance.mask.astype(np.uint8))
            counts['split'] += components - 1 >= 2
            counts['same_class_pairs'] += sum(
                other.label == instance.label
                and _touching(other.mask, instance.mask)
                for other in instances[k + 1:])
    # about half of what the 30 scenes hold
    minimum = dict(small=40, large=8, same_class_pairs=60, thin=20, split=30,
                   car_and_person=8)
    assert all(counts[key] >= minimum[key] for key in minimum), counts
    # car and person differ only in texture
    assert _BY_NAME['car'][2] == _BY_NAME['person'][2]
    assert _BY_NAME['car'][3] != _BY_NAME['person'][3]


def test_the_2x_split_holds_the_same_scenes(proxy_root):
    data = {}
    for name in (VAL_SPLIT, VAL_2X_SPLIT):
        with open(osp.join(proxy_root, coco_split(name).ann_file)) as f:
            data[name] = json.load(f)
    small, large = data[VAL_SPLIT], data[VAL_2X_SPLIT]
    assert [(i['id'], i['file_name']) for i in small['images']] == \
        [(i['id'], i['file_name']) for i in large['images']]
    assert [2 * i['height'] for i in small['images']] == \
        [i['height'] for i in large['images']]
    small_anns = {a['id']: a for a in small['annotations']}
    large_anns = {a['id']: a for a in large['annotations']}
    assert sorted(small_anns) == sorted(large_anns)
    errors = np.array([
        np.abs(_xyxy(large_anns[i]['bbox']) -
               2 * _xyxy(small_anns[i]['bbox'])).max() for i in small_anns])
    assert all(small_anns[i]['category_id'] == large_anns[i]['category_id']
               for i in small_anns)
    # box edges at 1x are whole pixels: 2 px at 2x, within a pixel of
    # rasterisation; a sliver an occluder leaves can reach further at 2x
    assert (errors <= 2).mean() >= 0.9, np.sort(errors)
    assert np.median(errors) <= 1, np.sort(errors)
    # and the pictures match: each 2x image, shrunk, is nearest to its own
    # 1x image
    folder = {name: osp.join(proxy_root, coco_split(name).img_prefix)
              for name in (VAL_SPLIT, VAL_2X_SPLIT)}
    names = [i['file_name'] for i in small['images']]
    ones = [cv2.imread(osp.join(folder[VAL_SPLIT], n)).astype(float)
            for n in names]
    for k, name in enumerate(names):
        shrunk = cv2.resize(cv2.imread(osp.join(folder[VAL_2X_SPLIT], name)),
                            (128, 128), interpolation=cv2.INTER_AREA)
        distances = [np.abs(shrunk - one).mean() for one in ones]
        assert int(np.argmin(distances)) == k, distances


def test_config_fits_the_generated_data(tmp_path):
    cfg = detector_config(str(tmp_path / 'data'), str(tmp_path / 'work'))
    # ours (from configs/, or from the copy an install puts in .mim/)
    assert cfg.filename.endswith(osp.join('configs', 'proxy',
                                          osp.basename(CONFIG)))
    assert cfg.train_dataloader.dataset.data_root == \
        str(tmp_path / 'data') + '/'
    assert tuple(cfg.DET_CLASSES) == DET_CLASSES
    assert cfg.model.roi_head.bbox_head.num_classes == len(DET_CLASSES)
    assert cfg.model.roi_head.mask_head.num_classes == len(DET_CLASSES)
    assert cfg.model.backbone.init_cfg is None  # from scratch
    for loader, split in (('train_dataloader', TRAIN_SPLIT),
                          ('val_dataloader', VAL_SPLIT)):
        dataset = cfg[loader].dataset
        assert tuple(dataset.metainfo['classes']) == DET_CLASSES
        assert dataset.ann_file == coco_split(split).ann_file
        assert dataset.data_prefix['img'] == coco_split(split).img_prefix
    assert cfg.val_evaluator.metric == ['bbox', 'segm']
    for evaluator in (cfg.val_evaluator, cfg.test_evaluator):
        assert evaluator.ann_file == \
            str(tmp_path / 'data' / coco_split(VAL_SPLIT).ann_file)
    assert cfg.optim_wrapper.type == 'ailurus_mm.AutocastOptimWrapper'
    assert cfg.train_cfg.max_iters == 2000
    assert '-2k_' in osp.basename(CONFIG)


def test_the_full_model_exports_under_16_mb():
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope

    import ailurus_mm.models.det  # noqa: F401  (registration)

    init_default_scope('mmdet')
    model = MODELS.build(Config.fromfile(CONFIG).model)
    state_dict = model.state_dict()
    backbone = sum(v.numel() for k, v in state_dict.items()
                   if k.startswith('backbone.'))
    assert 5.5e6 < backbone < 5.7e6, backbone  # ViT-T/16
    fp16_bytes = sum(2 * v.numel() if v.is_floating_point() else
                     v.element_size() * v.numel()
                     for v in state_dict.values())
    assert fp16_bytes < 15.5e6, fp16_bytes


@pytest.mark.parametrize('split,size', [(TRAIN_SPLIT, 128),
                                        (VAL_2X_SPLIT, 256)])
def test_mmdet_reads_the_tree_with_the_config_pipeline(proxy_root, split,
                                                       size):
    from mmdet.datasets import CocoDataset
    from mmdet.structures.mask import BitmapMasks
    from mmengine.registry import init_default_scope

    init_default_scope('mmdet')
    cfg = Config.fromfile(CONFIG)
    train = split == TRAIN_SPLIT
    pipeline = cfg.train_pipeline if train else cfg.test_pipeline
    dataset = CocoDataset(
        data_root=proxy_root, ann_file=coco_split(split).ann_file,
        data_prefix=dict(img=coco_split(split).img_prefix),
        metainfo=dict(classes=DET_CLASSES), pipeline=pipeline,
        test_mode=not train)
    assert len(dataset) == (6 if train else 4)
    assert dataset.metainfo['classes'] == DET_CLASSES
    raw = dataset.get_data_info(0)
    assert len(raw['instances']) >= 1
    sample = dataset[0]
    inputs, data_sample = sample['inputs'], sample['data_samples']
    if train:
        # LSJ rescales the 128x128 image to 320x320 times 0.5-2 and crops
        # it to at most 320x320 (the batch is padded to 320x320)
        np.random.seed(0)  # mmcv's transforms draw from numpy's global
        sides = [side for _ in range(12)
                 for side in dataset[0]['inputs'].shape[1:]]
        assert all(160 <= side <= 320 for side in sides), sides
        assert len(set(sides)) > 1, sides  # jittered
    else:  # validation images keep their size
        assert tuple(inputs.shape) == (3, size, size)
        gt = data_sample.gt_instances
        assert len(gt) == len(raw['instances'])
        assert isinstance(gt.masks, BitmapMasks)
        assert gt.masks.masks.shape == (len(gt), size, size)
        assert int(gt.labels.max()) < len(DET_CLASSES)


def test_tiny_detector_trains_evaluates_exports_and_reloads(tmp_path):
    from mmdet.registry import MODELS
    from mmengine.runner import Runner

    from ailurus_mm.checkpoint import (CheckpointMismatchError,
                                       load_model_checkpoint)

    root = str(tmp_path / 'data') + '/'
    make_detection_proxy(root, num_train=4, num_val=2, size=64, seed=1,
                         workers=1)
    path = tmp_path / 'tiny.py'
    path.write_text(TINY_DETECTOR.format(config=CONFIG))
    cfg = detector_config(root, str(tmp_path / 'train'), str(path))
    assert cfg.val_evaluator.ann_file == \
        root + 'annotations/instances_val2017.json'
    checkpoint = train_detector(cfg)
    assert checkpoint == osp.join(cfg.work_dir, 'iter_2.pth')
    assert osp.isfile(checkpoint)

    exported = export_fp16(checkpoint, str(tmp_path / 'fp16.pth'), cfg)
    saved = torch.load(exported, weights_only=True)
    assert sorted(saved) == ['meta', 'state_dict']
    assert saved['meta']['dataset_meta']['classes'] == DET_CLASSES
    floats = [v for v in saved['state_dict'].values()
              if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float16 for v in floats)

    # reloads strictly, and evaluates with CocoMetric (boxes and masks)
    test_cfg = detector_config(root, str(tmp_path / 'test'), str(path))
    test_cfg.load_from = exported
    runner = Runner.from_cfg(test_cfg)
    load_model_checkpoint(runner.model, exported)
    metrics = runner.test()
    for key in ('coco/bbox_mAP', 'coco/segm_mAP', 'coco/bbox_mAP_s'):
        assert key in metrics, sorted(metrics)
        assert -1 <= metrics[key] <= 1, (key, metrics[key])
    # strictly: a head for other classes does not take it
    other = copy.deepcopy(test_cfg.model)
    other.roi_head.bbox_head.num_classes = 3
    with pytest.raises(CheckpointMismatchError,
                       match=r'shape or dtype mismatch \(4\).*fc_cls'):
        load_model_checkpoint(MODELS.build(other), exported)


def test_detection_benchmark_end_to_end(tmp_path):
    """Generate, train a few iterations, evaluate every setting with
    mmdet's CocoMetric at both lengths (halves included), report, choose,
    check the tools: the whole --task detection path on a tiny detector
    (its fine-tuning study: test_detection_finetune_only)."""
    from ailurus_mm.benchmarks.cli import accuracy_main
    from ailurus_mm.benchmarks.detection.grid import HEADLINE, METRICS

    path = tmp_path / 'tiny.py'
    path.write_text(TINY_DETECTOR.format(config=CONFIG))
    out = tmp_path / 'out'
    summary = accuracy_main([
        '--task', 'detection', '--out-dir', str(out), '--config', str(path),
        '--num-train', '4', '--num-val', '4', '--size', '64', '--iters',
        '2', '--presets', 'dpc_cover', 'grid', '--keeps', '0.5',
        '--prop-attn', 'on', '--layers', '0', '--no-finetune',
        '--cfg-options', 'model.backbone.num_layers=3',
        'model.backbone.out_indices=(2,)'])
    with open(out / 'accuracy.csv') as f:
        import csv
        rows = list(csv.DictReader(f))
    # 2 splits x (vanilla, dpc_cover, grid, dpc_cover@layer0)
    assert [(r['split'], r['setting']) for r in rows] == [
        (s, n) for s in ('1x', '2x')
        for n in ('vanilla', 'dpc_cover', 'grid', 'dpc_cover@layer0')]
    assert [int(r['tokens']) for r in rows[::4]] == [16, 64]
    for row in rows:
        assert all(row[m] != '' for m in METRICS)
        if row['setting'] != 'vanilla':
            assert all(row[f'noise.{m}'] != '' for m in HEADLINE)
            assert row['reducer'] in ('dpc_cover', 'grid')
    for name in ('accuracy.md', 'accuracy.png', 'summary.json'):
        assert (out / name).stat().st_size > 0
    assert 'synthetic proxy, not COCO' in (out / 'accuracy.md').read_text()
    assert set(summary['vanilla']) == {'1x', '2x'}
    assert summary['checkpoint'].endswith('.pth')
    if summary['default_setting'] is not None:
        # tools/test.py --no-finetune and ailurus_mm.apply give the grid's AP
        check = summary['check_tools']
        for way in ('test_py', 'apply'):
            for metric, value in check[way].items():
                assert value == pytest.approx(check['grid'][metric],
                                              abs=0.05), (way, metric)


def test_csv_round_trip_keeps_every_knob(tmp_path):
    from ailurus_mm.benchmarks.detection import report
    from ailurus_mm.ops import ClusterConfig

    shipped = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))),
                       'docs', 'detection', 'accuracy.csv')
    rows = report.read_csv(shipped)
    report.write_csv(rows, str(tmp_path / 'again.csv'))
    again = report.read_csv(str(tmp_path / 'again.csv'))
    assert again == rows
    chosen = report.fastest_within(rows)
    assert set(chosen.knobs) == set(ClusterConfig.names())


def test_merge_reports_in_parts_and_choose_again(tmp_path):
    """Two parts of one grid merge into one report whose choice is the
    rule's on all the rows; parts of different detectors are refused, as
    is a file that is not a detection report."""
    import json

    from ailurus_mm.benchmarks.detection import merge, report

    shipped = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))),
                       'docs', 'detection', 'accuracy.csv')
    rows = report.read_csv(shipped)
    vanilla = [r for r in rows if r.is_vanilla]
    first = vanilla + [r for r in rows if r.setting == 'dpc_knn']
    second = vanilla + [r for r in rows if r.setting != 'dpc_knn'
                        and not r.is_vanilla]
    parts = []
    for name, part in (('a', first), ('b', second)):
        parts.append(str(tmp_path / f'{name}.csv'))
        report.write_csv(part, parts[-1])
    out = str(tmp_path / 'out')
    summary = merge.main(['--out-dir', out] + parts)
    merged = report.read_csv(osp.join(out, 'accuracy.csv'))
    assert sorted(map(repr, merged)) == sorted(map(repr, rows))
    assert summary['default_setting'] == report.summary_of(
        report.fastest_within(rows))
    with open(osp.join(out, 'summary.json')) as f:
        assert json.load(f)['parts'] == parts
    for name in ('accuracy.md', 'accuracy.png'):
        assert osp.getsize(osp.join(out, name)) > 0

    other = [r for r in vanilla]
    other[0].scores = dict(other[0].scores, bbox_mAP=1.0)
    report.write_csv(other, str(tmp_path / 'other.csv'))
    with pytest.raises(SystemExit):
        merge.main(['--out-dir', out, parts[0], str(tmp_path / 'other.csv')])
    (tmp_path / 'bad.csv').write_text('split,tokens\n1x,4\n')
    with pytest.raises(ValueError, match='lacks the columns'):
        report.read_csv(str(tmp_path / 'bad.csv'))
    lines = open(parts[0]).read().splitlines()
    (tmp_path / 'empty.csv').write_text(lines[0] + '\n')
    with pytest.raises(ValueError, match='no rows'):
        report.read_csv(str(tmp_path / 'empty.csv'))
    (tmp_path / 'cut.csv').write_text('\n'.join(lines[:2] + [lines[2][:20]]))
    with pytest.raises(ValueError, match='line 3'):
        report.read_csv(str(tmp_path / 'cut.csv'))


def test_detection_finetune_only(tmp_path):
    """``--finetune-only``: no grid; the vanilla detector fine-tuned at the
    Mask R-CNN configs' setting (layer 3, keep 0.35, read from the config)
    and the vanilla control, AP of both on the asked split."""
    from ailurus_mm.benchmarks.cli import accuracy_main
    from ailurus_mm.benchmarks.detection.run import config_setting

    root = str(tmp_path / 'data') + '/'
    make_detection_proxy(root, num_train=4, num_val=4, size=64, seed=1,
                         workers=1)
    path = tmp_path / 'tiny.py'
    path.write_text(TINY_DETECTOR.format(config=CONFIG))
    five = dict(model=dict(backbone=dict(num_layers=5, out_indices=(4, ))))
    cfg = detector_config(root, str(tmp_path / 'train'), str(path), five)
    exported = export_fp16(train_detector(cfg), str(tmp_path / 'v.pth'),
                           cfg)
    out = tmp_path / 'out'
    summary = accuracy_main([
        '--task', 'detection', '--finetune-only', '--checkpoint', exported,
        '--data-root', root, '--out-dir', str(out), '--config', str(path),
        '--num-train', '4', '--num-val', '4', '--size', '64', '--splits',
        '2x', '--cfg-options', 'model.backbone.num_layers=5',
        'model.backbone.out_indices=(4,)'])
    assert not (out / 'accuracy.csv').exists()  # no grid
    study = summary['finetune']
    assert study['knobs'] == config_setting().clustering().to_dict()
    assert (study['knobs']['cluster_layer'],
            study['knobs']['num_clusters']) == (3, 0.35)
    assert study['iters'] == 1  # an eighth of 2 iterations, at least one
    assert sorted(study['seconds_per_iter']) == ['control', 'finetune']
    assert '1x' not in study
    for name in ('start', 'tuned', 'control'):
        for label in ('vanilla', 'ailurus'):
            scores = study['2x'][f'{name}_{label}']
            assert all(-1 <= v <= 100 for v in scores.values()), scores
    assert '| 2x |' in summary['finetune_table']
    assert (out / 'finetune' / 'iter_1.pth').is_file()
    assert (out / 'control' / 'iter_1.pth').is_file()


def test_detection_finetune_only_needs_a_checkpoint(tmp_path, capsys):
    from ailurus_mm.benchmarks.cli import accuracy_main

    with pytest.raises(SystemExit):
        accuracy_main(['--task', 'detection', '--finetune-only',
                       '--out-dir', str(tmp_path)])
    assert 'needs the vanilla detector to start from (--checkpoint)' in \
        capsys.readouterr().err
    assert not (tmp_path / 'data').exists()  # refused before any data
