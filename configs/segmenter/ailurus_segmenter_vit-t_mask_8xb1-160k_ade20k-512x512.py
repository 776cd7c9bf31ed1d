# AiluRus on Segmenter ViT-T/16 with the mask transformer head on ADE20K,
# 512x512, without fine-tuning: evaluate a vanilla checkpoint of the _base_
# config segmenter_vit-t_mask_8xb1-160k_ade20k-512x512.py with
#   python tools/test.py THIS_CONFIG VANILLA.pth --no-finetune
# Only the backbone type, its cluster settings and the neck differ from it.
_base_ = ['mmseg::segmenter/segmenter_vit-t_mask_8xb1-160k_ade20k-512x512.py']
custom_imports = dict(
    imports=['ailurus_mm.models'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        type='AiluRusViT',
        # Cluster the output of the 2nd layer (0-based index 1) and keep
        # about 0.65 of the 1024 patch tokens: a starting point until
        # accuracy is measured on real data.
        cluster_layer=1,
        num_clusters=0.65,
        k=5,
        spatial_weight=1.0,
        window=None,
        prop_attn=False),
    neck=dict(type='TokenRecover'))
