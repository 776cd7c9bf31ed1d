# Mask R-CNN with a plain ViT-L/16 and a ViTDet simple feature pyramid on
# COCO at 1024x1024: the vanilla twin of
# ailurus_mask-rcnn_vit-l_simplefpn_8xb2-lsj-1x_coco-1024x1024.py. Only the
# backbone size differs from the ViT-B config.
_base_ = ['./mask-rcnn_vit-b_simplefpn_8xb2-lsj-1x_coco-1024x1024.py']

# ImageNet-21k ViT-L/16 (timm's augreg, 384x384) in mmseg key names.
checkpoint = 'https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/segmenter/vit_large_p16_384_20220308-d4efb41d.pth'  # noqa

model = dict(
    backbone=dict(
        embed_dims=1024,
        num_layers=24,
        num_heads=16,
        out_indices=(23, ),
        drop_path_rate=0.4,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
    neck=dict(in_channels=1024))
