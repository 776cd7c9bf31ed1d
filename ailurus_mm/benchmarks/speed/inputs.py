"""Inputs of the benchmark and the demo: the config's crop size and a
preprocessed batch (a scene of the accuracy benchmark's generator, or a
given image, with labels) that every mode of the model accepts."""
from typing import Tuple

import torch
from mmengine.config import Config


def default_shape(cfg: Config) -> Tuple[int, int]:
    """The config's crop size (what the model is evaluated on per window)."""
    size = cfg.model.get('data_preprocessor', {}).get('size') or \
        cfg.get('crop_size') or cfg.model.backbone.get('img_size')
    if isinstance(size, int):
        return size, size
    return tuple(size)


def make_batch(cfg: Config,
               model,
               shape: Tuple[int, int],
               batch_size: int,
               device: torch.device,
               image=None):
    """A preprocessed batch of synthetic images (and labels for training)
    passed through the model's own data preprocessor.

    Args:
        image: Optional ``[H, W, 3]`` uint8 BGR image used instead of a
            synthetic one (resized to ``shape``).
    """
    if cfg.get('default_scope') == 'mmdet':
        from .det_inputs import make_det_batch
        return make_det_batch(cfg, model, shape, batch_size, device)
    import cv2
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    from ..common.scenes import render_scene

    num_classes = cfg.model.decode_head.num_classes
    inputs, samples = [], []
    for i in range(batch_size):
        scene, label = render_scene(i, *shape)
        label = label % num_classes  # the scene's ids as the model's
        if image is not None:
            scene = cv2.resize(image, (shape[1], shape[0]))
        inputs.append(torch.from_numpy(scene).permute(2, 0, 1).contiguous())
        sample = SegDataSample(
            metainfo=dict(
                ori_shape=shape, img_shape=shape, pad_shape=shape,
                scale_factor=(1.0, 1.0), flip=False, flip_direction=None,
                reduce_zero_label=False))
        sample.gt_sem_seg = PixelData(
            data=torch.from_numpy(label.astype('int64'))[None])
        samples.append(sample)
    # Normalise and stack with the model's own preprocessor, padded to
    # exactly ``shape`` (not to the config's crop size).
    preprocessor = model.data_preprocessor
    crop_size = preprocessor.size
    preprocessor.size = tuple(shape)
    try:
        data = preprocessor(
            dict(inputs=inputs, data_samples=samples), training=True)
    finally:
        preprocessor.size = crop_size
    samples = [sample.to(device) for sample in data['data_samples']]
    return data['inputs'].to(device), samples
