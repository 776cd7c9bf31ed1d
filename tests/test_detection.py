"""Detection: AiluRus in mmdet's Mask R-CNN with a plain ViT and SimpleFPN.

Tiny versions of the real configs in configs/mask_rcnn/ (small ViT and
heads, 128x128 images) on a generated COCO-format dataset, through mmdet's
CocoDataset and CocoMetric, tools/train.py and tools/test.py.
"""
import dataclasses
import glob
import os.path as osp
import pickle

import pytest
import torch

from conftest import CONFIGS, run_tool, run_tool_here

MASK_RCNN = osp.join(CONFIGS, 'mask_rcnn')
VANILLA_B = osp.join(MASK_RCNN,
                     'mask-rcnn_vit-b_simplefpn_8xb2-lsj-1x_coco-1024x1024.py')
AILURUS_B = osp.join(MASK_RCNN, 'ailurus_' + osp.basename(VANILLA_B))

# Shrinks a Mask R-CNN ViT config to a model that trains in seconds on a CPU
# on 128x128 images (8x8 patches). Appended to a config that inherits the
# real one: dataset class, evaluator, heads' types, the AiluRus knobs and the
# composition of the neck stay the real config's.
TINY_MASK_RCNN = '''
image_size = (128, 128)
data_root = {data_root!r}
model = dict(
    data_preprocessor=dict(batch_augments=[
        dict(type='BatchFixedSizePad', size=image_size, pad_mask=True)]),
    backbone=dict(img_size=image_size, embed_dims=32, num_layers=3,
                  num_heads=2, mlp_ratio=2, out_indices=(2, ),
                  drop_path_rate=0.0, init_cfg=None, **{backbone!r}),
    neck={neck},
    rpn_head=dict(in_channels=32, feat_channels=32),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=32),
        bbox_head=dict(in_channels=32, fc_out_channels=64),
        mask_roi_extractor=dict(out_channels=32),
        mask_head=dict(num_convs=1, in_channels=32, conv_out_channels=32)),
    train_cfg=dict(rpn_proposal=dict(nms_pre=200, max_per_img=50),
                   rcnn=dict(sampler=dict(num=32))),
    # score_thr=0: an untrained model still detects something to evaluate
    test_cfg=dict(rpn=dict(nms_pre=200, max_per_img=50),
                  rcnn=dict(score_thr=0.0, max_per_img=20)))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape',
                                          'img_shape', 'scale_factor'))]
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root=data_root,
                                     pipeline=train_pipeline))
val_dataloader = dict(batch_size=1, num_workers=0, persistent_workers=False,
                      dataset=dict(data_root=data_root,
                                   pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator
train_cfg = dict(max_epochs=1, val_interval=1)
default_hooks = dict(logger=dict(interval=1))
'''
TINY_SIMPLE_FPN = 'dict(in_channels=32, out_channels=32)'


def write_tiny_det_config(path: str, base: str, data_root: str,
                          backbone: dict = None, extra: str = '') -> str:
    """Write a tiny config inheriting the Mask R-CNN config ``base``."""
    neck = TINY_SIMPLE_FPN
    if osp.basename(base).startswith('ailurus_'):
        neck = f'dict(neck={TINY_SIMPLE_FPN})'  # TokenRecover wraps it
    text = f'_base_ = [{osp.abspath(base)!r}]\n' + TINY_MASK_RCNN.format(
        data_root=data_root.rstrip('/') + '/', backbone=backbone or {},
        neck=neck) + extra
    with open(path, 'w') as f:
        f.write(text)
    return path


def load_tiny(tmp_path, base, coco_root, name='tiny.py', **backbone):
    from mmengine.config import Config
    return Config.fromfile(
        write_tiny_det_config(str(tmp_path / name), base, coco_root,
                              backbone=backbone))


def build_detector(model_cfg):
    import ailurus_mm.models.det  # noqa: F401
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope

    init_default_scope('mmdet')
    return MODELS.build(model_cfg)


@pytest.fixture(scope='module')
def coco_root(tmp_path_factory) -> str:
    from ailurus_mm.testing import make_coco
    return make_coco(str(tmp_path_factory.mktemp('coco')))


# ---------------------------------------------------------------- SimpleFPN


