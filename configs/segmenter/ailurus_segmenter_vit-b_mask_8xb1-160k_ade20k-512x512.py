# AiluRus on mmseg's Segmenter ViT-B/16 mask, ADE20K 512x512, without
# fine-tuning: evaluate a vanilla mmseg checkpoint of
# segmenter_vit-b_mask_8xb1-160k_ade20k-512x512.py with
#   python tools/test.py THIS_CONFIG CHECKPOINT --no-finetune
_base_ = ['mmseg::segmenter/segmenter_vit-b_mask_8xb1-160k_ade20k-512x512.py']
custom_imports = dict(imports=['ailurus_mm.models'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        type='AiluRusViT',
        # after the 2nd layer, about 0.65 of the 1024 patch tokens kept
        cluster_layer=1,
        num_clusters=0.65,
        k=5,
        spatial_weight=1.0,
        window=None,
        prop_attn=False),
    neck=dict(type='TokenRecover'))
