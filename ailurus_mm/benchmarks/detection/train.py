"""Training and exporting the detection benchmark's vanilla Mask R-CNN."""
import os
import os.path as osp
from typing import Dict, Optional

import torch
from mmengine.config import Config

from ailurus_mm.apis.checkpoint import checkpoint_state_dict, read_checkpoint
from ailurus_mm.apis.config import load_config

# The benchmark's detector, one of our configs (ailurus_mm.find_config).
DETECTOR_CONFIG = ('proxy/mask-rcnn_vit-t_simplefpn_1xb4-2k_'
                   'ailurus-proxy-320x320.py')


def detector_config(data_root: str,
                    work_dir: str,
                    config: Optional[str] = None,
                    cfg_options: Optional[Dict] = None) -> Config:
    """The detector's config with the dataset at ``data_root`` (the
    dataloaders' ``data_root``, and the evaluators' annotation files: those
    their dataloaders read) and ``work_dir`` set.

    Args:
        data_root: Where :func:`make_detection_proxy` wrote the dataset.
        work_dir: The Runner's work dir.
        config: Another config (path or name); default
            :data:`DETECTOR_CONFIG`.
        cfg_options: ``--cfg-options`` style overrides, applied first.
    """
    cfg = load_config(config or DETECTOR_CONFIG, cfg_options)
    data_root = data_root.rstrip('/') + '/'
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = data_root
    for split in ('val', 'test'):  # the annotations the loader reads
        cfg[f'{split}_evaluator'].ann_file = \
            data_root + cfg[f'{split}_dataloader'].dataset.ann_file
    cfg.work_dir = work_dir
    return cfg


def train_detector(cfg: Config) -> str:
    """Train the detector of ``cfg`` with mmengine's Runner (an
    ``IterBasedTrainLoop`` config).

    On a CPU run, denormal floats are flushed to zero first
    (``torch.set_flush_denormal(True)``, for the rest of the process): a
    from-scratch model's small activations and gradients otherwise fall
    into the slow denormal range and can double the step time. Nothing
    else process-wide is changed (the thread count is the caller's).

    Args:
        cfg: A full mmdet config with ``work_dir`` set.

    Returns:
        The path of the last checkpoint, ``<work_dir>/iter_<max_iters>.pth``.
    """
    from mmengine.runner import Runner

    if not cfg.get('work_dir'):
        raise ValueError('train_detector: cfg.work_dir is not set')
    if cfg.train_cfg.get('type') != 'IterBasedTrainLoop':
        raise ValueError('train_detector needs an IterBasedTrainLoop '
                         f"config, got {cfg.train_cfg.get('type')!r}")
    if not torch.cuda.is_available():
        torch.set_flush_denormal(True)
    runner = Runner.from_cfg(cfg)
    runner.train()
    return osp.join(cfg.work_dir, f'iter_{cfg.train_cfg.max_iters}.pth')


def export_fp16(checkpoint: str, dst: str, cfg: Config) -> str:
    """Write the model weights of ``checkpoint`` as a clean fp16 state dict.

    The file holds ``{'state_dict': ..., 'meta': {'dataset_meta':
    {'classes': ...}}}``: floating-point tensors in fp16, no optimizer
    state, message hub or config, so torch's ``weights_only`` loader reads
    it and mmdet's tools take the class names from it.

    Args:
        checkpoint: A Runner checkpoint (or any checkpoint
            :func:`~ailurus_mm.apis.checkpoint.read_checkpoint` reads).
        dst: Where to write.
        cfg: The training config (its training set's ``metainfo`` gives the
            class names).

    Returns:
        ``dst``.
    """
    state_dict = checkpoint_state_dict(read_checkpoint(checkpoint))
    state_dict = {
        key: value.half() if value.is_floating_point() else value
        for key, value in state_dict.items()
    }
    classes = tuple(cfg.train_dataloader.dataset.metainfo['classes'])
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    torch.save(
        dict(state_dict=state_dict,
             meta=dict(dataset_meta=dict(classes=classes),
                       source='ailurus_mm detection benchmark')), dst)
    return dst
