# Segmenter ViT-B/16 with the mask transformer head on Pascal Context (60
# classes: 59 + background), 480x480: the vanilla model (no AiluRus) that the
# AiluRus configs of this dataset and backbone are compared against. mmseg
# ships Segmenter for ADE20K only; this follows the structure of its ADE20K
# configs and the Segmenter paper's setting (official code, segm/config.yml:
# image scale 520, crop 480, sliding window 480 with stride 320, batch 16, lr
# 0.001, 256 epochs, about 80k iterations).
_base_ = [
    'mmseg::_base_/models/segmenter_vit-b16_mask.py',
    'mmseg::_base_/datasets/pascal_context.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_80k.py'
]
crop_size = (480, 480)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(img_size=crop_size),
    decode_head=dict(num_classes=60),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(320, 320)))
optimizer = dict(lr=0.001, weight_decay=0.0)
optim_wrapper = dict(type='OptimWrapper', optimizer=optimizer)
train_dataloader = dict(
    # num_gpus: 8 -> batch_size: 16
    batch_size=2)
val_dataloader = dict(batch_size=1)
