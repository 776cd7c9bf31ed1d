"""Vanilla mmseg/mmdet models and configs to their AiluRus versions, and
back.

    model = mmseg.apis.init_model(CONFIG, CHECKPOINT)
    ailurus_mm.apply(model, num_clusters=0.5)   # in place, same weights
    mmseg.apis.inference_model(model, IMAGE)

    cfg = ailurus_mm.to_ailurus_config(Config.fromfile(CONFIG), k=7)
    vanilla = ailurus_mm.to_vanilla_config(cfg)

The knobs are those of :class:`~ailurus_mm.ops.ClusterConfig` (the ones not
given keep their values: the defaults for a vanilla model), validated by
it. The functions convert a model whose backbone is mmseg's plain
``VisionTransformer`` (a segmentor, or a detector naming it
``mmseg.VisionTransformer``) and refuse anything else, naming what they
found. Every check runs before anything is changed: a refused call leaves
the model (class, modules, state dict, ``cfg``) or config as it was.

:func:`ailurus_model_config` and :func:`vanilla_model_config` are the one
pair of conversions of a model config; everything else (the whole-config
functions, the benchmark variants, the sweep, the accuracy benchmark) uses
them.
"""
import copy
from typing import Any, Optional, Tuple, Union

from mmengine.config import Config, ConfigDict
from torch import nn

from ailurus_mm.ops import ClusterConfig
from .zoo import enable_strict_loading, register_config_types

ConfigLike = Union[Config, ConfigDict, dict]
_SEGMENTORS = ('EncoderDecoder', 'AiluRusEncoderDecoder')


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + '...'


def _type_name(cfg: dict) -> str:
    return str(cfg.get('type', ''))


def _scoped(type_name: str, like: str) -> str:
    """``type_name`` with the scope prefix of ``like`` (``mmseg.`` or
    none)."""
    scope, _, _ = like.rpartition('.')
    return f'{scope}.{type_name}' if scope else type_name


def _check_backbone_type(backbone: dict, where: str) -> str:
    """The backbone's type name; raise unless it is mmseg's plain
    ``VisionTransformer`` or ``AiluRusViT`` (``mmseg.`` scope or none)."""
    kind = _type_name(backbone)
    scope, _, name = kind.rpartition('.')
    if name not in ('VisionTransformer', 'AiluRusViT') or \
            scope not in ('', 'mmseg'):
        raise TypeError(
            f"{where} converts a model whose backbone is mmseg's plain "
            f'VisionTransformer; model.backbone.type is {kind!r}')
    return name


def _model_parts(model_cfg: Any, where: str) -> Tuple[dict, Any]:
    """``(backbone, neck)`` of a model config, checked."""
    if not isinstance(model_cfg, dict):
        raise TypeError(f"{where}: the config's model must be a dict with "
                        f'a backbone, got {_short(model_cfg)}')
    backbone = model_cfg.get('backbone')
    if not isinstance(backbone, dict):
        raise TypeError(f'{where}: model.backbone must be a dict with a '
                        f'type, got {_short(backbone)}')
    neck = model_cfg.get('neck')
    if neck is not None and not isinstance(neck, (dict, list, tuple)):
        raise TypeError(f'{where}: model.neck must be a dict, a list of '
                        f'dicts or None, got {_short(neck)}')
    return backbone, neck


def _is_token_recover(neck: Any) -> bool:
    return isinstance(neck, dict) and \
        _type_name(neck).split('.')[-1] == 'TokenRecover'


def _check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f'{name} must be True or False, got {value!r}')


def model_clustering(model_cfg: dict) -> ClusterConfig:
    """The :class:`~ailurus_mm.ops.ClusterConfig` a model config builds
    (its backbone's knobs, the unset ones at their defaults)."""
    backbone, _ = _model_parts(model_cfg, 'model_clustering')
    _check_backbone_type(backbone, 'model_clustering')
    return ClusterConfig.from_mapping(backbone)


