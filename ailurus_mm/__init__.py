"""ailurus_mm: AiluRus token clustering for plain-ViT dense prediction.

The public API, importable from here (loaded on first use, so that
``import ailurus_mm.ops`` stays torch-only):

- :func:`apply`, :func:`to_ailurus_config`, :func:`to_vanilla_config`: a
  vanilla mmseg/mmdet model or config to its AiluRus version and back
  (:mod:`ailurus_mm.convert`);
- :class:`ClusterConfig`: the knobs, their defaults and validation
  (:mod:`ailurus_mm.ops`);
- :class:`AiluRusViT`, :class:`TokenRecover`, :class:`AiluRusOutputs`: the
  mm modules (:mod:`ailurus_mm.models`, registered in mmseg's registry);
- :class:`StrictLoadHook`: strict and safe checkpoint loading under any
  tool (:mod:`ailurus_mm.engine`);
- :func:`read_checkpoint`, :func:`load_model_checkpoint`,
  :func:`allow_mmengine_checkpoints`: checkpoints
  (:mod:`ailurus_mm.checkpoint`, :mod:`ailurus_mm.compat`);
- :func:`load_config`, :func:`find_config`, :func:`config_dir`: our configs,
  wherever the package is installed (:mod:`ailurus_mm.zoo`).

The benchmark suite (:mod:`ailurus_mm.benchmarks`) is not imported by any
of these.
"""
import importlib
from typing import Any

__version__ = '0.2.0'

_EXPORTS = {
    'apply': 'ailurus_mm.convert',
    'to_ailurus_config': 'ailurus_mm.convert',
    'to_vanilla_config': 'ailurus_mm.convert',
    'ClusterConfig': 'ailurus_mm.ops',
    'AiluRusViT': 'ailurus_mm.models',
    'TokenRecover': 'ailurus_mm.models',
    'AiluRusOutputs': 'ailurus_mm.models',
    'StrictLoadHook': 'ailurus_mm.engine',
    'read_checkpoint': 'ailurus_mm.checkpoint',
    'load_model_checkpoint': 'ailurus_mm.checkpoint',
    'CheckpointMismatchError': 'ailurus_mm.checkpoint',
    'CheckpointReadError': 'ailurus_mm.checkpoint',
    'NotRunnerCheckpointError': 'ailurus_mm.checkpoint',
    'allow_mmengine_checkpoints': 'ailurus_mm.compat',
    'load_config': 'ailurus_mm.zoo',
    'find_config': 'ailurus_mm.zoo',
    'config_dir': 'ailurus_mm.zoo',
}

__all__ = ['__version__'] + list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def __dir__():
    return sorted(__all__)
