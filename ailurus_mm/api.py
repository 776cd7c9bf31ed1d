"""One call from a vanilla mmseg/mmdet model or config to its AiluRus version.

    model = mmseg.apis.init_model(CONFIG, CHECKPOINT)
    ailurus_mm.apply(model, num_clusters=0.5)   # in place, same weights
    mmseg.apis.inference_model(model, IMAGE)

    cfg = ailurus_mm.to_ailurus_config(Config.fromfile(CONFIG), k=7)

Both take the knobs of ``AiluRusViT`` (``cluster_layer``, ``num_clusters``,
``k``, ``spatial_weight``, ``window``, ``prop_attn``, ``reducer``,
``recover_detail``, ``anchor_threshold``; the ones not given
keep ``AiluRusViT``'s defaults) and validate them with its own check. They
convert a model whose backbone is mmseg's plain ``VisionTransformer`` (a
segmentor, or a detector naming it ``mmseg.VisionTransformer``) and refuse
anything else, naming the backbone found. Applied to a model or config that
is already AiluRus, they change its knobs.
"""
import copy
import inspect
from typing import Any, Dict, Union

from mmengine.config import Config, ConfigDict
from torch import nn

KNOB_NAMES = ('cluster_layer', 'num_clusters', 'k', 'spatial_weight',
              'window', 'prop_attn', 'reducer', 'recover_detail',
              'anchor_threshold')


def _knob_defaults() -> Dict[str, Any]:
    from ailurus_mm.models import AiluRusViT
    parameters = inspect.signature(AiluRusViT.__init__).parameters
    return {name: parameters[name].default for name in KNOB_NAMES}


def _check_knob_names(knobs: Dict[str, Any]) -> None:
    unknown = sorted(set(knobs) - set(KNOB_NAMES))
    if unknown:
        raise TypeError(f'unknown AiluRus knob(s) {unknown}; the knobs are '
                        f'{list(KNOB_NAMES)}')


def _enable_merged_decode():
    """``ailurus_mm.models.enable_merged_decode``, once merged decoding is
    part of the package."""
    try:
        from ailurus_mm.models import enable_merged_decode
    except ImportError as error:
        raise NotImplementedError(
            'merged_decode=True is not available in this version of '
            'ailurus_mm') from error
    return enable_merged_decode


def apply(model: nn.Module,
          merged_decode: bool = False,
          **knobs: Any) -> nn.Module:
    """Turn a built mmseg segmentor or mmdet detector into its AiluRus
    version, in place.

    The backbone (mmseg's ``VisionTransformer``) becomes an ``AiluRusViT``
    with the same parameters (nothing is copied), and a ``TokenRecover``
    neck is added (or wraps the existing neck, e.g. a detector's pyramid),
    so the state dict keeps its keys. A model built by
    ``mmseg.apis.init_model`` also gets its ``cfg`` converted.

    Args:
        model: The model, or a DDP-style wrapper around it.
        merged_decode: Also run the decode head on the merged tokens
            (``enable_merged_decode``, where the head supports it).
        **knobs: ``AiluRusViT`` knobs.

    Returns:
        ``model`` itself.

    Raises:
        TypeError: The backbone is not a plain ``VisionTransformer``, or a
            knob name is unknown.
        ValueError: A knob value is invalid (``AiluRusViT``'s message).
    """
    from mmengine.model import is_model_wrapper
    from mmseg.models.backbones import VisionTransformer

    from ailurus_mm.models import AiluRusViT, TokenRecover

    _check_knob_names(knobs)
    enable_merged_decode = _enable_merged_decode() if merged_decode else None
    inner = model.module if is_model_wrapper(model) else model
    backbone = getattr(inner, 'backbone', None)
    if isinstance(backbone, AiluRusViT):
        current = {name: getattr(backbone, name) for name in KNOB_NAMES}
        backbone.configure_clustering(**{**current, **knobs})
    elif type(backbone) is VisionTransformer:
        # Validates everything before changing anything.
        AiluRusViT.configure_clustering(backbone, **{
            **_knob_defaults(), **knobs})
        backbone.__class__ = AiluRusViT
    else:
        found = 'no backbone' if backbone is None else \
            f'backbone {type(backbone).__module__}.{type(backbone).__name__}'
        raise TypeError(
            f'ailurus_mm.apply converts a segmentor or detector whose '
            f"backbone is mmseg's plain VisionTransformer; "
            f'{type(inner).__name__} has {found}')
    neck = getattr(inner, 'neck', None)
    if not isinstance(neck, TokenRecover):
        # EncoderDecoder and mmdet's detectors run ``self.neck`` when set.
        inner.neck = TokenRecover(neck=neck)
    if enable_merged_decode is not None:
        enable_merged_decode(inner)
    if isinstance(getattr(inner, 'cfg', None), Config):
        inner.cfg = to_ailurus_config(inner.cfg, merged_decode, **knobs)
    return model


