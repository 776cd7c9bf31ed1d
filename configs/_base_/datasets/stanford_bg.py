# Stanford Background (Gould et al., ICCV 2009; 8 classes) in mmseg's layout:
# images/{train,val}/*.jpg and annotations/{train,val}/*.png (one class index
# per pixel, unknown = 255). StanfordBackgroundDataset is registered by
# ailurus_mm.datasets (mmseg 1.2.2 has none). Research-use data, not shipped:
# point data_root at a copy (e.g. --cfg-options
# train_dataloader.dataset.data_root=PATH val_dataloader.dataset.data_root=PATH
# test_dataloader.dataset.data_root=PATH, or a link data/stanford_bg -> PATH).
custom_imports = dict(
    imports=['ailurus_mm.datasets'], allow_failed_imports=False)
dataset_type = 'StanfordBackgroundDataset'
data_root = 'data/stanford_bg'
crop_size = (256, 256)
# Training: random scale 0.5x-2x of the 320x240 frames (the 1x and 2x test
# lengths are both in it), 256x256 crops, flips and photometric distortion.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(
        type='RandomResize',
        scale=(320, 240),
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
# Native resolution: the longer side 320, 20x15 = 300 tokens for a /16 ViT
# (portrait images 15x20). The 2x length is scale=(640, 480): 40x30 = 1200
# tokens. Labels stay at their size and predictions are resized back to them.
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(320, 240), keep_ratio=True),
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
