# The design-card config: Segmenter ViT-L/16 (mask transformer head) on
# ADE20K 640x640 with AiluRus after the 2nd layer: density peaks that cover
# the image (dpc_cover) keep a quarter of the tokens (400 of 1600), the
# decode head runs on the merged tokens (AiluRusViT's defaults, chosen by
# the accuracy benchmark on CamVid and Stanford Background; speed:
# docs/speed.md).
#   python tools/train.py configs/segmenter_vitl_ailurus.py
#   python tools/test.py configs/segmenter_vitl_ailurus.py CKPT --no-finetune
# Every dataset/backbone/setting is in configs/segmenter/ (see
# configs/README.md).
_base_ = ['./segmenter/ailurus_segmenter_vit-l_mask_8xb1-160k_ade20k-640x640.py']  # noqa
