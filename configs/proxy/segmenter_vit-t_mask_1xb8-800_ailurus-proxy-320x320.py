# The accuracy benchmark's model: a vanilla Segmenter ViT-T/16 (mask
# transformer head), mmseg's own config, trained from scratch on the
# synthetic proxy dataset (ailurus_mm.benchmarks.common.scenes: ADE20K
# layout, 12 of ADE20K's classes, 320x320 training images, validation at
# 320x320 = 400 tokens and at 640x640 = 1600 tokens). Everything it changes is for a
# from-scratch CPU run of about 45 minutes on 2 cores. Generated, trained,
# exported and evaluated by
#   python tools/accuracy_benchmark.py --out-dir work_dirs/accuracy
# which overrides data_root. Figures from this model rank token reducers on
# a synthetic proxy: they are not ADE20K numbers.
_base_ = ['mmseg::segmenter/segmenter_vit-t_mask_8xb1-160k_ade20k-512x512.py']

PROXY_CLASSES = ('wall', 'floor', 'sky', 'grass', 'road', 'building', 'tree',
                 'car', 'person', 'door', 'pole', 'plant')
crop_size = (320, 320)
data_root = 'data/ailurus_proxy'
randomness = dict(seed=0)

model = dict(
    pretrained=None,  # from scratch: no weights can be downloaded here
    data_preprocessor=dict(size=crop_size),
    backbone=dict(img_size=crop_size, drop_path_rate=0.0, init_cfg=None),
    decode_head=dict(num_classes=len(PROXY_CLASSES)),
    test_cfg=dict(mode='whole'))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(
        type='RandomResize',
        scale=crop_size,
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
# Validation images are stored at the size they are evaluated at: 320x320
# (images/validation) and 640x640 (images/validation_2x).
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=8,
    num_workers=1,
    persistent_workers=True,
    dataset=dict(
        data_root=data_root,
        metainfo=dict(classes=PROXY_CLASSES),
        data_prefix=dict(
            img_path='images/training', seg_map_path='annotations/training'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=1,
    persistent_workers=True,
    dataset=dict(
        data_root=data_root,
        metainfo=dict(classes=PROXY_CLASSES),
        data_prefix=dict(
            img_path='images/validation',
            seg_map_path='annotations/validation'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader

# From scratch: AdamW with a short warm-up and a linear decay, instead of the
# fine-tuning SGD of mmseg's config.
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999),
                   weight_decay=0.05),
    clip_grad=dict(max_norm=1.0))
max_iters = 800
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, begin=0, end=100,
         by_epoch=False),
    dict(type='PolyLR', power=1.0, eta_min=0.0, begin=100, end=max_iters,
         by_epoch=False)
]
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False,
                    interval=max_iters, max_keep_ckpts=1))
