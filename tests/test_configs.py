"""Every config under configs/ parses and builds; the Segmenter zoo follows
its naming scheme, its vanilla twins and configs/README.md."""
import ast
import glob
import os.path as osp
import re

import pytest
import torch

from ailurus_mm.benchmarks.common.train import (FT_LR_FACTOR,
                                                FT_SCHEDULE_FRACTION)
from ailurus_mm.ops import ClusterConfig
from conftest import CONFIGS

pytestmark = pytest.mark.usefixtures('fast_config_parsing')

ALL_CONFIGS = sorted(
    osp.relpath(path, CONFIGS)
    for path in glob.glob(osp.join(CONFIGS, '**', '*.py'), recursive=True))
ZOO = sorted(path for path in ALL_CONFIGS if path.startswith('segmenter/'))
AILURUS = [path for path in ZOO if osp.basename(path).startswith('ailurus')]
NO_FT = [path for path in ZOO if osp.basename(path).startswith('ailurus_')]
FT = [path for path in ZOO if osp.basename(path).startswith('ailurus-ft_')]
VANILLA = [path for path in ZOO if osp.basename(path).startswith('segmenter')]

# {prefix}_segmenter_vit-{size}_{head}_8xb{batch}-{iters}k_{dataset}-{crop}
NAME = re.compile(r'^(?P<algo>ailurus|ailurus-ft|segmenter)'
                  r'(?:_segmenter)?_vit-(?P<size>[tsbl])_(?P<head>mask|fcn)'
                  r'_8xb(?P<batch>\d)-(?P<iters>\d+)k_(?P<dataset>ade20k|'
                  r'cityscapes|pascal-context|pascal-context-59)-'
                  r'(?P<crop>\d+)x(?P=crop)\.py$')
BACKBONES = {  # embed_dims, num_layers, num_heads
    't': (192, 12, 3),
    's': (384, 12, 6),
    'b': (768, 12, 12),
    'l': (1024, 24, 16)
}
DATASETS = {
    'ade20k': dict(type='ADE20KDataset', classes=150, lr=0.001,
                   stride={512: 480, 640: 608}, iters=160),
    'cityscapes': dict(type='CityscapesDataset', classes=19, lr=0.01,
                       stride={768: 512}, iters=80),
    'pascal-context': dict(type='PascalContextDataset', classes=60,
                           lr=0.001, stride={480: 320}, iters=80),
    'pascal-context-59': dict(type='PascalContextDataset59', classes=59,
                              lr=0.001, stride={480: 320}, iters=80),
}
CAMVID = sorted(path for path in ALL_CONFIGS if path.startswith('camvid/'))
KNOBS = ClusterConfig.names()


def knob_defaults() -> dict:
    """``AiluRusViT``'s defaults (``ClusterConfig``'s): the single source of
    every Segmenter config's cluster settings, fine-tuning ones included."""
    return ClusterConfig.defaults()


def effective_knobs(backbone) -> dict:
    """Cluster settings of a config's backbone, defaults filled in."""
    return ClusterConfig.from_mapping(backbone).to_dict()


def mmseg_configs() -> str:
    import mmseg
    return osp.join(osp.dirname(mmseg.__file__), '.mim', 'configs')


_parsed = {}


def load(path: str):
    """``Config.fromfile`` of a path under configs/ or an ``mmseg::``
    name, cached (configs are not modified by the tests)."""
    from mmengine.config import Config

    if path.startswith('mmseg::'):
        full = osp.join(mmseg_configs(), path[len('mmseg::'):])
    else:
        full = osp.join(CONFIGS, path)
    if full not in _parsed:
        _parsed[full] = Config.fromfile(full)
    return _parsed[full]


def sole_base(path: str) -> str:
    """The single ``_base_`` of a config file, as a path under configs/ or
    an ``mmseg::`` name."""
    with open(osp.join(CONFIGS, path)) as f:
        tree = ast.parse(f.read())
    bases = [
        ast.literal_eval(node.value) for node in tree.body
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == '_base_'
            for t in node.targets)
    ]
    assert len(bases) == 1, f'{path}: expected one _base_ assignment'
    base = bases[0]
    assert isinstance(base, list) and len(base) == 1, \
        f'{path}: an AiluRus config has exactly one _base_, its twin'
    base = base[0]
    if base.startswith('mmseg::'):
        return base
    return osp.normpath(osp.join(osp.dirname(path), base))


