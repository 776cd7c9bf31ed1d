"""Vanilla, ideal-reducer and AiluRus versions of one model, same weights.

A benchmark compares an AiluRus config with the model it accelerates. The
variants are derived from the AiluRus config itself, so they differ in
exactly one thing:

- ``vanilla``: the backbone is mmseg's ``VisionTransformer``, the
  ``TokenRecover`` neck is gone and the segmentor is ``EncoderDecoder``: the
  original model.
- ``nothing_merged``: ``AiluRusViT`` with ``num_clusters=1.0``; it equals the
  vanilla model, and its time shows any speed-up (or cost) of the layers
  themselves, apart from token reduction.
- ``ideal``: the vanilla layers keep the same number of tokens after the same
  layer at zero cost (the first ``M`` are kept, and copied back before the
  head): the limit any token reducer can reach.
- ``ideal_merged``: the ideal reducer whose decode head runs on the ``M``
  kept tokens (merged decoding, at zero reduction cost).
- ``ailurus``: the config's AiluRus model, decode head on the recovered grid
  (``TokenRecover``).
- ``ailurus_merged``: the same with merged decoding (the decode head on the
  ``M`` merged tokens; Segmenter's mask transformer and linear heads).

The ``*_merged`` variants exist only for heads with merged decoding. The
ideal reducer is a benchmark device: it is not registered anywhere, the
variant gets it by swapping the class of the built ``AiluRusViT``.
"""
import copy
from typing import Dict, Optional, Sequence

import torch
from mmengine.config import Config, ConfigDict
from mmseg.registry import MODELS as MMSEG_MODELS

from ailurus_mm.checkpoint import (check_state_dict, checkpoint_state_dict,
                                   read_checkpoint)
from ailurus_mm.convert import (ailurus_model_config, model_clustering,
                                vanilla_model_config)
from ailurus_mm.models import AiluRusViT
from ailurus_mm.ops import ClusterAssignment
from .models import build_model, scope_of

VARIANTS = ('vanilla', 'nothing_merged', 'ideal', 'ideal_merged', 'ailurus',
            'ailurus_merged')
DEFAULT_VARIANTS = VARIANTS
# The variants whose decode head runs on the merged tokens.
MERGED_DECODING = ('ideal_merged', 'ailurus_merged')
DESCRIPTIONS = {
    'vanilla': 'mmseg VisionTransformer, all tokens',
    'nothing_merged': 'AiluRusViT, num_clusters=1.0 (layers alone)',
    'ideal': 'ideal reducer: same token count, zero cost',
    'ideal_merged': 'ideal reducer, decode head on the kept tokens',
    'ailurus': 'AiluRusViT as configured, TokenRecover + head',
    'ailurus_merged': 'AiluRusViT as configured, merged decoding',
}


def _slice_assignment(num_tokens: int, num_kept: int, batch: int,
                      hw_shape, device) -> ClusterAssignment:
    """Keep the first ``num_kept`` tokens; token ``p`` is restored from
    ``p mod num_kept``."""
    positions = torch.arange(num_tokens, device=device)
    index = (positions % num_kept).expand(batch, -1)
    # (a scatter, not bincount: it exports to ONNX)
    sizes = torch.zeros(num_kept, device=device).scatter_add_(
        0, positions % num_kept, torch.ones(num_tokens, device=device))
    return ClusterAssignment(index, sizes.expand(batch, -1),
                             positions[:num_kept].expand(batch, -1),
                             tuple(hw_shape))


class IdealReducerViT(AiluRusViT):
    """Zero-cost token reduction, for benchmarks only (not registered).

    Keeps the first ``M`` patch tokens after ``cluster_layer`` by a slice,
    and restores the grid by copying them back (``index = p mod M``), so
    its time is what the vanilla layers cost on those tokens, with no
    clustering.
    """

    def reduce(self, x, hw_shape) -> Optional[ClusterAssignment]:
        tokens = self._patch_tokens(x)
        batch, num_tokens, _ = tokens.shape
        num_kept = self.clustering.num_anchors(num_tokens)
        if num_kept is None:
            return None
        return _slice_assignment(num_tokens, num_kept, batch, hw_shape,
                                 x.device)

    def merge(self, x, assignment):
        extra = 1 if self.with_cls_token else 0
        return x[:, :extra + assignment.num_clusters]


def make_ideal(model: torch.nn.Module) -> torch.nn.Module:
    """Turn a built AiluRus model's backbone into the ideal reducer (class
    swap, in place; same parameters)."""
    if type(model.backbone) not in (AiluRusViT, IdealReducerViT):
        raise TypeError('the ideal reducer replaces an AiluRusViT backbone, '
                        f'got {type(model.backbone).__name__}')
    model.backbone.__class__ = IdealReducerViT
    return model


