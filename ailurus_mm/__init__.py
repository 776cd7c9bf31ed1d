"""ailurus_mm: AiluRus token clustering for plain-ViT dense prediction.

The public API, importable from here (loaded on first use, so that
``import ailurus_mm.ops`` stays torch-only):

- :func:`apply` / :func:`to_ailurus_config`: a vanilla mmseg/mmdet model or
  config to its AiluRus version (:mod:`ailurus_mm.api`);
- :class:`AiluRusViT`, :class:`TokenRecover`, :class:`AiluRusOutputs`: the
  mm modules (:mod:`ailurus_mm.models`, registered in mmseg's registry);
- :class:`StrictLoadHook`: strict and safe checkpoint loading under any
  tool (:mod:`ailurus_mm.engine`);
- :func:`read_checkpoint`, :func:`load_model_checkpoint`,
  :func:`allow_mmengine_checkpoints`: checkpoints (:mod:`ailurus_mm.apis`,
  :mod:`ailurus_mm.compat`);
- :func:`load_config`, :func:`find_config`, :func:`config_dir`: our configs,
  wherever the package is installed.
"""
import importlib
from typing import Any

__version__ = '0.1.0'

_EXPORTS = {
    'apply': 'ailurus_mm.api',
    'to_ailurus_config': 'ailurus_mm.api',
    'AiluRusViT': 'ailurus_mm.models',
    'TokenRecover': 'ailurus_mm.models',
    'AiluRusOutputs': 'ailurus_mm.models',
    'StrictLoadHook': 'ailurus_mm.engine',
    'read_checkpoint': 'ailurus_mm.apis.checkpoint',
    'load_model_checkpoint': 'ailurus_mm.apis.checkpoint',
    'CheckpointMismatchError': 'ailurus_mm.apis.checkpoint',
    'CheckpointReadError': 'ailurus_mm.apis.checkpoint',
    'NotRunnerCheckpointError': 'ailurus_mm.apis.checkpoint',
    'allow_mmengine_checkpoints': 'ailurus_mm.compat',
    'load_config': 'ailurus_mm.apis.config',
    'find_config': 'ailurus_mm.apis.config',
    'config_dir': 'ailurus_mm.apis.config',
}

__all__ = ['__version__'] + list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def __dir__():
    return sorted(__all__)
