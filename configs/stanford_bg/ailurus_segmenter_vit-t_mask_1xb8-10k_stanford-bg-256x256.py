# AiluRus on Segmenter ViT-T/16 with the mask transformer head on Stanford
# Background, without fine-tuning: evaluate a vanilla checkpoint of the _base_ config
# segmenter_vit-t_mask_1xb8-10k_stanford-bg-256x256.py (e.g. the shipped
# ailurus_mm/checkpoints/segmenter_vit-t_mask_1xb8-10k_stanford-bg-256x256.pth)
# with
#   python tools/test.py THIS_CONFIG VANILLA.pth --no-finetune
# Only the segmentor, backbone and neck types, the strict-loading hook and
# the imports differ from it; the cluster settings are AiluRusViT's
# defaults (configs/README.md).
_base_ = ['./segmenter_vit-t_mask_1xb8-10k_stanford-bg-256x256.py']
custom_imports = dict(
    imports=['ailurus_mm.datasets', 'ailurus_mm.models'],
    allow_failed_imports=False)
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