@pytest.mark.parametrize('scale_factors,num_outs,sizes', [
    # a 6x10 map is stride 16 of a 96x160 image
    ((4.0, 2.0, 1.0, 0.5), 5, [(24, 40), (12, 20), (6, 10), (3, 5), (2, 3)]),
    ((4.0, 2.0, 1.0, 0.5), 4, [(24, 40), (12, 20), (6, 10), (3, 5)]),
    ((2.0, 1.0), 3, [(12, 20), (6, 10), (3, 5)]),
])
def test_simple_fpn_levels(scale_factors, num_outs, sizes):
    neck = build_detector(
        dict(type='SimpleFPN', in_channels=32, out_channels=16,
             scale_factors=scale_factors, num_outs=num_outs))
    neck.init_weights()
    feature = torch.randn(2, 32, 6, 10)
    with torch.no_grad():
        outs = neck([torch.randn(2, 32, 6, 10), feature])  # uses the last
        # [map, cls_token] outputs of VisionTransformer work the same
        again = neck([[feature, torch.randn(2, 32)]])
    assert [tuple(o.shape) for o in outs] == [(2, 16, *s) for s in sizes]
    for a, b in zip(outs, again):
        assert torch.equal(a, b)


def test_simple_fpn_levels_are_layer_normalised():
    neck = build_detector(dict(type='SimpleFPN', in_channels=32,
                               out_channels=16))
    neck.init_weights()
    with torch.no_grad():
        outs = neck([5 + 3 * torch.randn(1, 32, 4, 4)])
    for out in outs:
        mean = out.mean(dim=1)
        torch.testing.assert_close(mean, torch.zeros_like(mean),
                                   atol=1e-4, rtol=0)


@pytest.mark.parametrize('kwargs,match', [
    (dict(scale_factors=(8.0, 1.0)), r'scale_factors must be taken from'),
    (dict(scale_factors=()), r'scale_factors must be taken from'),
    (dict(in_channels=30), r'in_channels=30 must be divisible'),
    (dict(num_outs=3), r'num_outs=3 must be at least len\(scale_factors\)=4'),
])
def test_simple_fpn_invalid_settings(kwargs, match):
    from ailurus_mm.models.simple_fpn import SimpleFPN
    with pytest.raises(ValueError, match=match):
        SimpleFPN(**{'in_channels': 32, **kwargs})


def test_simple_fpn_on_merged_tokens_asks_for_token_recover():
    from ailurus_mm.models.simple_fpn import SimpleFPN
    with pytest.raises(ValueError, match='needs TokenRecover in front'):
        SimpleFPN(in_channels=32)([torch.randn(1, 10, 32)])


# ---------------------------------------------- TokenRecover wrapping a neck


def _tiny_vit(**kwargs):
    return dict(img_size=(64, 64), embed_dims=32, num_layers=3, num_heads=2,
                mlp_ratio=2, out_indices=(2, ), **kwargs)


def test_token_recover_applies_the_inner_neck_after_recovery():
    from mmseg.models.backbones import VisionTransformer

    from ailurus_mm.models import AiluRusViT
    from ailurus_mm.models.simple_fpn import SimpleFPN

    torch.manual_seed(0)
    vit = VisionTransformer(**_tiny_vit())
    vit.init_weights()
    fpn = SimpleFPN(in_channels=32, out_channels=16)
    fpn.init_weights()
    ailurus = AiluRusViT(**_tiny_vit(), num_clusters=1.0)
    ailurus.load_state_dict(vit.state_dict(), strict=True)
    recover = build_detector(dict(
        type='mmseg.TokenRecover',
        neck=dict(type='SimpleFPN', in_channels=32, out_channels=16)))
    recover.load_state_dict(fpn.state_dict(), strict=True)
    images = torch.randn(2, 3, 64, 96)
    vit.eval()  # mmseg's VisionTransformer.train() returns None
    with torch.no_grad():
        expected = fpn(vit(images))
        actual = recover(ailurus.eval()(images))
    assert len(actual) == len(expected) == 5
    for a, b in zip(actual, expected):
        assert torch.equal(a, b)


def test_token_recover_is_transparent_in_the_state_dict():
    from ailurus_mm.models.simple_fpn import SimpleFPN

    fpn = SimpleFPN(in_channels=32, out_channels=16)
    recover = build_detector(dict(
        type='mmseg.TokenRecover',
        neck=dict(type='SimpleFPN', in_channels=32, out_channels=16)))
    assert list(recover.state_dict()) == list(fpn.state_dict())
    # and back: a fine-tuned AiluRus neck loads into the vanilla neck
    for param in recover.parameters():
        torch.nn.init.normal_(param)
    fpn.load_state_dict(recover.state_dict(), strict=True)
    for name, value in fpn.state_dict().items():
        assert torch.equal(value, recover.neck.state_dict()[name])
    # names in the inner form (``neck.<name>``) load as well
    inner = {f'neck.{k}': v for k, v in fpn.state_dict().items()}
    recover.load_state_dict(inner, strict=True)


