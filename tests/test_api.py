"""ailurus_mm.apply, to_ailurus_config and to_vanilla_config on real mmseg
and mmdet models and configs: equal to building the AiluRus config
directly; a refused call changes nothing."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config

import ailurus_mm
from ailurus_mm.ops import ClusterConfig
from conftest import CONFIGS, REPO, write_tiny_config

pytestmark = pytest.mark.usefixtures('fast_config_parsing')

VANILLA_B = 'mmseg::segmenter/segmenter_vit-b_mask_8xb1-160k_ade20k-512x512.py'
AILURUS_B = osp.join(
    CONFIGS, 'segmenter',
    'ailurus_segmenter_vit-b_mask_8xb1-160k_ade20k-512x512.py')
DET_VANILLA = osp.join(
    CONFIGS, 'mask_rcnn',
    'mask-rcnn_vit-b_simplefpn_8xb2-lsj-1x_coco-1024x1024.py')
DET_AILURUS = osp.join(CONFIGS, 'mask_rcnn',
                       'ailurus_' + osp.basename(DET_VANILLA))
KNOBS = dict(cluster_layer=0, num_clusters=0.5)


def _mm_config(tmp_path, name):
    """``Config.fromfile`` of an ``mmseg::``/``mmdet::`` config."""
    path = tmp_path / 'from_package.py'
    path.write_text(f'_base_ = [{name!r}]\n')
    return Config.fromfile(str(path))


def _defaults():
    return ClusterConfig.defaults()


# One valid non-default value of every knob, each alone. The test below
# asserts that this covers every field of ClusterConfig: a new knob must be
# added here, and then every conversion is checked for it.
KNOB_EXAMPLES = dict(cluster_layer=0, num_clusters=0.5, k=3,
                     spatial_weight=0.5, window=2, prop_attn=False,
                     reducer='tome', recover_detail=True)


@pytest.fixture(scope='module')
def segmenter(tmp_path_factory, ade20k_root):
    """Tiny vanilla and AiluRus configs, a vanilla checkpoint, an image."""
    from mmseg.apis import init_model

    tmp = tmp_path_factory.mktemp('api')
    vanilla = write_tiny_config(str(tmp / 'vanilla.py'), VANILLA_B,
                                ade20k_root)
    ailurus = write_tiny_config(str(tmp / 'ailurus.py'), AILURUS_B,
                                ade20k_root, backbone=KNOBS)
    torch.manual_seed(0)
    model = init_model(vanilla, device='cpu')
    model.init_weights()
    checkpoint = str(tmp / 'vanilla.pth')
    torch.save({'meta': {}, 'state_dict': model.state_dict()}, checkpoint)
    image = osp.join(ade20k_root, 'images', 'validation',
                     'ADE_val_00000001.jpg')
    assert osp.isfile(image)
    return vanilla, ailurus, checkpoint, image


def test_init_model_apply_inference_equals_ailurus_config(segmenter):
    from mmseg.apis import inference_model, init_model

    from ailurus_mm.models import AiluRusOutputs, AiluRusViT, TokenRecover

    vanilla, ailurus, checkpoint, image = segmenter
    model = init_model(vanilla, checkpoint, device='cpu')
    parameters = [id(p) for p in model.parameters()]
    # Our Segmenter configs decode on the merged tokens.
    assert ailurus_mm.apply(model, merged_decode=True, **KNOBS) is model
    # in place: the same parameter objects, nothing added
    assert [id(p) for p in model.parameters()] == parameters
    assert type(model.backbone) is AiluRusViT
    assert isinstance(model.neck, TokenRecover)
    assert model.cfg.model.backbone.type == 'AiluRusViT'

    reference = init_model(ailurus, checkpoint, device='cpu')
    actual = inference_model(model, image)
    expected = inference_model(reference, image)
    assert torch.equal(actual.seg_logits.data, expected.seg_logits.data)
    assert torch.equal(actual.pred_sem_seg.data, expected.pred_sem_seg.data)
    # the tokens were merged: 4x4 patches, half kept
    with torch.no_grad():
        out = model.backbone(torch.randn(1, 3, 64, 64))
    assert isinstance(out, AiluRusOutputs)
    assert out.assignment.sizes.shape == (1, 8)


def test_apply_again_changes_the_knobs(segmenter):
    from mmseg.apis import init_model

    vanilla, _, checkpoint, _ = segmenter
    model = ailurus_mm.apply(init_model(vanilla, checkpoint, device='cpu'))
    assert model.backbone.clustering == ClusterConfig()
    neck = model.neck
    ailurus_mm.apply(model, num_clusters=3, window=2)
    clustering = model.backbone.clustering
    assert (clustering.num_clusters, clustering.window,
            clustering.cluster_layer) == (3, 2, 1)
    assert model.neck is neck  # not wrapped twice
    assert model.cfg.model.backbone.num_clusters == 3


def test_apply_validates_knobs_as_the_constructor(segmenter):
    from mmseg.apis import init_model
    from mmseg.models.backbones import VisionTransformer

    from ailurus_mm.models import AiluRusViT

    vanilla, _, checkpoint, _ = segmenter
    model = init_model(vanilla, checkpoint, device='cpu')
    for knobs in (dict(k=0), dict(cluster_layer=2), dict(num_clusters=1.5),
                  dict(spatial_weight=-1), dict(window=0),
                  dict(prop_attn=1)):
        with pytest.raises(ValueError) as expected:
            AiluRusViT(embed_dims=32, num_layers=3, num_heads=2, **knobs)
        with pytest.raises(ValueError) as actual:
            ailurus_mm.apply(model, **knobs)
        assert str(actual.value) == str(expected.value)
        assert type(model.backbone) is VisionTransformer  # unchanged
        assert not hasattr(model.backbone, 'clustering')
    with pytest.raises(TypeError, match=r"unknown AiluRus knob\(s\) "
                       r"\['num_cluster'\]"):
        ailurus_mm.apply(model, num_cluster=0.5)


def test_merged_decode_equals_the_merged_decode_config(segmenter):
    from mmseg.apis import inference_model, init_model

    vanilla, _, checkpoint, image = segmenter
    model = init_model(vanilla, checkpoint, device='cpu')
    ailurus_mm.apply(model, merged_decode=True, **KNOBS)
    assert type(model).__name__ == 'AiluRusEncoderDecoder'
    assert model.merged_decode is True
    cfg = ailurus_mm.to_ailurus_config(Config.fromfile(vanilla),
                                       merged_decode=True, **KNOBS)
    assert (cfg.model.type, cfg.model.merged_decode) == (
        'AiluRusEncoderDecoder', True)
    reference = init_model(cfg, checkpoint, device='cpu')
    actual = inference_model(model, image)
    expected = inference_model(reference, image)
    assert torch.equal(actual.seg_logits.data, expected.seg_logits.data)
    with pytest.raises(TypeError, match=r"merged_decode=True is for mmseg "
                       r"EncoderDecoder segmentors; model\.type is "
                       r"'MaskRCNN'"):
        ailurus_mm.to_ailurus_config(Config.fromfile(DET_VANILLA),
                                     merged_decode=True)


def test_apply_names_the_backbone_it_cannot_convert():
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    init_default_scope('mmseg')
    model = MODELS.build(dict(
        type='EncoderDecoder',
        backbone=dict(type='ResNetV1c', depth=18),
        decode_head=dict(type='FCNHead', in_channels=512, channels=8,
                         num_convs=1, num_classes=2)))
    with pytest.raises(TypeError,
                       match=r"backbone is mmseg's plain VisionTransformer; "
                       r'EncoderDecoder has backbone '
                       r'mmseg\.models\.backbones\.resnet\.ResNetV1c'):
        ailurus_mm.apply(model)
    with pytest.raises(TypeError, match=r'ResNet has no backbone'):
        ailurus_mm.apply(MODELS.build(dict(type='ResNet', depth=18)))


def test_to_ailurus_config_equals_our_config(tmp_path):
    vanilla = _mm_config(tmp_path, VANILLA_B)
    converted = ailurus_mm.to_ailurus_config(vanilla, merged_decode=True)
    ours = Config.fromfile(AILURUS_B)
    assert vanilla.model.backbone.type == 'VisionTransformer'  # a copy
    backbone, expected = converted.model.backbone, ours.model.backbone
    assert backbone.type == expected.type == 'AiluRusViT'
    assert {**_defaults(), **backbone} == {**_defaults(), **expected}
    assert converted.model.neck == ours.model.neck == dict(
        type='TokenRecover')
    for key in set(ours.model) - {'backbone', 'neck'}:
        assert converted.model[key] == ours.model[key], key
    assert 'ailurus_mm.models' in converted.custom_imports.imports
    assert dict(type='ailurus_mm.StrictLoadHook') in converted.custom_hooks


def test_to_ailurus_config_of_a_detector_equals_our_config():
    # The detection configs set the detection benchmark's choice
    # (tests/test_defaults.py ties them to it).
    converted = ailurus_mm.to_ailurus_config(
        Config.fromfile(DET_VANILLA), reducer='dpc_knn', cluster_layer=3,
        num_clusters=0.35, prop_attn=True)
    ours = Config.fromfile(DET_AILURUS)
    assert converted.model.backbone.type == 'mmseg.AiluRusViT'
    assert {**_defaults(), **converted.model.backbone} == \
        {**_defaults(), **ours.model.backbone}
    assert converted.model.neck == ours.model.neck
    assert converted.model.neck.type == 'mmseg.TokenRecover'
    assert converted.custom_imports.imports == ['ailurus_mm.models.det']


def test_to_ailurus_config_refuses_and_validates(tmp_path):
    with pytest.raises(TypeError,
                       match=r"model\.backbone\.type is 'ResNetV1c'"):
        ailurus_mm.to_ailurus_config(_mm_config(
            tmp_path,
            'mmseg::pspnet/pspnet_r50-d8_4xb2-40k_cityscapes-512x1024.py'))
    with pytest.raises(ValueError, match=r'cluster_layer must be an int '
                       r'\[0, 10\]'):
        ailurus_mm.to_ailurus_config(_mm_config(tmp_path, VANILLA_B),
                                     cluster_layer=11)
    with pytest.raises(ValueError, match=r"merged_decode must be True or "
                       r"False, got 'yes'"):
        ailurus_mm.to_ailurus_config(_mm_config(tmp_path, VANILLA_B),
                                     merged_decode='yes')


@pytest.mark.parametrize('cfg, match', [
    (dict(model=None), r"the config's model must be a dict with a "
     r'backbone, got None'),
    (dict(model=dict(type='EncoderDecoder', backbone=None)),
     r'model\.backbone must be a dict with a type, got None'),
    (dict(model=dict(type='EncoderDecoder',
                     backbone=dict(type='VisionTransformer'),
                     neck='TokenRecover')),
     r"model\.neck must be a dict, a list of dicts or None, got "
     r"'TokenRecover'"),
    (dict(train_cfg=dict()), r"needs a config with model\.backbone; it "
     r"has no model \(keys: \['train_cfg'\]\)"),
    ([1, 2], r'takes a config \(mmengine Config or dict\), got list'),
])
def test_conversions_name_what_is_wrong(cfg, match):
    for convert in (ailurus_mm.to_ailurus_config,
                    ailurus_mm.to_vanilla_config):
        with pytest.raises(TypeError, match=match):
            convert(cfg)


def test_a_list_of_necks_is_wrapped_and_restored():
    necks = [dict(type='Feature2Pyramid', embed_dim=32),
             dict(type='MultiLevelNeck', in_channels=[32], out_channels=32)]
    cfg = dict(model=dict(type='EncoderDecoder',
                          backbone=dict(type='VisionTransformer'),
                          neck=necks))
    converted = ailurus_mm.to_ailurus_config(cfg)
    assert converted.model.neck.type == 'TokenRecover'
    assert converted.model.neck.neck == necks
    assert ailurus_mm.to_vanilla_config(converted).model.neck == necks


@pytest.mark.parametrize('name', [VANILLA_B, DET_VANILLA])
def test_to_vanilla_config_inverts_to_ailurus_config(tmp_path, name):
    vanilla = _mm_config(tmp_path, name) if name.startswith('mmseg::') \
        else Config.fromfile(name)
    for merged in (False, True) if name == VANILLA_B else (False, ):
        converted = ailurus_mm.to_ailurus_config(vanilla, merged, **KNOBS)
        restored = ailurus_mm.to_vanilla_config(converted)
        assert restored.model == vanilla.model, merged
    # and the shipped AiluRus configs give their vanilla twins' models
    ours = Config.fromfile(AILURUS_B if name == VANILLA_B else DET_AILURUS)
    assert ailurus_mm.to_vanilla_config(ours).model == vanilla.model


def test_every_knob_goes_through_every_conversion(segmenter):
    """Adding a field to ClusterConfig is enough for the conversions, the
    model and its log line: this test enumerates the fields."""
    from mmseg.apis import init_model

    from ailurus_mm.engine import ailurus_settings

    assert set(KNOB_EXAMPLES) == set(ClusterConfig.names())
    vanilla_cfg = Config.fromfile(segmenter[0])
    vanilla_cfg.model.backbone.num_layers = 4  # room for a second stage
    for name, value in KNOB_EXAMPLES.items():
        cfg = ailurus_mm.to_ailurus_config(vanilla_cfg, **{name: value})
        assert cfg.model.backbone[name] == value, name
        assert ailurus_mm.to_vanilla_config(cfg).model == vanilla_cfg.model
        built = init_model(cfg, device='cpu')
        assert getattr(built.backbone.clustering, name) == value, name
        assert f'{name}={value!r}' in ailurus_settings(built.backbone)
        applied = ailurus_mm.apply(init_model(vanilla_cfg, device='cpu'),
                                   **{name: value})
        assert applied.backbone.clustering == built.backbone.clustering
        assert applied.cfg.model == cfg.model, name


def _snapshot(model):
    return (type(model), [(n, type(m)) for n, m in model.named_modules()],
            {k: v.clone() for k, v in model.state_dict().items()},
            model.cfg.pretty_text, vars(model.backbone).get('clustering'))


def _unchanged(model, before) -> bool:
    after = _snapshot(model)
    return after[0] is before[0] and after[1] == before[1] and \
        after[2].keys() == before[2].keys() and all(
            torch.equal(after[2][k], before[2][k]) for k in before[2]) and \
        after[3] == before[3] and after[4] == before[4]


@pytest.mark.parametrize('head, kwargs, error, match', [
    (dict(type='FCNHead', in_channels=32, channels=32, num_convs=2,
          num_classes=4), dict(merged_decode=True), ValueError,
     r'decode head FCNHead with num_convs=2 .* cannot decode merged'),
    (None, dict(merged_decode='yes'), ValueError,
     r"merged_decode must be True or False, got 'yes'"),
    (None, dict(k=0), ValueError, r'k must be an int >= 1'),
    (None, dict(cluster_layer=5), ValueError,
     r'cluster_layer must be an int \[0, 1\]'),
    (None, dict(nope=1), TypeError, r"unknown AiluRus knob\(s\) \['nope'\]"),
    (None, dict(reducer='grid', k=3), ValueError,
     r"k=3 is not used by reducer='grid'"),
])
@pytest.mark.parametrize('ailurus_first', [False, True])
def test_a_refused_apply_changes_nothing(segmenter, head, kwargs, error,
                                         match, ailurus_first):
    from mmseg.apis import init_model

    vanilla, _, checkpoint, _ = segmenter
    cfg = Config.fromfile(vanilla)
    cfg.model.backbone.num_layers = 3
    if head is not None:
        cfg.model.decode_head = head
    model = init_model(cfg, device='cpu')
    if ailurus_first:
        ailurus_mm.apply(model)
    before = _snapshot(model)
    with pytest.raises(error, match=match):
        ailurus_mm.apply(model, **kwargs)
    assert _unchanged(model, before)


def test_apply_to_a_detector_equals_our_config(tmp_path):
    from ailurus_mm.testing import make_coco
    from test_detection import build_detector, write_tiny_det_config

    coco = make_coco(str(tmp_path / 'coco'))
    cfgs = [Config.fromfile(write_tiny_det_config(
        str(tmp_path / f'{name}.py'), base, coco, backbone=backbone))
        for name, base, backbone in [('v', DET_VANILLA, None),
                                     ('a', DET_AILURUS, KNOBS)]]
    # the AiluRus config's knobs (its reducer and prop_attn; the tiny
    # detector's layer and keep)
    knobs = dict(KNOBS, reducer='dpc_knn', prop_attn=True)
    torch.manual_seed(0)
    model = build_detector(cfgs[0].model)
    model.init_weights()
    reference = build_detector(cfgs[1].model)
    reference.load_state_dict(model.state_dict(), strict=True)
    inner_neck = model.neck
    ailurus_mm.apply(model, **knobs)
    assert model.neck.neck is inner_neck  # wrapped, not copied
    assert list(model.state_dict()) == list(reference.state_dict())

    from mmdet.registry import DATASETS
    dataset = DATASETS.build(cfgs[0].test_dataloader.dataset)
    data = model.data_preprocessor(
        {k: [v] for k, v in dataset[0].items()}, False)
    model.eval()
    reference.eval()
    with torch.no_grad():
        actual = model(**data, mode='predict')[0].pred_instances
        expected = reference(**data, mode='predict')[0].pred_instances
    assert len(expected) > 0
    for key in ('bboxes', 'scores', 'labels', 'masks'):
        assert torch.equal(actual[key], expected[key]), key


def test_top_level_api():
    import importlib

    for name in ailurus_mm.__all__:
        assert getattr(ailurus_mm, name) is not None, name
    assert ailurus_mm.apply is importlib.import_module(
        'ailurus_mm.convert').apply
    assert osp.isfile(osp.join(osp.dirname(ailurus_mm.__file__), 'py.typed'))
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        ailurus_mm.nope


# The snippet (a user's in-memory config), then one call.
FRESH_BUILD = (
    "import ailurus_mm\n"
    "from mmengine.config import Config\n"
    "from mmseg.apis import init_model\n"
    "cfg = Config.fromstring(\"_base_ = ['mmseg::segmenter/segmenter_"
    "vit-t_mask_8xb1-160k_ade20k-512x512.py']\\nmodel = dict(pretrained="
    "None)\\n\", '.py')\n"
    "{call}\n"
    "print(type(model.backbone).__name__, "
    "type(getattr(model, 'neck', None)).__name__)\n")


@pytest.mark.slow
@pytest.mark.parametrize('call, expected', [
    ("model = init_model(ailurus_mm.to_ailurus_config(cfg, "
     "num_clusters=0.25), device='cpu')", 'AiluRusViT TokenRecover'),
    ("model = init_model(ailurus_mm.to_vanilla_config(ailurus_mm."
     "to_ailurus_config(cfg)), device='cpu')", 'VisionTransformer NoneType'),
    ("model = ailurus_mm.apply(init_model(cfg, device='cpu'))\n"
     "model = init_model(model.cfg, device='cpu')",
     'AiluRusViT TokenRecover'),
    ("from mmseg.registry import DATASETS\n"
     "c = ailurus_mm.load_config('camvid/segmenter_vit-t_mask_1xb8-8k_"
     "camvid-256x256.py')\n"
     "assert DATASETS.get('CamVidDataset') is not None\n"
     "model = init_model(ailurus_mm.load_config('stanford_bg/ailurus_"
     "segmenter_vit-t_mask_1xb8-10k_stanford-bg-256x256.py'), device='cpu')",
     'AiluRusViT TokenRecover'),
])
def test_a_converted_config_builds_in_a_fresh_interpreter(call, expected):
    """The functions that return configs naming our types leave them
    registered: no import or custom_imports run by the user."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, '-c', FRESH_BUILD.format(call=call)],
        capture_output=True, text=True, cwd=REPO, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1].startswith(expected), \
        out.stdout
