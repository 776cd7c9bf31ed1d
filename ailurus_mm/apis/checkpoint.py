"""Loading mmseg/mmengine checkpoints safely and strictly.

torch >= 2.6 loads with ``weights_only=True``. Checkpoints written by
mmengine's Runner hold more than tensors (the message hub's
``HistoryBuffer`` objects, numpy arrays and scalars in ``meta``), so they fail
to load through mmengine unless those types are allowed. Our decision: keep
``weights_only=True`` (no arbitrary code runs when a checkpoint is loaded) and
add exactly the types mmengine's Runner writes to torch's allowlist with
:func:`allow_mmengine_checkpoints` (numpy arrays, dtypes and scalars, and
``HistoryBuffer`` with a ``getattr`` restricted to its statistics methods).
Importing ``ailurus_mm.models`` calls it, so mmseg's own tools benefit too.
"""
import pickle
import re
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import torch
from torch import nn


def _history_buffer_getattr(obj, name: str):
    """Stands in for ``getattr`` while a checkpoint is unpickled.

    mmengine pickles ``HistoryBuffer.statistics_methods`` as
    ``getattr(HistoryBuffer, 'min')`` etc. Allowing the real ``getattr`` would
    let a malicious checkpoint walk from any allowed object to arbitrary code,
    so only these lookups are answered.
    """
    from mmengine.logging.history_buffer import HistoryBuffer

    allowed = {'min', 'max', 'mean', 'current'}
    allowed.update(HistoryBuffer._statistics_methods)  # registered ones
    if obj is HistoryBuffer and name in allowed:
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'checkpoint asks for getattr({obj!r}, {name!r}); only '
        'HistoryBuffer statistics are allowed')


def _safe_globals() -> list:
    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer

    types = [
        HistoryBuffer, np.ndarray, np.dtype,
        (_history_buffer_getattr, 'builtins.getattr')
    ]
    # numpy moved ``core`` to ``_core`` in 2.0; pickles name either module.
    for core in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        try:
            module = __import__(core, fromlist=['_reconstruct', 'scalar'])
        except ImportError:
            continue
        types += [module._reconstruct, module.scalar]
    # Concrete dtype classes (numpy >= 1.25), e.g. Float64DType.
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        types += [
            getattr(dtypes, name) for name in dir(dtypes)
            if name.endswith('DType')
        ]
    return types


def allow_mmengine_checkpoints() -> None:
    """Allow the types of mmengine Runner checkpoints under ``weights_only``.

    Idempotent. A no-op on torch versions without ``add_safe_globals``.
    """
    add_safe_globals = getattr(torch.serialization, 'add_safe_globals', None)
    if add_safe_globals is not None:
        add_safe_globals(_safe_globals())


class CheckpointMismatchError(RuntimeError):
    """The checkpoint's parameters do not fit the model."""


def load_checkpoint_file(filename: str,
                         map_location: str = 'cpu') -> Dict:
    """Read a checkpoint with mmengine's loader (local path or URL)."""
    from mmengine.runner.checkpoint import _load_checkpoint

    allow_mmengine_checkpoints()
    checkpoint = _load_checkpoint(filename, map_location=map_location)
    if not isinstance(checkpoint, dict):
        raise CheckpointMismatchError(
            f'{filename} does not hold a state dict (got '
            f'{type(checkpoint).__name__})')
    return checkpoint


def checkpoint_state_dict(
        checkpoint: Dict) -> 'OrderedDict[str, torch.Tensor]':
    """The model weights of a checkpoint, ``module.`` prefixes stripped."""
    state_dict = checkpoint.get('state_dict', checkpoint)
    return OrderedDict(
        (re.sub(r'^module\.', '', key), value)
        for key, value in state_dict.items())


def _listing(keys: List[str], limit: int = 50) -> str:
    shown = ', '.join(keys[:limit])
    more = len(keys) - limit
    return shown + (f', ... ({more} more)' if more > 0 else '')


def state_dict_mismatch(model: nn.Module,
                        state_dict: Dict) -> Tuple[List[str], List[str],
                                                   List[str]]:
    """Keys missing from ``state_dict``, unexpected in it, and shape clashes.

    Returns:
        ``(missing, unexpected, wrong_shape)``; the last holds
        ``'key: checkpoint (..) vs model (..)'`` strings.
    """
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    wrong_shape = [
        f'{key}: checkpoint {tuple(state_dict[key].shape)} vs model '
        f'{tuple(own[key].shape)}'
        for key in sorted(set(own) & set(state_dict))
        if hasattr(state_dict[key], 'shape')
        and tuple(state_dict[key].shape) != tuple(own[key].shape)
    ]
    return missing, unexpected, wrong_shape


def check_state_dict(model: nn.Module, state_dict: Dict,
                     source: str = 'checkpoint') -> None:
    """Raise :class:`CheckpointMismatchError` unless the keys and shapes of
    ``state_dict`` are exactly those of ``model``."""
    missing, unexpected, wrong_shape = state_dict_mismatch(model, state_dict)
    if not (missing or unexpected or wrong_shape):
        return
    lines = [f'{source} does not fit {type(model).__name__}:']
    if missing:
        lines.append(f'  missing in the checkpoint ({len(missing)}): '
                     f'{_listing(missing)}')
    if unexpected:
        lines.append(f'  unexpected in the checkpoint ({len(unexpected)}): '
                     f'{_listing(unexpected)}')
    if wrong_shape:
        lines.append(f'  shape mismatch ({len(wrong_shape)}): '
                     f'{_listing(wrong_shape)}')
    lines.append('Is it a checkpoint of the same architecture (backbone '
                 'size, decode head, number of classes) in mmseg 1.x key '
                 'names? Official Segmenter or timm weights need '
                 'tools/convert_checkpoint.py first.')
    raise CheckpointMismatchError('\n'.join(lines))


def load_state_dict_strictly(model: nn.Module, checkpoint: Dict,
                             source: str) -> None:
    """Load the weights of an already read checkpoint into ``model``
    strictly, raising :class:`CheckpointMismatchError` with the differing
    keys first.

    Args:
        model: The model (unwrapped, or a DDP-style wrapper with ``.module``).
        checkpoint: A checkpoint dict, or a bare state dict.
        source: Where it came from, for the error message.
    """
    from mmengine.model import is_model_wrapper

    if is_model_wrapper(model):
        model = model.module
    state_dict = checkpoint_state_dict(checkpoint)
    check_state_dict(model, state_dict, source=source)
    model.load_state_dict(state_dict, strict=True)


def load_model_checkpoint(model: nn.Module,
                          filename: str,
                          map_location: str = 'cpu') -> Dict:
    """Load ``filename`` into ``model`` strictly, with a clear error.

    Args:
        model: The model (unwrapped, or a DDP-style wrapper with ``.module``).
        filename: Path or URL of an mmseg/mmengine checkpoint or a bare state
            dict.
        map_location: Where to put the tensors.

    Returns:
        The whole checkpoint dict (with ``meta`` if it has one).
    """
    checkpoint = load_checkpoint_file(filename, map_location)
    load_state_dict_strictly(model, checkpoint, filename)
    return checkpoint


def checkpoint_config_text(checkpoint: Dict) -> Optional[str]:
    """The config text mmengine's Runner stores in ``meta['cfg']``, if any."""
    meta = checkpoint.get('meta')
    if isinstance(meta, dict) and isinstance(meta.get('cfg'), str):
        return meta['cfg']
    return None
