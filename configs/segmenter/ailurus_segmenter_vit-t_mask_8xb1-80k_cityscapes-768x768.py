# AiluRus on Segmenter ViT-T/16 with the mask transformer head on Cityscapes,
# 768x768, without fine-tuning: evaluate a vanilla checkpoint of the _base_
# config segmenter_vit-t_mask_8xb1-80k_cityscapes-768x768.py with
#   python tools/test.py THIS_CONFIG VANILLA.pth --no-finetune
# Only the backbone type and the neck differ from it; the cluster settings are
# AiluRusViT's defaults (configs/README.md).
_base_ = ['./segmenter_vit-t_mask_8xb1-80k_cityscapes-768x768.py']
custom_imports = dict(
    imports=['ailurus_mm.models'], allow_failed_imports=False)
model = dict(
    backbone=dict(type='AiluRusViT'), neck=dict(type='TokenRecover'))
