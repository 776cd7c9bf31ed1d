# Mask R-CNN with a plain ViT-B/16 and a ViTDet simple feature pyramid on
# COCO at 1024x1024: the vanilla twin of
# ailurus_mask-rcnn_vit-b_simplefpn_8xb2-lsj-1x_coco-1024x1024.py.
# mmdet 3.3 ships no plain ViT: the backbone is mmseg's VisionTransformer
# (named across scopes) and SimpleFPN comes from ailurus_mm.models.det.
# Everything else is mmdet's Mask R-CNN, COCO dataset, 1x schedule and
# runtime; the changes are large-scale-jitter crops to 1024x1024, the ViT's
# normalisation and AdamW.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(
    imports=['ailurus_mm.models.det'], allow_failed_imports=False)
# Checkpoints (load_from, tools/test.py's, --resume) must fit the model
# exactly, under mmdet's tools too (ailurus_mm/engine/hooks.py).
custom_hooks = [dict(type='ailurus_mm.StrictLoadHook')]

image_size = (1024, 1024)
# ImageNet-21k ViT-B/16 (timm's augreg, 384x384) in mmseg key names; its
# position embeddings are resized to the 64x64 grid at initialisation.
checkpoint = 'https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/segmenter/vit_base_p16_384_20220308-96dfe169.pth'  # noqa

model = dict(
    data_preprocessor=dict(
        # the normalisation the ViT was pre-trained with
        mean=[127.5, 127.5, 127.5],
        std=[127.5, 127.5, 127.5],
        # training batches are padded to exactly 1024x1024; test images
        # (longer side 1024) only to a multiple of 32
        batch_augments=[
            dict(type='BatchFixedSizePad', size=image_size, pad_mask=True)
        ]),
    backbone=dict(
        _delete_=True,
        type='mmseg.VisionTransformer',
        img_size=image_size,
        patch_size=16,
        embed_dims=768,
        num_layers=12,
        num_heads=12,
        mlp_ratio=4,
        # one stride-16 map from the last layer, after the pre-trained final
        # LayerNorm; the cls token is kept through the layers (the weights
        # have one) but not returned
        out_indices=(11, ),
        final_norm=True,
        with_cls_token=True,
        output_cls_token=False,
        drop_path_rate=0.1,
        norm_cfg=dict(type='LN', eps=1e-6),
        interpolate_mode='bicubic',
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
    neck=dict(
        _delete_=True,
        type='SimpleFPN',
        in_channels=768,
        out_channels=256,
        # strides 4, 8, 16, 32 for the RoI heads, plus 64 for the RPN
        scale_factors=(4.0, 2.0, 1.0, 0.5),
        num_outs=5))

# Large-scale jitter as in ViTDet (mmdet's common/lsj-100e_coco-instance.py).
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='RandomResize',
        scale=image_size,
        ratio_range=(0.1, 2.0),
        keep_ratio=True),
    dict(
        type='RandomCrop',
        crop_type='absolute_range',
        crop_size=image_size,
        recompute_bbox=True,
        allow_negative_crop=True),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-2, 1e-2)),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.1),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        custom_keys={
            'pos_embed': dict(decay_mult=0.0),
            'cls_token': dict(decay_mult=0.0)
        }))
