"""Vanilla, ideal-reducer and AiluRus versions of one model, same weights.

A benchmark compares an AiluRus config with the model it accelerates. The
variants are derived from the AiluRus config itself, so they differ in
exactly one thing:

- ``vanilla``: the backbone is mmseg's ``VisionTransformer`` and the
  ``TokenRecover`` neck is gone: the original model.
- ``nothing_merged``: ``AiluRusViT`` with ``num_clusters=1.0``; it equals the
  vanilla model, and its time shows any speed-up (or cost) of the layers
  themselves, apart from token reduction.
- ``ideal``: the vanilla layers keep the same number of tokens after the same
  layer at zero cost (the first ``M`` are kept, and copied back before the
  head): the limit any token reducer can reach.
- ``ailurus``: the config as it is.
"""
import copy
from typing import Dict, Optional

import torch
from mmengine.config import Config, ConfigDict
from mmseg.registry import MODELS as MMSEG_MODELS

from ailurus_mm.models import AiluRusViT
from ailurus_mm.ops import ClusterAssignment, resolve_num_clusters

AILURUS_KNOBS = ('cluster_layer', 'num_clusters', 'k', 'spatial_weight',
                 'window', 'prop_attn')


@MMSEG_MODELS.register_module()
class IdealReducerViT(AiluRusViT):
    """Zero-cost token reduction, for benchmarks only.

    Keeps the first ``M`` patch tokens after ``cluster_layer`` (a slice) and
    restores the grid by copying them back (``index = p mod M``), so its time
    is what the vanilla layers cost on ``M`` tokens, with no clustering.
    """

    def cluster(self, x, hw_shape) -> Optional[ClusterAssignment]:
        tokens = x[:, 1:] if self.with_cls_token else x
        batch, num_tokens, _ = tokens.shape
        num_kept = resolve_num_clusters(self.num_clusters, num_tokens)
        if num_kept >= num_tokens:
            return None
        positions = torch.arange(num_tokens, device=x.device)
        index = (positions % num_kept).expand(batch, -1)
        sizes = torch.bincount(positions % num_kept).to(x.dtype)
        return ClusterAssignment(index, sizes.expand(batch, -1),
                                 positions[:num_kept].expand(batch, -1),
                                 tuple(hw_shape))

    def merge(self, x, assignment):
        extra = 1 if self.with_cls_token else 0
        return x[:, :extra + assignment.num_clusters]


def _scoped(type_name: str, new_name: str) -> str:
    """``'mmseg.AiluRusViT'`` -> ``'mmseg.<new_name>'``."""
    scope, _, _ = type_name.rpartition('.')
    return f'{scope}.{new_name}' if scope else new_name


def _is_token_recover(neck) -> bool:
    return isinstance(neck, dict) and str(neck.get('type', '')).endswith(
        'TokenRecover')


def _without_token_recover(neck):
    """The neck config with ``TokenRecover`` taken out."""
    if _is_token_recover(neck):
        inner = neck.get('neck')
        return copy.deepcopy(inner) if inner is not None else None
    if isinstance(neck, (list, tuple)):
        rest = [n for n in neck if not _is_token_recover(n)]
        return None if not rest else rest[0] if len(rest) == 1 else rest
    return neck


def ailurus_backbone_cfg(model_cfg: ConfigDict) -> ConfigDict:
    backbone = model_cfg['backbone']
    if not str(backbone.get('type', '')).endswith('AiluRusViT'):
        raise ValueError('the config\'s model.backbone.type must be '
                         f'AiluRusViT, got {backbone.get("type")!r}')
    return backbone


def variant_model_cfgs(model_cfg: ConfigDict) -> Dict[str, ConfigDict]:
    """Model configs of the ``vanilla``, ``nothing_merged``, ``ideal`` and
    ``ailurus`` variants of an AiluRus model config."""
    backbone = ailurus_backbone_cfg(model_cfg)
    cfgs = {}
    vanilla = copy.deepcopy(model_cfg)
    for knob in AILURUS_KNOBS:
        vanilla['backbone'].pop(knob, None)
    vanilla['backbone']['type'] = _scoped(backbone['type'],
                                          'VisionTransformer')
    neck = _without_token_recover(model_cfg.get('neck'))
    if neck is None:
        vanilla.pop('neck', None)
    else:
        vanilla['neck'] = neck
    cfgs['vanilla'] = vanilla

    nothing_merged = copy.deepcopy(model_cfg)
    nothing_merged['backbone']['num_clusters'] = 1.0
    cfgs['nothing_merged'] = nothing_merged

    ideal = copy.deepcopy(model_cfg)
    ideal['backbone']['type'] = _scoped(backbone['type'], 'IdealReducerViT')
    cfgs['ideal'] = ideal
    cfgs['ailurus'] = copy.deepcopy(model_cfg)
    return cfgs


def build_model(model_cfg: ConfigDict, cfg: Config):
    """Build a model in the config's default scope (mmseg or mmdet)."""
    from mmengine.registry import init_default_scope

    scope = cfg.get('default_scope', 'mmseg')
    init_default_scope(scope)
    if scope == 'mmdet':
        from mmdet.registry import MODELS
    else:
        MODELS = MMSEG_MODELS
    model_cfg = copy.deepcopy(model_cfg)
    model_cfg.pop('pretrained', None)
    if 'backbone' in model_cfg:
        model_cfg['backbone'].pop('init_cfg', None)
        model_cfg['backbone'].pop('pretrained', None)
    return MODELS.build(model_cfg)


def build_variants(cfg: Config,
                   checkpoint: Optional[str] = None,
                   names=('vanilla', 'nothing_merged', 'ideal', 'ailurus'),
                   device: str = 'cpu') -> Dict[str, torch.nn.Module]:
    """Build the variants with one set of weights, in eval mode.

    Args:
        cfg: An AiluRus config (``model.backbone.type='AiluRusViT'``).
        checkpoint: Optional mmseg/mmdet checkpoint (strictly loaded);
            without it the vanilla model's random initialisation (mmseg's
            ``init_weights``) is shared by all variants.
        names: Which variants to build.
        device: Where to put them.

    Returns:
        ``{name: model}`` in the order of ``names``.
    """
    from ailurus_mm.apis.checkpoint import (check_state_dict,
                                            checkpoint_state_dict,
                                            load_checkpoint_file)

    cfgs = variant_model_cfgs(cfg.model)
    torch.manual_seed(0)
    vanilla = build_model(cfgs['vanilla'], cfg)
    if checkpoint is not None:
        state_dict = checkpoint_state_dict(load_checkpoint_file(checkpoint))
        check_state_dict(vanilla, state_dict, source=checkpoint)
    else:
        vanilla.init_weights()
        state_dict = vanilla.state_dict()
    models = {}
    for name in names:
        model = vanilla if name == 'vanilla' else build_model(cfgs[name], cfg)
        model.load_state_dict(state_dict, strict=True)
        models[name] = model.to(device).eval()
    return models
