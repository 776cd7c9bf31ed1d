# AiluRus on Segmenter ViT-T/16 with the mask transformer head on CamVid,
# with fine-tuning: its _base_ is the no-fine-tuning config
# ailurus_segmenter_vit-t_mask_1xb8-8k_camvid-256x256.py; start from a
# vanilla checkpoint of that config's _base_
# segmenter_vit-t_mask_1xb8-8k_camvid-256x256.py, train 2000 iterations
# with AiluRus active, then evaluate:
#   python tools/train.py THIS_CONFIG --cfg-options load_from=VANILLA.pth
#   python tools/test.py THIS_CONFIG work_dirs/THIS_CONFIG_NAME/iter_2000.pth
# Only the fine-tuning changes are set here.
_base_ = ['./ailurus_segmenter_vit-t_mask_1xb8-8k_camvid-256x256.py']

# REPLACE with your vanilla checkpoint, here or with --cfg-options
# load_from=... (the shipped one is
# ailurus_mm/checkpoints/segmenter_vit-t_mask_1xb8-8k_camvid-256x256.pth).
# Every parameter must be in it: tools/train.py checks this strictly.
load_from = 'checkpoints/segmenter_vit-t_mask_1xb8-8k_camvid-256x256.pth'

# The weights come from load_from. The cluster settings are AiluRusViT's
# defaults, as in the no-fine-tuning twin.
model = dict(pretrained=None)

# Fine-tuning schedule: 2000 iterations (a quarter of the vanilla 8k) at a
# learning rate of 0.3x the vanilla 1e-3, poly decay to 1e-6, no warm-up;
# batch size as in the vanilla config (the ailurus-ft_ recipe of the
# accuracy benchmark).
optim_wrapper = dict(optimizer=dict(lr=0.0003))
param_scheduler = [
    dict(
        type='PolyLR',
        eta_min=1e-6,
        power=0.9,
        begin=0,
        end=2000,
        by_epoch=False)
]
train_cfg = dict(max_iters=2000, val_interval=2000)
default_hooks = dict(checkpoint=dict(interval=2000))
