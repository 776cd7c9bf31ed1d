# Segmenter ViT-L/16 with the mask transformer head on Cityscapes, 768x768,
# vanilla: the ViT-B config of this dataset with the ViT-L backbone and its
# ImageNet-21k weights, as mmseg's ADE20K configs do.
_base_ = ['./segmenter_vit-b_mask_8xb1-80k_cityscapes-768x768.py']
checkpoint = 'https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/segmenter/vit_large_p16_384_20220308-d4efb41d.pth'  # noqa
model = dict(
    pretrained=checkpoint,
    backbone=dict(
        embed_dims=1024,
        num_layers=24,
        num_heads=16),
    decode_head=dict(
        in_channels=1024,
        channels=1024,
        num_heads=16,
        embed_dims=1024))