def plain(value):
    """Config values as plain dicts/lists, without mmengine's ``_scope_``
    tags (they depend on how a base was reached, not on the setting)."""
    if hasattr(value, 'to_dict'):
        value = value.to_dict()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items() if k != '_scope_'}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def test_configs_found():
    # Zero configs found must fail, not pass vacuously.
    assert 'segmenter_vitl_ailurus.py' in ALL_CONFIGS
    # 4 datasets x 5 models x {no-ft, ft}
    assert len(AILURUS) == 40
    assert len(NO_FT) == len(FT) == 20
    # mmseg ships the ADE20K ones; 3 datasets x 5 models are here
    assert len(VANILLA) == 15


@pytest.mark.parametrize('path', ALL_CONFIGS)
def test_config_parses(path):
    cfg = load(path)
    if path.startswith('_base_/datasets/'):  # a dataset base, no model
        assert cfg.train_dataloader.dataset.type
    else:
        assert cfg.model.type


@pytest.mark.parametrize('path', ZOO)
def test_zoo_name_matches_settings(path):
    match = NAME.match(osp.basename(path))
    assert match, f'{path} does not follow the naming scheme'
    algo, size, head, dataset = (match['algo'], match['size'], match['head'],
                                 match['dataset'])
    crop, batch, iters = int(match['crop']), int(match['batch']), int(
        match['iters'])
    spec = DATASETS[dataset]
    dims, layers, heads = BACKBONES[size]
    cfg = load(path)
    model = cfg.model

    assert model.backbone.type == ('VisionTransformer' if algo == 'segmenter'
                                   else 'AiluRusViT')
    assert (model.backbone.embed_dims, model.backbone.num_layers,
            model.backbone.num_heads) == (dims, layers, heads)
    assert model.backbone.patch_size == 16
    assert tuple(model.backbone.img_size) == (crop, crop)
    assert tuple(model.data_preprocessor.size) == (crop, crop)
    assert model.decode_head.num_classes == spec['classes']
    assert model.decode_head.in_channels == dims
    assert model.decode_head.channels == dims
    if head == 'mask':
        assert model.decode_head.type == 'SegmenterMaskTransformerHead'
        assert (model.decode_head.embed_dims,
                model.decode_head.num_heads) == (dims, heads)
        assert model.decode_head.num_layers == 2
    else:
        assert model.decode_head.type == 'FCNHead'
        assert model.decode_head.num_convs == 0
    assert model.test_cfg.mode == 'slide'
    assert tuple(model.test_cfg.crop_size) == (crop, crop)
    stride = spec['stride'][crop]
    assert tuple(model.test_cfg.stride) == (stride, stride)

    assert cfg.train_dataloader.dataset.type == spec['type']
    assert cfg.test_dataloader.dataset.type == spec['type']
    random_crop = [t for t in cfg.train_dataloader.dataset.pipeline
                   if t.type == 'RandomCrop']
    assert len(random_crop) == 1
    assert tuple(random_crop[0].crop_size) == (crop, crop)
    assert cfg.train_dataloader.batch_size == batch
    assert cfg.train_cfg.max_iters == iters * 1000
    assert cfg.param_scheduler[0].end == iters * 1000

    if algo == 'ailurus-ft':
        # the recipe the accuracy benchmark's fine-tuning study runs
        assert iters == spec['iters'] * FT_SCHEDULE_FRACTION
        assert cfg.optim_wrapper.optimizer.lr == pytest.approx(
            spec['lr'] * FT_LR_FACTOR)
        assert model.pretrained is None
        assert cfg.default_hooks.checkpoint.interval == \
            cfg.train_cfg.val_interval
    else:
        assert iters == spec['iters']
        assert cfg.optim_wrapper.optimizer.lr == pytest.approx(spec['lr'])
        assert model.pretrained is not None  # ImageNet init, as mmseg's

    if algo != 'segmenter':
        assert effective_knobs(model.backbone) == knob_defaults()
        assert model.neck.type == 'TokenRecover'
        assert cfg.custom_imports == dict(
            imports=['ailurus_mm.models'], allow_failed_imports=False)


