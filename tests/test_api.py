"""ailurus_mm.apply and ailurus_mm.to_ailurus_config on real mmseg and mmdet
models and configs: equal to building the AiluRus config directly."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config

import ailurus_mm
from conftest import CONFIGS, write_tiny_config

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
    return dict(cluster_layer=1, num_clusters=0.25, k=5, spatial_weight=1.0,
                window=None, prop_attn=True, reducer='dpc_knn',
                recover_detail=False, anchor_threshold=None)


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
    assert {k: getattr(model.backbone, k) for k in _defaults()} == \
        _defaults()
    ailurus_mm.apply(model, num_clusters=3, window=2)
    assert (model.backbone.num_clusters, model.backbone.window,
            model.backbone.cluster_layer) == (3, 2, 1)


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
        assert not hasattr(model.backbone, 'cluster_layer')
    with pytest.raises(TypeError, match=r"unknown AiluRus knob\(s\) "
                       r"\['num_cluster'\]"):
        ailurus_mm.apply(model, num_cluster=0.5)


def test_merged_decode_equals_the_merged_decode_config(segmenter):
    from mmseg.apis import inference_model, init_model

    vanilla, _, checkpoint, image = segmenter
    model = init_model(vanilla, checkpoint, device='cpu')
    try:
        from ailurus_mm.models import enable_merged_decode  # noqa: F401
    except ImportError:  # before merged decoding is in the package
        with pytest.raises(NotImplementedError, match='merged_decode=True'):
            ailurus_mm.apply(model, merged_decode=True)
        return
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
    # The detection configs keep their own starting point (not measured).
    converted = ailurus_mm.to_ailurus_config(
        Config.fromfile(DET_VANILLA), num_clusters=0.65, prop_attn=False)
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


def test_apply_to_a_detector_equals_our_config(tmp_path):
    from ailurus_mm.testing import make_coco
    from test_detection import build_detector, write_tiny_det_config

    coco = make_coco(str(tmp_path / 'coco'))
    cfgs = [Config.fromfile(write_tiny_det_config(
        str(tmp_path / f'{name}.py'), base, coco, backbone=backbone))
        for name, base, backbone in [('v', DET_VANILLA, None),
                                     ('a', DET_AILURUS, KNOBS)]]
    # The detection configs keep proportional attention off (not measured).
    knobs = dict(KNOBS, prop_attn=False)
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
    assert ailurus_mm.apply is importlib.import_module('ailurus_mm.api').apply
    assert osp.isfile(osp.join(osp.dirname(ailurus_mm.__file__), 'py.typed'))
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        ailurus_mm.nope
