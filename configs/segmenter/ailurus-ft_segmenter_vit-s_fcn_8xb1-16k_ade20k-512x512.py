# AiluRus on Segmenter ViT-S/16 with the linear head on ADE20K, 512x512, with
# fine-tuning: start from a vanilla checkpoint of the _base_ config
# segmenter_vit-s_fcn_8xb1-160k_ade20k-512x512.py, train 16k iterations with
# AiluRus active, then evaluate:
#   python tools/train.py THIS_CONFIG --cfg-options load_from=VANILLA.pth
#   python tools/test.py THIS_CONFIG work_dirs/THIS_CONFIG_NAME/iter_16000.pth
_base_ = ['mmseg::segmenter/segmenter_vit-s_fcn_8xb1-160k_ade20k-512x512.py']
custom_imports = dict(
    imports=['ailurus_mm.models'], allow_failed_imports=False)

# REPLACE with your vanilla checkpoint of the _base_ config (trained with it,
# downloaded from mmseg, or converted from the official Segmenter release
# with tools/convert_checkpoint.py), here or with --cfg-options load_from=...
# Every parameter must be in it: tools/train.py checks this strictly.
load_from = 'checkpoints/segmenter_vit-s_fcn_8xb1-160k_ade20k-512x512.pth'

model = dict(
    pretrained=None,  # the weights come from load_from, not ImageNet
    backbone=dict(
        type='AiluRusViT',
        # Cluster the output of the 2nd layer (0-based index 1) and keep
        # about 0.25 of the 1024 patch tokens: a starting point until
        # accuracy is measured on real data.
        cluster_layer=1,
        num_clusters=0.25,
        k=5,
        spatial_weight=1.0,
        window=None,
        prop_attn=False),
    neck=dict(type='TokenRecover'))

# Fine-tuning schedule: 16k iterations (a tenth of the vanilla 160k), learning
# rate a tenth of the vanilla 0.001 (about where the vanilla poly schedule
# ends), poly decay to 1e-6; batch size as in the vanilla config. A starting
# point, like the cluster settings.
optim_wrapper = dict(optimizer=dict(lr=0.0001))
param_scheduler = [
    dict(
        type='PolyLR',
        eta_min=1e-6,
        power=0.9,
        begin=0,
        end=16000,
        by_epoch=False)
]
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=16000, val_interval=2000)
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=2000))
