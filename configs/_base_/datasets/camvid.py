# CamVid (SegNet's 11-class split) in mmseg's layout: images/{train,val}/*.jpg
# and annotations/{train,val}/*.png (one class index per pixel, void = 255).
# CamVidDataset is registered by ailurus_mm.datasets (mmseg 1.2.2 has none).
# CamVid is research-use data and is not shipped: point data_root at a copy
# (e.g. --cfg-options train_dataloader.dataset.data_root=PATH
# val_dataloader.dataset.data_root=PATH test_dataloader.dataset.data_root=PATH,
# or a link data/camvid -> PATH).
custom_imports = dict(
    imports=['ailurus_mm.datasets'], allow_failed_imports=False)
dataset_type = 'CamVidDataset'
data_root = 'data/camvid'
crop_size = (256, 256)
# Training: random scale 0.5x-2x of the 480x360 frames (the 1x and 2x test
# lengths are both in it), 256x256 crops, flips and photometric distortion.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(
        type='RandomResize',
        scale=(480, 360),
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
# Native resolution: 480x360, 30x23 = 690 tokens for a /16 ViT (360 padded
# to 368). The 2x length is scale=(960, 720): 60x45 = 2700 tokens. Labels
# stay at 480x360 and predictions are resized back to them.
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(480, 360), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=8,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(
            img_path='images/train', seg_map_path='annotations/train'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(
            img_path='images/val', seg_map_path='annotations/val'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
