"""Merged decoding: Segmenter's mask transformer head and the linear head on
the M merged tokens give exactly what TokenRecover plus the unchanged head
gives (predictions, losses, gradients); other heads keep TokenRecover."""
import copy
import functools
import os.path as osp

import pytest
import torch
from mmengine.config import ConfigDict
from mmengine.registry import DefaultScope
from mmengine.structures import PixelData
from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from ailurus_mm.models import AiluRusEncoderDecoder, enable_merged_decode
from conftest import CONFIGS, write_tiny_config


@pytest.fixture(autouse=True)
def mmseg_scope():
    """Build in mmseg's scope whatever earlier tests left as default."""
    with DefaultScope.overwrite_default_scope('mmseg'):
        yield


NUM_CLASSES = 5
LOSS = dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)
BACKBONE = dict(
    type='AiluRusViT', img_size=(64, 64), patch_size=16, embed_dims=32,
    num_layers=3, num_heads=2, mlp_ratio=2, drop_path_rate=0.0,
    final_norm=True, cluster_layer=0, num_clusters=0.4)
MASK_HEAD = dict(
    type='SegmenterMaskTransformerHead', in_channels=32, channels=32,
    num_classes=NUM_CLASSES, num_layers=2, num_heads=2, embed_dims=32,
    dropout_ratio=0.0, drop_path_rate=0.0, loss_decode=LOSS)
LINEAR_HEAD = dict(
    type='FCNHead', in_channels=32, channels=32, num_convs=0,
    concat_input=False, dropout_ratio=0.0, num_classes=NUM_CLASSES,
    loss_decode=LOSS)
HEADS = dict(mask=MASK_HEAD, linear=LINEAR_HEAD)
# Heads that mix neighbouring positions: no merged decoding.
OTHER_HEADS = dict(
    FCNHead=dict(type='FCNHead', in_channels=32, channels=32, num_convs=2,
                 num_classes=NUM_CLASSES),
    UPerHead=dict(type='UPerHead', in_channels=[32] * 3, in_index=[0, 1, 2],
                  channels=32, pool_scales=(1, 2), num_classes=NUM_CLASSES),
    SETRUPHead=dict(type='SETRUPHead', in_channels=32, channels=32,
                    num_classes=NUM_CLASSES, num_convs=2, up_scale=2),
    SETRMLAHead=dict(type='SETRMLAHead', in_channels=(32, 32, 32),
                     in_index=(0, 1, 2), channels=48, mla_channels=16,
                     up_scale=2, num_classes=NUM_CLASSES),
    DPTHead=dict(type='DPTHead', in_channels=(32, 32, 32, 32),
                 in_index=(0, 1, 2, 2), channels=32, embed_dims=32,
                 post_process_channels=[8, 16, 32, 32],
                 num_classes=NUM_CLASSES, readout_type='project',
                 input_transform='multiple_select'),
)


def segmentor_cfg(head, merged_decode, mode='whole', backbone=None,
                  auxiliary_head=None, segmentor='AiluRusEncoderDecoder'):
    test_cfg = ConfigDict(mode='whole') if mode == 'whole' else ConfigDict(
        mode='slide', crop_size=(64, 64), stride=(48, 48))
    cfg = dict(
        type=segmentor,
        backbone={**BACKBONE, **(backbone or {})},
        neck=dict(type='TokenRecover'),
        decode_head=copy.deepcopy(head),
        test_cfg=test_cfg)
    if segmentor == 'AiluRusEncoderDecoder':
        cfg['merged_decode'] = merged_decode
    if auxiliary_head is not None:
        cfg['auxiliary_head'] = auxiliary_head
    return cfg


def build_pair(head, mode='whole', **kwargs):
    """The TokenRecover model and the merged-decoding one, same weights."""
    torch.manual_seed(0)
    recover = MODELS.build(segmentor_cfg(head, False, mode, **kwargs))
    recover.init_weights()
    merged = MODELS.build(segmentor_cfg(head, True, mode, **kwargs))
    merged.load_state_dict(recover.state_dict(), strict=True)
    return recover.eval(), merged.eval()


