# AiluRus on Segmenter ViT-T/16 with the mask transformer head on Pascal
# Context (60 classes: 59 + background), 480x480, with fine-tuning: its _base_
# is the no-fine-tuning config
# ailurus_segmenter_vit-t_mask_8xb2-80k_pascal-context-480x480.py; start from a
# vanilla checkpoint of that config's _base_
# segmenter_vit-t_mask_8xb2-80k_pascal-context-480x480.py, train 8k iterations
# with AiluRus active, then evaluate:
#   python tools/train.py THIS_CONFIG --cfg-options load_from=VANILLA.pth
#   python tools/test.py THIS_CONFIG work_dirs/THIS_CONFIG_NAME/iter_8000.pth
# Only the fine-tuning changes are set here.
_base_ = ['./ailurus_segmenter_vit-t_mask_8xb2-80k_pascal-context-480x480.py']

# REPLACE with your vanilla checkpoint (trained with the vanilla config,
# downloaded from mmseg, or converted from the official Segmenter release with
# tools/convert_checkpoint.py), here or with --cfg-options load_from=... Every
# parameter must be in it: tools/train.py checks this strictly.
load_from = ('checkpoints/'
             'segmenter_vit-t_mask_8xb2-80k_pascal-context-480x480.pth')

# The weights come from load_from, not ImageNet. The cluster settings are
# AiluRusViT's defaults, as in the no-fine-tuning twin.
model = dict(pretrained=None)

# Fine-tuning schedule: 8k iterations (a tenth of the vanilla 80k), learning
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
        end=8000,
        by_epoch=False)
]
train_cfg = dict(max_iters=8000, val_interval=1000)
default_hooks = dict(checkpoint=dict(interval=1000))
