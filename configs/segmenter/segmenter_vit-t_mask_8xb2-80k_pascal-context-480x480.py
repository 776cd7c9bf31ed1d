# Segmenter ViT-T/16 with the mask transformer head on Pascal Context (60
# classes: 59 + background), 480x480, vanilla: the ViT-B config of this dataset
# with the ViT-T backbone and its ImageNet-21k weights, as mmseg's ADE20K
# configs do.
_base_ = ['./segmenter_vit-b_mask_8xb2-80k_pascal-context-480x480.py']
checkpoint = 'https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/segmenter/vit_tiny_p16_384_20220308-cce8c795.pth'  # noqa
model = dict(
    pretrained=checkpoint,
    backbone=dict(
        embed_dims=192,
        num_heads=3),
    decode_head=dict(
        in_channels=192,
        channels=192,
        num_heads=3,
        embed_dims=192))