@functools.lru_cache(maxsize=None)
def eval_pair(head: str, mode: str, prop_attn: bool):
    """:func:`build_pair`, built once per setting (used in eval mode
    only)."""
    with DefaultScope.overwrite_default_scope('mmseg'):
        return build_pair(HEADS[head], mode,
                          backbone=dict(prop_attn=prop_attn))


def predict_logits(model, images):
    with torch.no_grad():
        samples = model.predict(images)
    return torch.stack([s.seg_logits.data for s in samples]), torch.stack(
        [s.pred_sem_seg.data for s in samples])


@pytest.mark.parametrize('prop_attn', [False, True])
@pytest.mark.parametrize('batch', [1, 2])
@pytest.mark.parametrize('mode', ['whole', 'slide'])
@pytest.mark.parametrize('size', [(64, 64), (50, 70), (97, 83)])
@pytest.mark.parametrize('head', ['mask', 'linear'])
def test_predictions_equal_token_recover(head, size, mode, batch,
                                         prop_attn):
    recover, merged = eval_pair(head, mode, prop_attn)
    images = torch.randn(batch, 3, *size)
    expected, expected_pred = predict_logits(recover, images)
    actual, actual_pred = predict_logits(merged, images)
    assert actual.shape == (batch, NUM_CLASSES, *size)
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=0)
    assert torch.equal(actual_pred, expected_pred)


@pytest.mark.parametrize('head', ['mask', 'linear'])
def test_tensor_mode_equals_token_recover(head):
    recover, merged = build_pair(HEADS[head])
    images = torch.randn(2, 3, 80, 96)
    with torch.no_grad():
        expected = recover(images, mode='tensor')
        actual = merged(images, mode='tensor')
    assert actual.shape == (2, NUM_CLASSES, 5, 6)
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=0)


def test_head_layers_run_on_merged_tokens():
    """The head's attention layers see M + K tokens (their hooks fire)."""
    recover, merged = build_pair(MASK_HEAD)
    lengths = {}
    for name, model in (('recover', recover), ('merged', merged)):
        lengths[name] = []
        for layer in model.decode_head.layers:
            layer.register_forward_hook(
                lambda m, args, out, seen=lengths[name]: seen.append(
                    args[0].shape[1]))
        with torch.no_grad():
            model(torch.randn(1, 3, 80, 96), mode='tensor')
    # 5 x 6 = 30 patch tokens, 0.4 kept: 12; plus 5 class embeddings
    assert lengths == dict(recover=[35, 35], merged=[17, 17])


def samples_with_labels(batch, size):
    generator = torch.Generator().manual_seed(3)
    samples = []
    for _ in range(batch):
        sample = SegDataSample(metainfo=dict(img_shape=size, ori_shape=size,
                                             pad_shape=size))
        sample.gt_sem_seg = PixelData(data=torch.randint(
            0, NUM_CLASSES, (1, *size), generator=generator))
        samples.append(sample)
    return samples


def loss_and_grads(model, images, samples):
    model.train()
    model.zero_grad()
    losses = model.loss(images, samples)
    total = sum(losses.values())
    total.backward()
    grads = {name: param.grad for name, param in model.named_parameters()
             if param.grad is not None}
    return {k: v.item() for k, v in losses.items()}, grads


AUX_HEAD = dict(type='FCNHead', in_channels=32, channels=16, num_convs=1,
                concat_input=False, dropout_ratio=0.0, in_index=0,
                num_classes=NUM_CLASSES, loss_decode=LOSS)


