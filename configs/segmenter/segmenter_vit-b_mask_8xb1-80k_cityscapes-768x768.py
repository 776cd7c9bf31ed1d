# Segmenter ViT-B/16 with the mask transformer head on Cityscapes, 768x768: the
# vanilla model (no AiluRus) that the AiluRus configs of this dataset and
# backbone are compared against. mmseg ships Segmenter for ADE20K only; this
# follows the structure of its ADE20K configs and the Segmenter paper's setting
# (official code, segm/config.yml: crop 768, sliding window 768 with stride
# 512, batch 8, lr 0.01, 216 epochs, about 80k iterations).
_base_ = [
    'mmseg::_base_/models/segmenter_vit-b16_mask.py',
    'mmseg::_base_/datasets/cityscapes_768x768.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_80k.py'
]
crop_size = (768, 768)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(img_size=crop_size),
    decode_head=dict(num_classes=19),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(512, 512)))
optimizer = dict(lr=0.01, weight_decay=0.0)
optim_wrapper = dict(type='OptimWrapper', optimizer=optimizer)
train_dataloader = dict(
    # num_gpus: 8 -> batch_size: 8
    batch_size=1)
val_dataloader = dict(batch_size=1)
