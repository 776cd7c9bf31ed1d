"""Training and exporting the detection benchmark's vanilla Mask R-CNN."""
from typing import Dict, Optional

from mmengine.config import Config

from ailurus_mm.zoo import load_config
from .. import models
from ..common.train import train

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
    ``IterBasedTrainLoop`` config; on a CPU call
    ``torch.set_flush_denormal(True)`` in the entry script first).

    Returns:
        The path of the last checkpoint, ``<work_dir>/iter_<max_iters>.pth``.
    """
    if not cfg.get('work_dir'):
        raise ValueError('train_detector: cfg.work_dir is not set')
    if cfg.train_cfg.get('type') != 'IterBasedTrainLoop':
        raise ValueError('train_detector needs an IterBasedTrainLoop '
                         f"config, got {cfg.train_cfg.get('type')!r}")
    return train(cfg)


def export_fp16(checkpoint: str, dst: str, cfg: Config) -> str:
    """The detector's weights as a clean fp16 state dict with its class
    names (:func:`ailurus_mm.benchmarks.models.export_fp16`)."""
    return models.export_fp16(
        checkpoint, dst, cfg.train_dataloader.dataset.metainfo['classes'],
        source='ailurus_mm detection benchmark')