def test_token_recover_without_neck_has_no_state():
    from ailurus_mm.models import TokenRecover
    recover = TokenRecover()
    assert not recover.with_neck
    assert recover.state_dict() == {}


# ------------------------------------------------------------------ configs


def test_configs_come_in_vanilla_and_ailurus_pairs():
    from mmengine.config import Config

    ailurus = sorted(glob.glob(osp.join(MASK_RCNN, 'ailurus_*.py')))
    assert len(ailurus) == 2
    for path in ailurus:
        twin = osp.join(MASK_RCNN, osp.basename(path)[len('ailurus_'):])
        assert osp.isfile(twin), f'{path} has no vanilla twin'
        cfg, vanilla = Config.fromfile(path), Config.fromfile(twin)
        assert cfg.default_scope == vanilla.default_scope == 'mmdet'
        assert cfg.custom_imports.imports == ['ailurus_mm.models.det']
        assert cfg.model.backbone.type == 'mmseg.AiluRusViT'
        assert vanilla.model.backbone.type == 'mmseg.VisionTransformer'
        assert cfg.model.neck.type == 'mmseg.TokenRecover'
        assert cfg.model.neck.neck == vanilla.model.neck
        backbone = vanilla.model.backbone
        assert backbone.out_indices == (backbone.num_layers - 1, )
        assert vanilla.model.neck.in_channels == backbone.embed_dims
        # everything but backbone and neck is the vanilla config's
        for key in ('rpn_head', 'roi_head', 'data_preprocessor', 'train_cfg',
                    'test_cfg'):
            assert cfg.model[key] == vanilla.model[key]
        assert cfg.test_dataloader == vanilla.test_dataloader
        assert cfg.val_evaluator.type == 'CocoMetric'
        assert cfg.val_evaluator.metric == ['bbox', 'segm']


def test_real_ailurus_config_takes_vanilla_state_dict():
    """The ViT-B/16 Mask R-CNN at full size: AiluRus and vanilla have the
    same parameter names and shapes, so --no-finetune loads strictly."""
    from mmengine.config import Config

    from ailurus_mm.checkpoint import state_dict_mismatch

    models = []
    for path in (VANILLA_B, AILURUS_B):
        model_cfg = Config.fromfile(path).model
        model_cfg.backbone.init_cfg = None  # no download
        models.append(build_detector(model_cfg))
    vanilla, ailurus = models
    assert state_dict_mismatch(ailurus, vanilla.state_dict()) == ([], [], [])
    assert len(vanilla.state_dict()) > 200


# ---------------------------------------------------- behaviour of the model


def _predict(model, inputs, samples):
    with torch.no_grad():
        return model(inputs, samples, mode='predict')


def test_nothing_merged_gives_identical_detections(tmp_path, coco_root):
    from ailurus_mm.benchmarks.speed.det_inputs import make_det_batch
    from ailurus_mm.benchmarks.variants import build_variants

    cfg = load_tiny(tmp_path, AILURUS_B, coco_root, cluster_layer=0,
                    num_clusters=0.5)
    models = build_variants(cfg, names=('vanilla', 'nothing_merged'))
    inputs, samples = make_det_batch(cfg, models['vanilla'], (128, 96), 2,
                                     torch.device('cpu'))
    expected = _predict(models['vanilla'], inputs, samples)
    actual = _predict(models['nothing_merged'], inputs, samples)
    assert len(expected) == len(actual) == 2
    for ref, out in zip(expected, actual):
        ref, out = ref.pred_instances, out.pred_instances
        assert len(ref) == 20
        for key in ('bboxes', 'scores', 'labels', 'masks'):
            assert torch.equal(out[key], ref[key]), key


@pytest.mark.parametrize('cluster_layer,num_clusters,kept', [(0, 0.5, 32),
                                                             (1, 20, 20)])
def test_later_layers_see_fewer_tokens_in_the_detector(
        tmp_path, coco_root, cluster_layer, num_clusters, kept):
    from ailurus_mm.benchmarks.speed.det_inputs import make_det_batch

    cfg = load_tiny(tmp_path, AILURUS_B, coco_root,
                    cluster_layer=cluster_layer, num_clusters=num_clusters)
    model = build_detector(cfg.model).eval()
    inputs, samples = make_det_batch(cfg, model, (128, 128), 2,
                                     torch.device('cpu'))
    seen = []
    hooks = [
        layer.register_forward_hook(
            lambda module, args, out: seen.append(tuple(args[0].shape)))
        for layer in model.backbone.layers
    ]
    try:
        results = _predict(model, inputs, samples)
    finally:
        for hook in hooks:
            hook.remove()
    # 8 x 8 patch tokens + the cls token
    assert seen == [(2, 65, 32)] * (cluster_layer + 1) + [
        (2, kept + 1, 32)] * (2 - cluster_layer)
    for result in results:
        boxes = result.pred_instances.bboxes
        assert len(boxes) == 20 and torch.isfinite(boxes).all()
        assert (boxes >= 0).all() and (boxes <= 128).all()


