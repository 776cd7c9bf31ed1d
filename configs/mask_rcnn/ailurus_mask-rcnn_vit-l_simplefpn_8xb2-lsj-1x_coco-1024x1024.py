# AiluRus on Mask R-CNN with a plain ViT-L/16 and SimpleFPN, COCO 1024x1024.
# Only the backbone type, its cluster settings and the neck differ from the
# _base_ (vanilla) config; its checkpoints load strictly here, so without
# fine-tuning:
#   python tools/test.py THIS_CONFIG VANILLA.pth --no-finetune
# and fine-tuning with clustering on:
#   python tools/train.py THIS_CONFIG --cfg-options load_from=VANILLA.pth
# mmdet's detectors take one neck, so TokenRecover wraps the pyramid: it
# restores the full token grid, then runs SimpleFPN on it.
_base_ = ['./mask-rcnn_vit-l_simplefpn_8xb2-lsj-1x_coco-1024x1024.py']

model = dict(
    backbone=dict(
        type='mmseg.AiluRusViT',
        # Cluster the output of the 2nd layer (0-based index 1) and keep
        # about 0.65 of the 4096 patch tokens: a starting point until
        # accuracy is measured on COCO.
        cluster_layer=1,
        num_clusters=0.65,
        k=5,
        spatial_weight=1.0,
        window=None,
        prop_attn=False),
    neck=dict(
        _delete_=True,
        type='mmseg.TokenRecover',
        neck={{_base_.model.neck}}))
