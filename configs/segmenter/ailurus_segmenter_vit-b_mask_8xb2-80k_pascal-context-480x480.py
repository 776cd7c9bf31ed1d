# AiluRus on Segmenter ViT-B/16 with the mask transformer head on Pascal
# Context (60 classes: 59 + background), 480x480, without fine-tuning: evaluate
# a vanilla checkpoint of the _base_ config
# segmenter_vit-b_mask_8xb2-80k_pascal-context-480x480.py with
#   python tools/test.py THIS_CONFIG VANILLA.pth --no-finetune
# Only the backbone type, its cluster settings and the neck differ from it.
_base_ = ['./segmenter_vit-b_mask_8xb2-80k_pascal-context-480x480.py']
custom_imports = dict(
    imports=['ailurus_mm.models'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        type='AiluRusViT',
        # Cluster the output of the 2nd layer (0-based index 1) and keep
        # about 0.65 of the 900 patch tokens: a starting point until
        # accuracy is measured on real data.
        cluster_layer=1,
        num_clusters=0.65,
        k=5,
        spatial_weight=1.0,
        window=None,
        prop_attn=False),
    neck=dict(type='TokenRecover'))