@pytest.mark.parametrize('auxiliary', [False, True])
@pytest.mark.parametrize('prop_attn', [False, True])
@pytest.mark.parametrize('head', ['mask', 'linear'])
def test_training_loss_and_gradients_equal_token_recover(
        head, prop_attn, auxiliary):
    """Multi-level outputs: the auxiliary head reads layer 0 (before
    clustering), the decode head the merged last layer."""
    backbone = dict(prop_attn=prop_attn, out_indices=(0, 2))
    recover, merged = build_pair(
        HEADS[head], backbone=backbone,
        auxiliary_head=AUX_HEAD if auxiliary else None)
    images = torch.randn(2, 3, 64, 80)
    samples = samples_with_labels(2, (64, 80))
    expected_losses, expected_grads = loss_and_grads(recover, images,
                                                     samples)
    actual_losses, actual_grads = loss_and_grads(merged, images, samples)
    assert sorted(actual_losses) == sorted(expected_losses) == sorted(
        ['decode.loss_ce', 'decode.acc_seg'] +
        (['aux.loss_ce', 'aux.acc_seg'] if auxiliary else []))
    for key, value in expected_losses.items():
        assert actual_losses[key] == pytest.approx(value, abs=1e-5), key
    names = [name for name, _ in recover.named_parameters()]
    assert sorted(actual_grads) == sorted(expected_grads)
    # every parameter the vanilla model trains gets a gradient
    assert len(expected_grads) >= len(names) - 1  # conv_seg unused (mask)
    for name, grad in expected_grads.items():
        torch.testing.assert_close(actual_grads[name], grad, atol=1e-5,
                                   rtol=0, msg=name)


@pytest.mark.parametrize('head', ['mask', 'linear'])
def test_auxiliary_head_on_merged_output_keeps_token_recover(head):
    """An auxiliary head reading a merged output gets the recovered grid."""
    aux = dict(AUX_HEAD, in_index=1)
    recover, merged = build_pair(HEADS[head], auxiliary_head=aux,
                                 backbone=dict(out_indices=(0, 2)))
    images = torch.randn(1, 3, 64, 64)
    samples = samples_with_labels(1, (64, 64))
    expected, _ = loss_and_grads(recover, images, samples)
    actual, _ = loss_and_grads(merged, images, samples)
    assert actual['aux.loss_ce'] == pytest.approx(expected['aux.loss_ce'],
                                                  abs=1e-5)


def test_head_reading_output_before_clustering_keeps_token_recover():
    head = dict(LINEAR_HEAD, in_index=0)
    recover, merged = build_pair(head, backbone=dict(out_indices=(0, 2)))
    images = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(
        predict_logits(merged, images)[0], predict_logits(recover,
                                                          images)[0])


def test_nothing_merged_equals_vanilla():
    recover, merged = build_pair(MASK_HEAD,
                                 backbone=dict(num_clusters=1.0))
    images = torch.randn(1, 3, 64, 64)
    assert torch.equal(predict_logits(merged, images)[0],
                       predict_logits(recover, images)[0])


@pytest.mark.parametrize('name', list(OTHER_HEADS))
def test_other_heads_fail_at_construction(name):
    with pytest.raises(ValueError,
                       match=rf'merged_decode=True: decode head {name}.* '
                       r'cannot decode merged tokens; supported: '
                       r'SegmenterMaskTransformerHead, FCNHead with '
                       r'num_convs=0'):
        MODELS.build(segmentor_cfg(OTHER_HEADS[name], True))


@pytest.mark.parametrize('name', ['UPerHead', 'SETRMLAHead'])
def test_other_heads_keep_token_recover_path(name):
    """Multi-level out_indices, merged_decode=False: as EncoderDecoder."""
    backbone = dict(out_indices=(0, 1, 2))
    torch.manual_seed(0)
    vanilla = MODELS.build(segmentor_cfg(OTHER_HEADS[name], False,
                                         backbone=backbone,
                                         segmentor='EncoderDecoder'))
    vanilla.init_weights()
    ours = MODELS.build(segmentor_cfg(OTHER_HEADS[name], False,
                                      backbone=backbone))
    ours.load_state_dict(vanilla.state_dict(), strict=True)
    images = torch.randn(1, 3, 64, 64)
    assert torch.equal(predict_logits(ours.eval(), images)[0],
                       predict_logits(vanilla.eval(), images)[0])


@pytest.mark.parametrize('change,error,match', [
    (dict(backbone=dict(type='VisionTransformer')), TypeError,
     'needs an AiluRusViT backbone, got VisionTransformer'),
    (dict(neck=None), TypeError,
     r"needs the neck dict\(type='TokenRecover'\).*got NoneType"),
    (dict(merged_decode='yes'), ValueError,
     "merged_decode must be True or False, got 'yes'"),
])
def test_invalid_models_fail_at_construction(change, error, match):
    cfg = segmentor_cfg(MASK_HEAD, True)
    for key, value in change.items():
        if isinstance(value, dict):
            cfg[key] = dict(img_size=(64, 64), patch_size=16,
                            embed_dims=32, num_layers=3, num_heads=2,
                            **value)
        else:
            cfg[key] = value
    cfg = {k: v for k, v in cfg.items() if v is not None}
    with pytest.raises(error, match=match):
        MODELS.build(cfg)