def vanilla_twin(path: str) -> str:
    """The vanilla config an AiluRus config's model starts from: the
    ``_base_`` of a no-fine-tuning config, the ``_base_`` of the ``_base_``
    of a fine-tuning one."""
    base = sole_base(path)
    if osp.basename(path).startswith('ailurus-ft_'):
        base = sole_base(base)
    return base


def no_ft_twin_name(name: str) -> str:
    """``ailurus-ft_..._8xb1-40k_...`` -> ``ailurus_..._8xb1-160k_...``."""
    match = NAME.match(name)
    iters = int(match['iters'])
    return name.replace('ailurus-ft_', 'ailurus_', 1).replace(
        f'-{iters}k_', f'-{round(iters / FT_SCHEDULE_FRACTION)}k_', 1)


def config_body(path: str) -> dict:
    """Top-level assignments of a config file, ``{name: ast node}``."""
    with open(osp.join(CONFIGS, path)) as f:
        tree = ast.parse(f.read())
    body = {}
    for node in tree.body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1 and \
            isinstance(node.targets[0], ast.Name), \
            f'{path}: only plain assignments expected, got {ast.dump(node)}'
        body[node.targets[0].id] = node.value
    return body


def literal(node: ast.AST):
    """The value of a config literal, ``dict(key=value)`` calls included."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
            node.func.id == 'dict' and not node.args:
        return {kw.arg: literal(kw.value) for kw in node.keywords}
    if isinstance(node, ast.List):
        return [literal(item) for item in node.elts]
    return ast.literal_eval(node)


@pytest.mark.parametrize('path', NO_FT)
def test_no_ft_config_differs_from_its_vanilla_twin_only_by_ailurus(path):
    twin_path = sole_base(path)
    name = osp.basename(path)
    twin_name = osp.basename(twin_path)
    expected = name[len('ailurus_'):].replace(
        'vit-l_mask_8xb1-160k_ade20k-640x640',
        'vit-l_mask_8xb1-160k_ade20k-512x512')  # mmseg's name
    assert twin_name == expected
    cfg, twin = load(path), load(twin_path)

    model, twin_model = plain(cfg.model), plain(twin.model)
    assert twin_model.pop('type') == 'EncoderDecoder'
    assert model.pop('type') == 'AiluRusEncoderDecoder'
    assert model.pop('merged_decode') is True
    assert twin_model['backbone'].pop('type') == 'VisionTransformer'
    assert model['backbone'].pop('type') == 'AiluRusViT'
    # The cluster settings are AiluRusViT's defaults, not restated.
    assert not set(KNOBS) & set(model['backbone'])
    assert model.pop('neck') == {'type': 'TokenRecover'}
    assert 'neck' not in twin_model
    assert model == twin_model

    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader',
                'val_evaluator', 'test_evaluator', 'default_scope',
                'tta_model', 'optim_wrapper', 'param_scheduler', 'train_cfg',
                'default_hooks'):
        assert plain(cfg[key]) == plain(twin[key]), key
    assert cfg.load_from is None
    assert cfg.custom_imports == dict(
        imports=['ailurus_mm.models'], allow_failed_imports=False)
    assert cfg.custom_hooks == [dict(type='ailurus_mm.StrictLoadHook')]
    assert twin.get('custom_hooks', []) == []


@pytest.mark.parametrize('path', FT)
def test_ft_config_differs_from_its_no_ft_twin_only_by_fine_tuning(path):
    base_path = sole_base(path)
    assert osp.basename(base_path) == no_ft_twin_name(osp.basename(path))
    assert base_path in NO_FT
    cfg, base = load(path), load(base_path)

    model, base_model = plain(cfg.model), plain(base.model)
    assert model.pop('pretrained') is None
    assert base_model.pop('pretrained') is not None  # ImageNet, as mmseg
    assert model == base_model

    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader',
                'val_evaluator', 'test_evaluator', 'default_scope',
                'tta_model', 'custom_imports'):
        assert plain(cfg[key]) == plain(base[key]), key
    twin_name = osp.basename(vanilla_twin(path))
    assert cfg.load_from == f'checkpoints/{twin_name[:-3]}.pth'

    optimizer, base_optimizer = plain(cfg.optim_wrapper), plain(
        base.optim_wrapper)
    assert optimizer['optimizer'].pop('lr') == pytest.approx(
        base_optimizer['optimizer'].pop('lr') * FT_LR_FACTOR)
    assert optimizer == base_optimizer
    iters = cfg.train_cfg.max_iters
    train_cfg, base_train_cfg = plain(cfg.train_cfg), plain(base.train_cfg)
    assert base_train_cfg.pop('max_iters') * FT_SCHEDULE_FRACTION == iters
    assert train_cfg.pop('max_iters') == iters
    assert train_cfg.pop('val_interval') * 8 == iters
    base_train_cfg.pop('val_interval')
    assert train_cfg == base_train_cfg
    hooks, base_hooks = plain(cfg.default_hooks), plain(base.default_hooks)
    assert hooks['checkpoint'].pop('interval') == cfg.train_cfg.val_interval
    base_hooks['checkpoint'].pop('interval')
    assert hooks == base_hooks
    assert plain(cfg.param_scheduler) == [
        dict(type='PolyLR', eta_min=1e-6, power=0.9, begin=0, end=iters,
             by_epoch=False)
    ]


def test_no_ft_config_bodies_are_uniform():
    """The 20 no-fine-tuning configs differ only in their ``_base_``: one
    edit applies to all of them (and to the fine-tuning configs, which
    inherit them)."""
    bodies = set()
    for path in NO_FT:
        body = config_body(path)
        assert set(body) >= {'_base_', 'custom_imports', 'custom_hooks',
                             'model'}
        body.pop('_base_')
        bodies.add(tuple((key, ast.dump(value))
                         for key, value in sorted(body.items())))
    assert len(NO_FT) == 20 and len(bodies) == 1


@pytest.mark.parametrize('path', FT)
def test_ft_config_sets_only_fine_tuning_changes(path):
    body = config_body(path)
    assert set(body) == {'_base_', 'load_from', 'model', 'optim_wrapper',
                         'param_scheduler', 'train_cfg', 'default_hooks'}
    assert literal(body['model']) == dict(pretrained=None)


@pytest.mark.parametrize('path', AILURUS + [
    p for p in CAMVID if osp.basename(p).startswith('ailurus')])
def test_default_knob_values_are_not_restated(path):
    defaults = knob_defaults()
    restated = [
        (knob, value) for knob, value in plain(
            load(path).model.backbone).items()
        if knob in defaults and value == defaults[knob]
    ]
    assert restated == []


def readme_rows():
    with open(osp.join(CONFIGS, 'README.md')) as f:
        lines = f.read().splitlines()
    rows = {}
    for line in lines:
        cells = [c.strip() for c in line.strip().strip('|').split('|')]
        if line.startswith('| ailurus') or line.startswith('| segmenter_'):
            assert cells[0] not in rows, f'{cells[0]} listed twice'
            rows[cells[0]] = cells
    return rows


def test_readme_lists_every_zoo_config_once():
    rows = readme_rows()
    assert len(rows) == len(ZOO) == 55
    assert sorted(rows) == sorted(osp.basename(p)[:-3] for p in ZOO)


@pytest.mark.parametrize('path', AILURUS)
def test_readme_row_matches_config(path):
    from ailurus_mm.ops import resolve_num_clusters

    row = readme_rows()[osp.basename(path)[:-3]]
    (_, twin, dataset, backbone, head, crop, stride, setting, cluster_layer,
     num_clusters, schedule) = row
    cfg = load(path)
    model = cfg.model
    base = vanilla_twin(path)[:-3]
    assert twin == (base if base.startswith('mmseg::') else
                    osp.basename(base))
    assert dataset.endswith(f'({model.decode_head.num_classes})')
    assert backbone == {192: 'ViT-T/16', 384: 'ViT-S/16', 768: 'ViT-B/16',
                        1024: 'ViT-L/16'}[model.backbone.embed_dims]
    assert head == ('mask' if model.decode_head.type ==
                    'SegmenterMaskTransformerHead' else 'linear')
    assert int(crop) == model.test_cfg.crop_size[0]
    assert int(stride) == model.test_cfg.stride[0]
    assert setting == ('ft' if cfg.load_from else 'no-ft')
    knobs = effective_knobs(model.backbone)
    assert int(cluster_layer) == knobs['cluster_layer']
    tokens = (int(crop) // 16)**2
    kept = resolve_num_clusters(knobs['num_clusters'], tokens)
    assert num_clusters == f"{knobs['num_clusters']} ({kept} of {tokens})"
    if cfg.load_from:
        assert schedule == (f'{cfg.train_cfg.max_iters // 1000}k, lr '
                            f'{cfg.optim_wrapper.optimizer.lr:.0e}'.replace(
                                'e-0', 'e-'))
    else:
        assert schedule == f'(vanilla {cfg.train_cfg.max_iters // 1000}k)'


TINY = dict(img_size=(64, 64), embed_dims=32, num_layers=3, num_heads=2,
            drop_path_rate=0.0)


def build(model_cfg):
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    import ailurus_mm.models  # noqa: F401

    init_default_scope('mmseg')
    return MODELS.build(model_cfg)


@pytest.mark.parametrize('path', ZOO)
def test_model_builds_small(path):
    """The real config's model, shrunk (3 layers, 32 channels), builds
    without ImageNet weights and runs a forward pass. (The design card is
    built at full size below; detection configs are only parsed here.)"""
    cfg = load(path)
    model_cfg = cfg.model.copy()
    model_cfg.pretrained = None
    model_cfg.backbone.update(TINY)
    head = model_cfg.decode_head
    head.update(in_channels=32, channels=32)
    if head.type == 'SegmenterMaskTransformerHead':
        head.update(embed_dims=32, num_heads=2, num_layers=1)
    model = build(model_cfg).eval()
    assert model.backbone.init_cfg is None  # nothing to download
    is_ailurus = model_cfg.backbone.type == 'AiluRusViT'
    assert type(model.backbone).__name__ == model_cfg.backbone.type
    assert model.with_neck == is_ailurus
    if is_ailurus:  # the defaults, or what the config sets
        assert model.backbone.clustering == ClusterConfig()
    with torch.no_grad():
        logits = model(torch.rand(2, 3, 64, 64), mode='tensor')
    assert logits.shape == (2, head.num_classes, 4, 4)
    assert torch.isfinite(logits).all()


def vit_params(dims: int, layers: int, tokens: int) -> int:
    """Parameters of mmseg's ViT/16 with a cls token and a final norm (the
    patch embedding has no bias in mmseg, ``patch_bias=False``)."""
    patch_embed = 3 * 16 * 16 * dims
    layer = (4 * dims  # ln1, ln2
             + 3 * dims * dims + 3 * dims  # qkv
             + dims * dims + dims  # attention output
             + 2 * 4 * dims * dims + 4 * dims + dims)  # mlp
    return patch_embed + dims + (tokens + 1) * dims + layers * layer + 2 * dims


def test_vitl_design_card_builds_full_size():
    cfg = load('segmenter_vitl_ailurus.py')
    model_cfg = cfg.model.copy()
    model_cfg.pretrained = None
    model = build(model_cfg).eval()
    backbone = model.backbone
    assert type(backbone).__name__ == 'AiluRusViT'
    assert backbone.clustering == ClusterConfig()
    assert len(backbone.layers) == 24
    assert backbone.pos_embed.shape == (1, 40 * 40 + 1, 1024)
    assert sum(p.numel() for p in backbone.parameters()) == vit_params(
        1024, 24, 40 * 40)
    assert model.decode_head.cls_emb.shape == (1, 150, 1024)
    with torch.no_grad():  # a small input keeps this fast
        logits = model(torch.rand(1, 3, 64, 64), mode='tensor')
    assert logits.shape == (1, 150, 4, 4)


# ------------------------------------------------------------------- CamVid
CAMVID_VANILLA = 'camvid/segmenter_vit-t_mask_1xb8-8k_camvid-256x256.py'
CAMVID_NO_FT = 'camvid/ailurus_segmenter_vit-t_mask_1xb8-8k_camvid-256x256.py'
CAMVID_FT = ('camvid/ailurus-ft_segmenter_vit-t_mask_1xb8-2000_camvid-'
             '256x256.py')


def test_camvid_configs_found():
    assert CAMVID == sorted([CAMVID_VANILLA, CAMVID_NO_FT, CAMVID_FT])


def test_camvid_vanilla_is_mmsegs_segmenter_on_camvid():
    from ailurus_mm.benchmarks.accuracy.data import CAMVID as DATASET

    cfg = load(CAMVID_VANILLA)
    assert DATASET.config == CAMVID_VANILLA
    assert DATASET.checkpoint == osp.basename(CAMVID_VANILLA)[:-3] + '.pth'
    model = cfg.model
    assert (model.type, model.backbone.type, model.decode_head.type) == (
        'EncoderDecoder', 'VisionTransformer', 'SegmenterMaskTransformerHead')
    assert (model.backbone.embed_dims, model.backbone.num_layers,
            model.backbone.num_heads) == BACKBONES['t']
    assert model.decode_head.num_classes == 11
    assert model.pretrained is None and model.backbone.init_cfg is None
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cfg[loader].dataset.type == 'CamVidDataset', loader
    assert cfg.train_dataloader.dataset.data_prefix.img_path == \
        'images/train'
    assert cfg.test_dataloader.dataset.data_prefix.img_path == 'images/val'
    resize = [t for t in cfg.test_dataloader.dataset.pipeline
              if t.type == 'Resize']
    assert [tuple(t.scale) for t in resize] == [(480, 360)]
    assert 'ailurus_mm.datasets' in cfg.custom_imports.imports
    # the 10k schedule's linear decay, stopped at 8k
    assert cfg.train_cfg.max_iters == 8000
    assert cfg.param_scheduler[-1].end == 10000


def test_camvid_no_ft_differs_from_its_vanilla_twin_only_by_ailurus():
    cfg, twin = load(CAMVID_NO_FT), load(CAMVID_VANILLA)
    assert sole_base(CAMVID_NO_FT) == CAMVID_VANILLA
    model, twin_model = plain(cfg.model), plain(twin.model)
    assert (model.pop('type'), twin_model.pop('type')) == (
        'AiluRusEncoderDecoder', 'EncoderDecoder')
    assert model.pop('merged_decode') is True
    assert (model['backbone'].pop('type'),
            twin_model['backbone'].pop('type')) == (
                'AiluRusViT', 'VisionTransformer')
    assert model.pop('neck') == {'type': 'TokenRecover'}
    assert model == twin_model
    for key in ('train_dataloader', 'test_dataloader', 'test_evaluator',
                'optim_wrapper', 'param_scheduler', 'train_cfg'):
        assert plain(cfg[key]) == plain(twin[key]), key
    assert cfg.custom_imports.imports == ['ailurus_mm.datasets',
                                          'ailurus_mm.models']
    assert cfg.custom_hooks == [dict(type='ailurus_mm.StrictLoadHook')]


def test_camvid_ft_follows_the_recipe():
    cfg, base = load(CAMVID_FT), load(CAMVID_NO_FT)
    assert sole_base(CAMVID_FT) == CAMVID_NO_FT
    iters = cfg.train_cfg.max_iters
    assert iters == base.train_cfg.max_iters * FT_SCHEDULE_FRACTION
    assert f'-{iters}_camvid' in CAMVID_FT
    assert cfg.optim_wrapper.optimizer.lr == pytest.approx(
        base.optim_wrapper.optimizer.lr * FT_LR_FACTOR)
    assert cfg.optim_wrapper.type == base.optim_wrapper.type
    assert plain(cfg.param_scheduler) == [
        dict(type='PolyLR', eta_min=1e-6, power=0.9, begin=0, end=iters,
             by_epoch=False)]
    assert cfg.load_from == 'checkpoints/' + osp.basename(
        CAMVID_VANILLA)[:-3] + '.pth'
    assert plain(cfg.model) == dict(plain(base.model), pretrained=None)


@pytest.mark.parametrize('path', CAMVID)
def test_camvid_model_builds_small(path):
    cfg = load(path)
    model_cfg = cfg.model.copy()
    model_cfg.backbone.update(TINY)
    model_cfg.decode_head.update(in_channels=32, channels=32, embed_dims=32,
                                 num_heads=2, num_layers=1)
    model = build(model_cfg).eval()
    with torch.no_grad():
        logits = model(torch.rand(1, 3, 64, 96), mode='tensor')
    assert logits.shape == (1, 11, 4, 6)


# ------------------------------------------------------- Stanford Background
SBG = sorted(path for path in ALL_CONFIGS if path.startswith('stanford_bg/'))
SBG_VANILLA = ('stanford_bg/segmenter_vit-t_mask_1xb8-10k_stanford-bg-'
               '256x256.py')
SBG_NO_FT = ('stanford_bg/ailurus_segmenter_vit-t_mask_1xb8-10k_stanford-bg-'
             '256x256.py')


def test_stanford_bg_configs_found():
    assert SBG == sorted([SBG_VANILLA, SBG_NO_FT])


def test_stanford_bg_vanilla_is_mmsegs_segmenter_on_it():
    from ailurus_mm.benchmarks.accuracy.data import STANFORD_BG

    cfg = load(SBG_VANILLA)
    assert STANFORD_BG.config == SBG_VANILLA
    assert STANFORD_BG.checkpoint == osp.basename(SBG_VANILLA)[:-3] + '.pth'
    model = cfg.model
    assert (model.type, model.backbone.type, model.decode_head.type) == (
        'EncoderDecoder', 'VisionTransformer', 'SegmenterMaskTransformerHead')
    assert (model.backbone.embed_dims, model.backbone.num_layers,
            model.backbone.num_heads) == BACKBONES['t']
    assert model.decode_head.num_classes == 8
    assert len(model.decode_head.loss_decode.class_weight) == 8
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cfg[loader].dataset.type == 'StanfordBackgroundDataset'
    resize = [t for t in cfg.test_dataloader.dataset.pipeline
              if t.type == 'Resize']
    assert [tuple(t.scale) for t in resize] == [(320, 240)]
    assert cfg.train_cfg.max_iters == cfg.param_scheduler[-1].end == 10000
    assert '-10k_' in SBG_VANILLA


def test_stanford_bg_no_ft_differs_from_its_vanilla_twin_only_by_ailurus():
    cfg, twin = load(SBG_NO_FT), load(SBG_VANILLA)
    assert sole_base(SBG_NO_FT) == SBG_VANILLA
    model, twin_model = plain(cfg.model), plain(twin.model)
    assert (model.pop('type'), twin_model.pop('type')) == (
        'AiluRusEncoderDecoder', 'EncoderDecoder')
    assert model.pop('merged_decode') is True
    assert (model['backbone'].pop('type'),
            twin_model['backbone'].pop('type')) == (
                'AiluRusViT', 'VisionTransformer')
    assert model.pop('neck') == {'type': 'TokenRecover'}
    assert model == twin_model
    assert cfg.custom_hooks == [dict(type='ailurus_mm.StrictLoadHook')]


@pytest.mark.parametrize('path', SBG)
def test_stanford_bg_model_builds_small(path):
    cfg = load(path)
    model_cfg = cfg.model.copy()
    model_cfg.backbone.update(TINY)
    model_cfg.decode_head.update(in_channels=32, channels=32, embed_dims=32,
                                 num_heads=2, num_layers=1)
    model = build(model_cfg).eval()
    with torch.no_grad():
        logits = model(torch.rand(1, 3, 64, 96), mode='tensor')
    assert logits.shape == (1, 8, 4, 6)
