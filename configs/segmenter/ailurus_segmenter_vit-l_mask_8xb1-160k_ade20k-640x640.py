# AiluRus on Segmenter ViT-L/16 with the mask transformer head on ADE20K,
# 640x640, without fine-tuning: evaluate a vanilla checkpoint of the _base_
# config segmenter_vit-l_mask_8xb1-160k_ade20k-512x512.py (mmseg names it
# 512x512; it trains and tests at 640x640) with
#   python tools/test.py THIS_CONFIG VANILLA.pth --no-finetune
# Only the segmentor, backbone and neck types and the strict-loading hook
# differ from it; the cluster settings are
# AiluRusViT's defaults (configs/README.md).
_base_ = ['mmseg::segmenter/segmenter_vit-l_mask_8xb1-160k_ade20k-512x512.py']
custom_imports = dict(
    imports=['ailurus_mm.models'], allow_failed_imports=False)
# Checkpoints must fit the model exactly, under any tool
# (ailurus_mm/engine/hooks.py).
custom_hooks = [dict(type='ailurus_mm.StrictLoadHook')]
# The decode head runs on the merged tokens: exactly the same logits as on
# the recovered grid, at a fraction of the cost (docs/usage.md, "Merged
# decoding").
model = dict(
    type='AiluRusEncoderDecoder',
    merged_decode=True,
    backbone=dict(type='AiluRusViT'),
    neck=dict(type='TokenRecover'))