def test_vanilla_checkpoint_loads_strictly():
    vanilla_cfg = segmentor_cfg(MASK_HEAD, False, segmentor='EncoderDecoder')
    vanilla_cfg['backbone'] = {
        k: v for k, v in vanilla_cfg['backbone'].items()
        if k not in ('cluster_layer', 'num_clusters')
    }
    vanilla_cfg['backbone']['type'] = 'VisionTransformer'
    del vanilla_cfg['neck']
    vanilla = MODELS.build(vanilla_cfg)
    merged = MODELS.build(segmentor_cfg(MASK_HEAD, True))
    assert list(merged.state_dict()) == list(vanilla.state_dict())
    result = merged.load_state_dict(vanilla.state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys


@pytest.mark.parametrize('head', ['mask', 'linear'])
def test_enable_merged_decode_switches_in_place(head):
    torch.manual_seed(0)
    model = MODELS.build(segmentor_cfg(HEADS[head], False,
                                       segmentor='EncoderDecoder'))
    model.init_weights()
    model.eval()
    images = torch.randn(2, 3, 64, 80)
    expected = predict_logits(model, images)[0]
    keys = list(model.state_dict())
    assert enable_merged_decode(model) is model
    assert type(model) is AiluRusEncoderDecoder and model.merged_decode
    assert list(model.state_dict()) == keys
    torch.testing.assert_close(predict_logits(model, images)[0], expected,
                               atol=1e-5, rtol=0)


def test_enable_merged_decode_refuses_and_leaves_model_unchanged():
    model = MODELS.build(segmentor_cfg(OTHER_HEADS['FCNHead'], False,
                                       segmentor='EncoderDecoder'))
    with pytest.raises(ValueError, match='decode head FCNHead with '
                       r'num_convs=2 \(its 3x3 convs'):
        enable_merged_decode(model)
    assert type(model) is EncoderDecoder
    with pytest.raises(TypeError, match='needs an EncoderDecoder or '
                       'AiluRusEncoderDecoder, got Linear'):
        enable_merged_decode(torch.nn.Linear(2, 2))


@pytest.mark.parametrize('name', [
    'ailurus_segmenter_vit-b_mask_8xb1-160k_ade20k-512x512.py',
    'ailurus-ft_segmenter_vit-s_fcn_8xb1-40k_ade20k-512x512.py',
])
def test_real_configs_with_merged_decode(name, tmp_path, ade20k_root,
                                         fast_config_parsing):
    """Tiny versions of the real configs, with the two lines that turn
    merged decoding on."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    init_default_scope('mmseg')
    base = osp.join(CONFIGS, 'segmenter', name)
    models = {}
    extra = '' if '_mask_' in name else \
        "model['decode_head'] = dict(in_channels=32, channels=32)\n"
    for merged_decode in (False, True):
        config = write_tiny_config(
            str(tmp_path / f'{merged_decode}.py'), base, ade20k_root,
            backbone=dict(num_clusters=0.5),
            extra=extra + f'model.update(type="AiluRusEncoderDecoder", '
            f'merged_decode={merged_decode})\n')
        cfg = Config.fromfile(config)
        torch.manual_seed(0)
        models[merged_decode] = MODELS.build(cfg.model).eval()
    models[True].load_state_dict(models[False].state_dict(), strict=True)
    assert models[True].merged_decode
    images = torch.randn(1, 3, 64, 96)
    torch.testing.assert_close(
        predict_logits(models[True], images)[0],
        predict_logits(models[False], images)[0], atol=1e-5, rtol=0)


@pytest.mark.parametrize('head', ['mask', 'linear'])
def test_logits_are_contiguous_like_the_vanilla_heads(head):
    recover, merged = eval_pair(head, 'whole', False)
    with torch.no_grad():
        logits = merged(torch.randn(1, 3, 64, 80), mode='tensor')
    assert logits.is_contiguous()