def ailurus_model_config(model_cfg: dict,
                         merged_decode: bool = False,
                         **knobs: Any) -> ConfigDict:
    """The AiluRus version of a model config (a copy).

    The backbone type becomes ``AiluRusViT`` (``mmseg.AiluRusViT`` in mmdet
    configs) with the knobs given (defaults are not written), the neck
    ``TokenRecover`` (wrapping the existing neck, if any). Applied to an
    AiluRus model config it changes the knobs given.

    Args:
        model_cfg: ``cfg.model``.
        merged_decode: Also run the decode head on the merged tokens
            (``type='AiluRusEncoderDecoder'``, ``merged_decode=True``; mmseg
            ``EncoderDecoder`` segmentors only).
        **knobs: :class:`~ailurus_mm.ops.ClusterConfig` knobs.

    Raises:
        TypeError: The backbone is not a plain ``VisionTransformer``, a
            part of the config is not what a model config holds, or a knob
            name is unknown.
        ValueError: A knob value is invalid.
    """
    where = 'ailurus_model_config'
    _check_bool('merged_decode', merged_decode)
    ClusterConfig.check_names(list(knobs))
    backbone, neck = _model_parts(model_cfg, where)
    kind = _type_name(backbone)
    _check_backbone_type(backbone, where)
    clustering = ClusterConfig.from_mapping(backbone).replace(**knobs)
    clustering.check_layers(backbone.get('num_layers', 12),
                            backbone.get('out_indices', -1))
    if merged_decode and _type_name(model_cfg).split('.')[-1] not in \
            _SEGMENTORS:
        raise TypeError('merged_decode=True is for mmseg EncoderDecoder '
                        f'segmentors; model.type is '
                        f'{_type_name(model_cfg)!r}')
    model_cfg = copy.deepcopy(model_cfg)
    if not isinstance(model_cfg, ConfigDict):
        model_cfg = ConfigDict(model_cfg)
    model_cfg.backbone.type = _scoped('AiluRusViT', kind)
    model_cfg.backbone.update(knobs)
    recover = _scoped('TokenRecover', kind)
    if neck is None or (isinstance(neck, (list, tuple)) and not neck):
        model_cfg.neck = dict(type=recover)
    elif not _is_token_recover(neck):
        model_cfg.neck = dict(type=recover, neck=model_cfg.neck)
    if merged_decode:
        model_cfg.type = _scoped('AiluRusEncoderDecoder',
                                 _type_name(model_cfg))
        model_cfg.merged_decode = True
    return model_cfg


def vanilla_model_config(model_cfg: dict) -> ConfigDict:
    """The vanilla model of an AiluRus model config (a copy): mmseg's
    ``VisionTransformer`` without the knobs, the ``TokenRecover`` neck
    replaced by the neck it wraps (or none), ``EncoderDecoder`` for
    ``AiluRusEncoderDecoder``. A vanilla model config is returned as it
    is (copied)."""
    where = 'vanilla_model_config'
    backbone, neck = _model_parts(model_cfg, where)
    kind = _type_name(backbone)
    _check_backbone_type(backbone, where)
    model_cfg = copy.deepcopy(model_cfg)
    if not isinstance(model_cfg, ConfigDict):
        model_cfg = ConfigDict(model_cfg)
    for name in ClusterConfig.names():
        model_cfg.backbone.pop(name, None)
    model_cfg.backbone.type = _scoped('VisionTransformer', kind)
    if _is_token_recover(neck):
        inner = model_cfg.neck.get('neck')
        if inner is None:
            model_cfg.pop('neck')
        else:
            model_cfg.neck = inner
    if _type_name(model_cfg).split('.')[-1] == 'AiluRusEncoderDecoder':
        model_cfg.type = _scoped('EncoderDecoder', _type_name(model_cfg))
        model_cfg.pop('merged_decode', None)
    return model_cfg


def _whole_config(cfg: Any, where: str) -> Config:
    if not isinstance(cfg, (Config, dict)):
        raise TypeError(f'{where} takes a config (mmengine Config or dict), '
                        f'got {type(cfg).__name__}')
    if 'model' not in cfg:
        raise TypeError(f'{where} needs a config with model.backbone; it '
                        f'has no model (keys: {sorted(cfg)[:10]})')
    return copy.deepcopy(cfg) if isinstance(cfg, Config) else Config(
        copy.deepcopy(dict(cfg)))


def to_ailurus_config(cfg: ConfigLike,
                      merged_decode: bool = False,
                      **knobs: Any) -> Config:
    """The AiluRus version of a vanilla mmseg/mmdet config (a copy).

    The model as :func:`ailurus_model_config` makes it;
    ``custom_imports`` gains ``ailurus_mm.models`` and ``custom_hooks`` the
    strict-loading hook. Every type the result names is registered (its
    ``custom_imports`` are imported), so ``mmseg.apis.init_model`` builds it
    as it is.

    Args:
        cfg: A whole config (with ``model``).
        merged_decode: See :func:`ailurus_model_config`.
        **knobs: :class:`~ailurus_mm.ops.ClusterConfig` knobs.
    """
    cfg = _whole_config(cfg, 'to_ailurus_config')
    cfg.model = ailurus_model_config(cfg.model, merged_decode, **knobs)
    imports = cfg.get('custom_imports', None) or dict(imports=[])
    names = list(imports.get('imports', []))
    if not any(name.startswith('ailurus_mm.models') for name in names):
        names.append('ailurus_mm.models')
    cfg.custom_imports = dict(imports=names, allow_failed_imports=False)
    return register_config_types(enable_strict_loading(cfg))