def _scoped(type_name: str, like: str) -> str:
    """``type_name`` with the scope prefix of ``like`` (``mmseg.`` or none)."""
    return f'mmseg.{type_name}' if like.startswith('mmseg.') else type_name


def to_ailurus_config(cfg: Union[Config, ConfigDict, dict],
                      merged_decode: bool = False,
                      **knobs: Any) -> Config:
    """The AiluRus version of a vanilla mmseg/mmdet config (a copy).

    The backbone type becomes ``AiluRusViT`` (``mmseg.AiluRusViT`` in mmdet
    configs) with the knobs given (defaults are not written), the neck
    ``TokenRecover`` (wrapping the existing neck, if any),
    ``custom_imports`` gains ``ailurus_mm.models`` and ``custom_hooks`` the
    strict-loading hook.

    Args:
        cfg: A whole config (with ``model``).
        merged_decode: Also run the decode head on the merged tokens
            (``model.type='AiluRusEncoderDecoder'``, ``merged_decode=True``).
        **knobs: ``AiluRusViT`` knobs.

    Raises:
        TypeError: The backbone is not a plain ``VisionTransformer``, or a
            knob name is unknown.
        ValueError: A knob value is invalid (``AiluRusViT``'s message).
    """
    from ailurus_mm.models import AiluRusViT

    from .apis.config import enable_strict_loading

    _check_knob_names(knobs)
    if merged_decode:
        _enable_merged_decode()  # available?
    cfg = copy.deepcopy(cfg) if isinstance(cfg, Config) else Config(
        copy.deepcopy(dict(cfg)))
    if 'model' not in cfg or 'backbone' not in cfg.model:
        raise TypeError('to_ailurus_config needs a config with '
                        'model.backbone')
    backbone = cfg.model.backbone
    kind = str(backbone.get('type'))
    if kind.split('.')[-1] not in ('VisionTransformer', 'AiluRusViT') or \
            kind.split('.')[0] not in ('mmseg', kind.split('.')[-1]):
        raise TypeError(
            "to_ailurus_config converts a config whose backbone is mmseg's "
            f'plain VisionTransformer; model.backbone.type is {kind!r}')
    num_layers = backbone.get('num_layers', 12)
    settings = {**_knob_defaults(),
                **{name: backbone[name] for name in KNOB_NAMES
                   if name in backbone}, **knobs}
    AiluRusViT.check_knobs(num_layers, backbone.get('out_indices', -1),
                           **settings)
    backbone.type = _scoped('AiluRusViT', kind)
    backbone.update(knobs)
    neck = cfg.model.get('neck')
    recover = _scoped('TokenRecover', kind)
    if not neck:
        cfg.model.neck = dict(type=recover)
    elif str(neck.get('type')).split('.')[-1] != 'TokenRecover':
        cfg.model.neck = dict(type=recover, neck=neck)
    imports = cfg.get('custom_imports', None) or dict(imports=[])
    names = list(imports.get('imports', []))
    if not any(name.startswith('ailurus_mm.models') for name in names):
        names.append('ailurus_mm.models')
    cfg.custom_imports = dict(imports=names, allow_failed_imports=False)
    if merged_decode:
        if cfg.model.get('type') not in ('EncoderDecoder',
                                         'AiluRusEncoderDecoder'):
            raise TypeError('merged_decode=True is for mmseg '
                            'EncoderDecoder segmentors; model.type is '
                            f'{cfg.model.get("type")!r}')
        cfg.model.type = 'AiluRusEncoderDecoder'
        cfg.model.merged_decode = True
    return enable_strict_loading(cfg)