def _is_token_recover(neck) -> bool:
    return isinstance(neck, dict) and str(neck.get('type', '')).endswith(
        'TokenRecover')


def _is_segmentor(model_cfg: ConfigDict) -> bool:
    return str(model_cfg.get('type', '')).split('.')[-1] in (
        'EncoderDecoder', 'AiluRusEncoderDecoder')


def supports_merged_decode(model_cfg: ConfigDict) -> bool:
    """Whether the config's model can decode merged tokens (an
    ``EncoderDecoder`` with a plain ``TokenRecover`` neck and a supported
    decode head; the head alone is built to check it)."""
    from mmengine.registry import DefaultScope

    from ailurus_mm.models.merged_decode import merged_decode_unsupported

    neck = model_cfg.get('neck')
    if not _is_segmentor(model_cfg) or not _is_token_recover(neck) or \
            neck.get('neck') is not None:
        return False
    head = model_cfg.get('decode_head')
    if not isinstance(head, dict):
        return False
    head = copy.deepcopy(head)
    head.pop('init_cfg', None)
    with DefaultScope.overwrite_default_scope('mmseg'):
        head = MMSEG_MODELS.build(head)
    return not merged_decode_unsupported(head)


def config_variant(model_cfg: ConfigDict) -> str:
    """The variant that is the config's own model: ``'ailurus_merged'`` if
    it turns merged decoding on, else ``'ailurus'``."""
    return 'ailurus_merged' if model_cfg.get('merged_decode') else 'ailurus'


def variant_model_cfgs(model_cfg: ConfigDict,
                       names: Sequence[str] = DEFAULT_VARIANTS
                       ) -> Dict[str, ConfigDict]:
    """Model configs of the variants (see the module docstring) of an
    AiluRus model config, by the plugin's own conversions
    (:func:`ailurus_mm.convert.vanilla_model_config` and
    :func:`~ailurus_mm.convert.ailurus_model_config`): every knob of the
    model is carried, whatever it is. The ``ideal*`` ones are their
    AiluRus twins': :func:`build_variants` swaps the backbone."""
    unknown = [name for name in names if name not in VARIANTS]
    if unknown:
        raise ValueError(f'unknown variants {unknown}; choose from '
                         f'{list(VARIANTS)}')
    if not str(model_cfg['backbone'].get('type', '')).endswith(
            'AiluRusViT'):
        raise ValueError('the config\'s model.backbone.type must be '
                         f'AiluRusViT, got {model_cfg.backbone.get("type")!r}')
    clustering = model_clustering(model_cfg)
    vanilla = vanilla_model_config(model_cfg)
    cfgs = {}
    for name in names:
        if name == 'vanilla':
            cfgs[name] = vanilla
            continue
        knobs = clustering.nothing_merged() if name == 'nothing_merged' \
            else clustering
        cfgs[name] = ailurus_model_config(
            vanilla, merged_decode=name in MERGED_DECODING,
            **knobs.to_dict())
    return cfgs


def build_variants(cfg: Config,
                   checkpoint: Optional[str] = None,
                   names: Sequence[str] = ('vanilla', 'ailurus'),
                   device: str = 'cpu') -> Dict[str, torch.nn.Module]:
    """Build the variants with one set of weights, in eval mode.

    The variants share their parameter tensors (one copy in memory: a
    ViT-L is 1.3 GB); gradients stay separate.

    Args:
        cfg: An AiluRus config (``model.backbone.type='AiluRusViT'``).
        checkpoint: Optional mmseg/mmdet checkpoint (strictly loaded);
            without it the vanilla model's random initialisation (mmseg's
            ``init_weights``) is shared by all variants.
        names: Which variants to build (see :data:`VARIANTS`).
        device: Where to put them.

    Returns:
        ``{name: model}`` in the order of ``names``.
    """
    cfgs = variant_model_cfgs(cfg.model, ('vanilla', *names))
    scope = scope_of(cfg)
    torch.manual_seed(0)
    vanilla = build_model(cfgs['vanilla'], scope).to(device)
    if checkpoint is not None:
        state_dict = checkpoint_state_dict(read_checkpoint(checkpoint),
                                           checkpoint)
        check_state_dict(vanilla, state_dict, source=checkpoint)
        vanilla.load_state_dict(state_dict, strict=True)
    else:
        vanilla.init_weights()
    state_dict = vanilla.state_dict()
    models = {}
    for name in names:
        if name == 'vanilla':
            model = vanilla
        else:
            model = build_model(cfgs[name], scope)
            model.load_state_dict(state_dict, strict=True, assign=True)
            if name.startswith('ideal'):
                make_ideal(model)
        models[name] = model.to(device).eval()
    return models
