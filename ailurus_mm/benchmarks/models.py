"""Building the models a benchmark compares: in the config's scope, from
one set of weights, loaded strictly."""
import copy
import os
import os.path as osp
from typing import Dict, Optional

import torch
from mmengine.config import Config
from torch import nn

from ailurus_mm.checkpoint import (CheckpointMismatchError, check_state_dict,
                                   checkpoint_state_dict, read_checkpoint)


def scope_of(cfg: Config) -> str:
    """The config's default scope (``'mmseg'`` or ``'mmdet'``)."""
    return cfg.get('default_scope', None) or 'mmseg'


def build_model(model_cfg: dict, scope: str = 'mmseg') -> nn.Module:
    """Build ``model_cfg`` in ``scope`` without pretrained weights (every
    weight comes from a checkpoint or ``init_weights``)."""
    from mmengine.registry import DefaultScope

    import ailurus_mm.models  # noqa: F401  (registration)
    if scope == 'mmdet':
        import ailurus_mm.models.det  # noqa: F401
        from mmdet.registry import MODELS
    else:
        from mmseg.registry import MODELS
    model_cfg = copy.deepcopy(model_cfg)
    model_cfg.pop('pretrained', None)
    if isinstance(model_cfg.get('backbone'), dict):
        model_cfg['backbone'].pop('init_cfg', None)
        model_cfg['backbone'].pop('pretrained', None)
    with DefaultScope.overwrite_default_scope(scope):
        return MODELS.build(model_cfg)


def load_weights(checkpoint: str) -> Dict[str, torch.Tensor]:
    """The model weights of a checkpoint (e.g. an fp16 export) as fp32.

    Raises:
        CheckpointMismatchError: A value is not a tensor (named with its
            key, as ``StrictLoadHook`` names it).
    """
    state_dict = checkpoint_state_dict(read_checkpoint(checkpoint),
                                       checkpoint)
    bad = [f'{key}: checkpoint holds a {type(value).__name__}, not a tensor'
           for key, value in state_dict.items()
           if not isinstance(value, torch.Tensor)]
    if bad:
        raise CheckpointMismatchError(
            f'{checkpoint} does not hold model weights only: not tensors '
            f'({len(bad)}): {", ".join(bad[:10])}')
    return {k: v.float() if v.is_floating_point() else v
            for k, v in state_dict.items()}


def build_with_weights(model_cfg: dict,
                       state_dict: Dict[str, torch.Tensor],
                       device: torch.device,
                       scope: str = 'mmseg',
                       source: str = 'the checkpoint') -> nn.Module:
    """Build, load ``state_dict`` strictly (names every missing, unexpected
    or mis-shaped key) and return the model on ``device`` in eval mode."""
    model = build_model(model_cfg, scope)
    check_state_dict(model, state_dict, source=source)
    model.load_state_dict(state_dict, strict=True)
    return model.to(device).eval()


def export_fp16(checkpoint: str, dst: str, classes,
                source: Optional[str] = None) -> str:
    """Write the model weights of ``checkpoint`` as a clean fp16 state dict
    ``{'state_dict': ..., 'meta': {'dataset_meta': {'classes': ...}}}``:
    no optimizer, message hub or config pickles."""

    state_dict = checkpoint_state_dict(read_checkpoint(checkpoint),
                                       checkpoint)
    state_dict = {
        key: value.half() if value.is_floating_point() else value
        for key, value in state_dict.items()
    }
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    meta = dict(dataset_meta=dict(classes=tuple(classes)))
    if source:
        meta['source'] = source
    torch.save(dict(state_dict=state_dict, meta=meta), dst)
    return dst
