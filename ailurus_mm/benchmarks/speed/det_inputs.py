"""Detection inputs and stage timings for the benchmark.

:func:`make_det_batch` gives a batch an mmdet detector accepts in every mode
(``'loss'``, ``'predict'``, ``'tensor'``); :func:`detection_stage_fns` splits
a ``predict`` forward into the backbone, the recovery, the pyramid, the RPN
and the RoI heads, so a report shows where a detector's time goes.
"""
from typing import Callable, Dict, List, Tuple

import numpy as np
import torch
from mmengine.config import Config
from torch import nn

from ..detection.instances import render_instances


def num_det_classes(model_cfg) -> int:
    """Classes of the detector's box head (two-stage or single-stage)."""
    head = model_cfg.get('roi_head', {}).get('bbox_head') or \
        model_cfg.get('bbox_head') or {}
    if isinstance(head, (list, tuple)):  # cascade heads
        head = head[-1]
    if 'num_classes' not in head:
        raise ValueError('cannot find num_classes in model.roi_head.bbox_head '
                         'or model.bbox_head')
    return int(head['num_classes'])


def _box(mask: np.ndarray) -> List[float]:
    """``[x1, y1, x2, y2]`` (pixel edges) of a ``[H, W]`` mask."""
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1),
            float(ys.max() + 1)]


def make_det_batch(cfg: Config,
                   model: nn.Module,
                   shape: Tuple[int, int],
                   batch_size: int,
                   device: torch.device):
    """A batch of the detection benchmark's scenes with ground-truth boxes,
    labels and masks, passed through the detector's own data preprocessor.

    The images are exactly ``shape`` (padded only to the preprocessor's
    ``pad_size_divisor``; fixed-size batch augments are skipped), and the
    samples carry the metainfo mmdet's pipelines would set, so both
    ``mode='loss'`` and ``mode='predict'`` work.

    Returns:
        ``(inputs, data_samples)``: ``[B, 3, H', W']`` float inputs and a
        list of ``DetDataSample``, on ``device``.
    """
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData

    height, width = shape
    num_classes = num_det_classes(cfg.model)
    inputs, samples = [], []
    for i in range(batch_size):
        image, instances = render_instances(i, height, width)
        inputs.append(torch.from_numpy(image).permute(2, 0, 1).contiguous())
        sample = DetDataSample(metainfo=dict(
            img_id=i, ori_shape=(height, width), img_shape=(height, width),
            scale_factor=(1.0, 1.0), flip=False, flip_direction=None))
        gt = InstanceData()
        gt.bboxes = torch.tensor([_box(inst.mask) for inst in instances],
                                 dtype=torch.float32).reshape(-1, 4)
        # the scene's classes as the detector's
        gt.labels = torch.tensor([inst.label % num_classes
                                  for inst in instances], dtype=torch.long)
        masks = np.stack([inst.mask for inst in instances]).astype(
            np.uint8) if instances else np.zeros((0, height, width), np.uint8)
        gt.masks = BitmapMasks(masks, height, width)
        sample.gt_instances = gt
        samples.append(sample)
    preprocessor = model.data_preprocessor
    batch_augments = preprocessor.batch_augments
    preprocessor.batch_augments = None  # e.g. BatchFixedSizePad to 1024
    try:
        data = preprocessor(dict(inputs=inputs, data_samples=samples),
                            training=True)
    finally:
        preprocessor.batch_augments = batch_augments
    samples = [sample.to(device) for sample in data['data_samples']]
    return data['inputs'].to(device), samples


def detection_stage_fns(model: nn.Module, inputs: torch.Tensor,
                        samples: List) -> Dict[str, Callable[[], object]]:
    """The parts of a two-stage detector's ``predict`` (mmdet's
    ``TwoStageDetector.predict``), each a function of inputs computed here
    once, in :data:`DET_STAGES` order: the backbone (with clustering),
    ``recover`` (``TokenRecover``'s recovery; AiluRus only), the
    ``pyramid`` (the neck proper, e.g. ``SimpleFPN``), the ``rpn`` (the
    RPN head's proposals) and the ``roi_heads`` (boxes and masks of the
    final detections)."""
    neck = model.neck
    recover = getattr(neck, 'recover', None)
    with torch.no_grad():
        outputs = model.backbone(inputs)
        recovered = recover(outputs) if recover is not None else outputs
        pyramid = neck.neck if recover is not None else neck
        features = pyramid(recovered) if pyramid is not None else recovered
        proposals = model.rpn_head.predict(features, samples, rescale=False)
    no_grad = torch.no_grad()
    fns = {'backbone': no_grad(lambda: model.backbone(inputs))}
    if recover is not None:
        fns['recover'] = no_grad(lambda: recover(outputs))
    if pyramid is not None:
        fns['pyramid'] = no_grad(lambda: pyramid(recovered))
    fns['rpn'] = no_grad(lambda: model.rpn_head.predict(
        features, samples, rescale=False))
    fns['roi_heads'] = no_grad(lambda: model.roi_head.predict(
        features, proposals, samples, rescale=True))
    return fns


class WithDataSamples(nn.Module):
    """``model`` with fixed data samples: mmdet's ``mode='tensor'`` needs
    them (the RPN's proposals read the image shapes), and the FLOP counter
    passes ``None``."""

    def __init__(self, model: nn.Module, samples: List) -> None:
        super().__init__()
        self.model = model
        self.samples = samples

    def forward(self, inputs, data_samples=None, mode: str = 'tensor'):
        return self.model(inputs, self.samples, mode=mode)
