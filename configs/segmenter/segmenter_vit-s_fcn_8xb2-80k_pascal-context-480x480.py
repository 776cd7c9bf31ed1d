# Segmenter ViT-S/16 with the linear head on Pascal Context (60 classes: 59 +
# background), 480x480, vanilla: as mmseg's segmenter_vit-s_fcn ADE20K config,
# a 1x1 convolution (FCNHead without convs) on the patch tokens.
_base_ = ['./segmenter_vit-s_mask_8xb2-80k_pascal-context-480x480.py']

model = dict(
    decode_head=dict(
        _delete_=True,
        type='FCNHead',
        in_channels=384,
        channels=384,
        num_convs=0,
        dropout_ratio=0.0,
        concat_input=False,
        num_classes=60,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)))
