# Segmenter ViT-S/16 with the mask transformer head on Pascal Context (59
# classes, background ignored), 480x480, vanilla: the ViT-B config of this
# dataset with the ViT-S backbone and its ImageNet-21k weights, as mmseg's
# ADE20K configs do.
_base_ = ['./segmenter_vit-b_mask_8xb2-80k_pascal-context-59-480x480.py']
checkpoint = 'https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/segmenter/vit_small_p16_384_20220308-410f6037.pth'  # noqa
model = dict(
    pretrained=checkpoint,
    backbone=dict(
        embed_dims=384,
        num_heads=6),
    decode_head=dict(
        in_channels=384,
        channels=384,
        num_heads=6,
        embed_dims=384))