def to_vanilla_config(cfg: ConfigLike) -> Config:
    """The vanilla version of an AiluRus config (a copy): the model as
    :func:`vanilla_model_config` makes it, everything else unchanged
    (``custom_imports`` and the strict-loading hook work for vanilla models
    too; the types it names are registered)."""
    cfg = _whole_config(cfg, 'to_vanilla_config')
    cfg.model = vanilla_model_config(cfg.model)
    return register_config_types(cfg)


def apply(model: nn.Module,
          merged_decode: bool = False,
          **knobs: Any) -> nn.Module:
    """Turn a built mmseg segmentor or mmdet detector into its AiluRus
    version, in place.

    The backbone (mmseg's ``VisionTransformer``) becomes an ``AiluRusViT``
    with the same parameters (nothing is copied), and a ``TokenRecover``
    neck is added (or wraps the existing neck, e.g. a detector's pyramid),
    so the state dict keeps its keys. A model built by
    ``mmseg.apis.init_model`` also gets its ``cfg`` converted. Applied to
    an AiluRus model, it changes the knobs given.

    Args:
        model: The model, or a DDP-style wrapper around it.
        merged_decode: Also run the decode head on the merged tokens
            (``enable_merged_decode``; Segmenter's heads).
        **knobs: :class:`~ailurus_mm.ops.ClusterConfig` knobs.

    Returns:
        ``model`` itself.

    Raises:
        TypeError: The backbone is not a plain ``VisionTransformer``, a
            knob name is unknown, or merged decoding does not fit the model.
        ValueError: A knob value is invalid, or the decode head has no
            merged decoding.
    """
    from mmengine.model import is_model_wrapper
    from mmseg.models.backbones import VisionTransformer

    from ailurus_mm.models import AiluRusViT, TokenRecover
    from ailurus_mm.models.attention import check_key_bias
    from ailurus_mm.models.segmentor import (check_merged_decode,
                                             enable_merged_decode)

    # Every check first: a refused call changes nothing.
    _check_bool('merged_decode', merged_decode)
    ClusterConfig.check_names(list(knobs))
    inner = model.module if is_model_wrapper(model) else model
    backbone = getattr(inner, 'backbone', None)
    if isinstance(backbone, AiluRusViT):
        clustering = backbone.clustering.replace(**knobs)
    elif type(backbone) is VisionTransformer:
        clustering = ClusterConfig(**knobs)
    else:
        found = 'no backbone' if backbone is None else \
            f'backbone {type(backbone).__module__}.{type(backbone).__name__}'
        raise TypeError(
            f'ailurus_mm.apply converts a segmentor or detector whose '
            f"backbone is mmseg's plain VisionTransformer; "
            f'{type(inner).__name__} has {found}')
    clustering.check_layers(len(backbone.layers), backbone.out_indices)
    check_key_bias(backbone.layers, 'AiluRusViT.layers')
    neck = getattr(inner, 'neck', None)
    new_neck = neck if isinstance(neck, TokenRecover) else \
        TokenRecover(neck=neck)
    if merged_decode:
        from mmseg.models.segmentors import EncoderDecoder

        from ailurus_mm.models import AiluRusEncoderDecoder
        if type(inner) not in (EncoderDecoder, AiluRusEncoderDecoder):
            raise TypeError('merged_decode=True needs an mmseg '
                            'EncoderDecoder or AiluRusEncoderDecoder, got '
                            f'{type(inner).__name__}')
        # The backbone is about to be an AiluRusViT, the neck new_neck.
        check_merged_decode(inner, neck=new_neck, check_backbone=False)
    cfg: Optional[Config] = getattr(inner, 'cfg', None)
    new_cfg = to_ailurus_config(cfg, merged_decode, **knobs) \
        if isinstance(cfg, Config) else None

    # Nothing below can fail.
    if not isinstance(backbone, AiluRusViT):
        AiluRusViT.configure(backbone, clustering)
        backbone.__class__ = AiluRusViT
    else:
        backbone.configure(clustering)
    if new_neck is not neck:
        # EncoderDecoder and mmdet's detectors run ``self.neck`` when set.
        inner.neck = new_neck
    if merged_decode:
        enable_merged_decode(inner)
    if new_cfg is not None:
        inner.cfg = new_cfg
    return model