def test_training_step_with_clustering(tmp_path, coco_root):
    from ailurus_mm.benchmarks.speed.det_inputs import make_det_batch

    cfg = load_tiny(tmp_path, AILURUS_B, coco_root, cluster_layer=0,
                    num_clusters=0.5)
    model = build_detector(cfg.model)
    model.init_weights()
    inputs, samples = make_det_batch(cfg, model, (128, 128), 2,
                                     torch.device('cpu'))
    model.train()
    losses = model(inputs, samples, mode='loss')
    assert {'loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox',
            'loss_mask'} <= set(losses)
    loss, _ = model.parse_losses(losses)
    loss.backward()
    no_grad = [name for name, p in model.backbone.named_parameters()
               if p.grad is None or not p.grad.abs().sum() > 0]
    assert no_grad == []


# ----------------------------------------------------- tools, end to end


@pytest.fixture(scope='module')
def vanilla_run(tmp_path_factory, coco_root):
    """tools/train.py on the tiny vanilla twin: one epoch (2 iterations),
    then validation with CocoMetric."""
    tmp = tmp_path_factory.mktemp('det_vanilla')
    cfg = write_tiny_det_config(str(tmp / 'vanilla.py'), VANILLA_B,
                                coco_root)
    out = run_tool('train', [cfg, '--work-dir', str(tmp / 'work')],
                   cwd=str(tmp))
    return cfg, str(tmp / 'work' / 'epoch_1.pth'), out


def coco_metrics(output: str):
    return [line for line in output.splitlines()
            if 'coco/bbox_mAP:' in line and 'coco/segm_mAP:' in line]


@pytest.mark.slow
def test_train_evaluates_with_coco_metric(vanilla_run):
    _, checkpoint, out = vanilla_run
    assert osp.isfile(checkpoint)
    assert 'Epoch(train) [1][2/2]' in out
    assert 'loss_mask' in out
    assert len(coco_metrics(out)) == 1


def _load_results(path):
    with open(path, 'rb') as f:
        return pickle.load(f)


@pytest.mark.slow
def test_no_finetune_nothing_merged_matches_vanilla_detections(
        tmp_path, coco_root, vanilla_run, capfd):
    vanilla_cfg, checkpoint, _ = vanilla_run
    run_tool_here('test', [vanilla_cfg, checkpoint, '--out',
                           tmp_path / 'vanilla.pkl', '--work-dir',
                           tmp_path / 'v'], capfd)
    cfg = write_tiny_det_config(str(tmp_path / 'kept.py'), AILURUS_B,
                                coco_root,
                                backbone=dict(cluster_layer=0,
                                              num_clusters=1.0))
    out = run_tool_here('test', [cfg, checkpoint, '--no-finetune', '--out',
                                 tmp_path / 'ailurus.pkl', '--work-dir',
                                 tmp_path / 'a'], capfd)
    assert '--no-finetune: evaluating the vanilla checkpoint' in out
    assert f'{checkpoint} fits the model strictly' in out
    assert len(coco_metrics(out)) == 1
    expected = _load_results(tmp_path / 'vanilla.pkl')
    actual = _load_results(tmp_path / 'ailurus.pkl')
    assert len(actual) == len(expected) == 2  # the validation images
    for ref, res in zip(expected, actual):
        assert res['img_id'] == ref['img_id']
        ref, res = ref['pred_instances'], res['pred_instances']
        assert len(ref['bboxes']) == 20
        for key in ('bboxes', 'scores', 'labels'):
            assert torch.equal(res[key], ref[key]), key
        assert res['masks'] == ref['masks']


@pytest.mark.slow
def test_finetune_with_clustering_from_vanilla_checkpoint(
        tmp_path, coco_root, vanilla_run, capfd):
    _, vanilla_checkpoint, _ = vanilla_run
    cfg = write_tiny_det_config(
        str(tmp_path / 'ailurus.py'), AILURUS_B, coco_root,
        backbone=dict(cluster_layer=0, num_clusters=0.5))
    out = run_tool_here('train', [cfg, '--work-dir', tmp_path / 'work',
                                  '--cfg-options',
                                  f'load_from={vanilla_checkpoint}'], capfd)
    assert 'Epoch(train) [1][2/2]' in out
    assert len(coco_metrics(out)) == 1
    checkpoint = tmp_path / 'work' / 'epoch_1.pth'

    out = run_tool_here('test', [cfg, checkpoint, '--work-dir',
                                 tmp_path / 'test', '--show-dir', 'painted'],
                        capfd)
    assert len(coco_metrics(out)) == 1
    assert 'was not trained with AiluRusViT' not in out
    painted = glob.glob(str(tmp_path / 'test' / '*' / 'painted' / '*.jpg'))
    assert len(painted) == 2


def test_detection_out_must_be_pkl(tmp_path, coco_root):
    """--out is mmdet's test.py flag; our tool refuses anything but a .pkl
    in one line before mmdet builds the Runner."""
    from ailurus_mm.launch import run

    cfg = write_tiny_det_config(str(tmp_path / 'c.py'), AILURUS_B, coco_root)
    with pytest.raises(SystemExit) as exit_info:
        run('test', [cfg, 'unused.pth', '--out',
                     str(tmp_path / 'results.json')])
    assert str(exit_info.value.code).startswith(
        'test.py: error: --out must be a .pkl file for detection')


# ---------------------------------------------------------------- benchmark


def test_benchmark_reports_backbone_neck_heads_and_whole(tmp_path,
                                                         coco_root, capsys):
    from ailurus_mm.benchmarks.cli import benchmark_main

    cfg = write_tiny_det_config(
        str(tmp_path / 'bench.py'), AILURUS_B, coco_root,
        backbone=dict(cluster_layer=0, num_clusters=0.5))
    report = benchmark_main([cfg, '--warmup', '0', '--runs', '1',
                             '--no-memory', '--threads', '1',
                             '--out', str(tmp_path / 'report.json')])
    report = dataclasses.asdict(report)
    settings, results = report['settings'], report['results']
    assert settings['shape'] == [128, 128]  # the tiny config's img_size
    assert settings['patch_tokens'] == 64 and settings['kept_tokens'] == 32
    for entry in results.values():
        assert list(entry['stages']) == (
            ['backbone', 'pyramid', 'rpn', 'roi_heads']
            if entry['description'].startswith('mmseg') else
            ['backbone', 'recover', 'pyramid', 'rpn', 'roi_heads'])
    assert results['ailurus']['tokens_per_layer'] == [65, 33, 33]
    assert results['vanilla']['tokens_per_layer'] == [65, 65, 65]
    assert results['ailurus']['flops'] < results['vanilla']['flops']
    # AiluRusViT with nothing merged computes what VisionTransformer does
    assert results['nothing_merged']['flops'] == results['vanilla']['flops']
    assert results['ideal']['flops'] < results['vanilla']['flops']
    # the table shows the summary's backbone, pyramid and heads speed-ups
    summary = report['summary']
    table = capsys.readouterr().out  # what the tool printed
    speedups = summary['stage_speedups']['ailurus']
    assert (f"{speedups['backbone']:.2f}x, "
            in table.split('ailurus vs vanilla: ')[1])
    assert f"{speedups['roi_heads']:.2f}x" in table
    # the bound is its definition on the measured times (not a timing
    # claim: with one run on a busy machine it can even fall below 1)
    vanilla = results['vanilla']
    after = sum(t['min'] for part, t in vanilla['stages'].items()
                if part != 'backbone')
    assert summary['after_backbone_bound'] == pytest.approx(
        vanilla['seconds']['min'] / after)
    assert osp.isfile(tmp_path / 'report.json')


def test_benchmark_of_ailurus_alone_still_splits_the_detector(tmp_path,
                                                              coco_root):
    from ailurus_mm.benchmarks.speed.report import format_table
    from ailurus_mm.benchmarks.speed.run import BenchmarkSpec, run_benchmark

    cfg = load_tiny(tmp_path, AILURUS_B, coco_root, cluster_layer=0,
                    num_clusters=0.5)
    report = run_benchmark(cfg, BenchmarkSpec(
        warmup=0, runs=1, flops=False, memory=False, variants=('ailurus', )))
    assert list(report.results) == ['ailurus']
    assert list(report.results['ailurus'].stages) == [
        'backbone', 'recover', 'pyramid', 'rpn', 'roi_heads']
    table = format_table(report)
    assert 'roi heads' in table
    assert 'vs vanilla' not in table  # needs the vanilla model
