"""Reading checkpoints with clear errors, and loading them strictly.

Every path that reads a checkpoint (our tools, ``StrictLoadHook`` under
anyone's tools, the Python API, the converter) goes through
:func:`read_checkpoint` or :func:`describe_read_error`: a file that cannot be
read raises :class:`CheckpointReadError` naming the file and what is wrong
with it (missing, empty, truncated, not a torch checkpoint, or an object
refused by torch's ``weights_only`` loader), with the underlying error
chained. Runner checkpoints are read with the types mmengine writes allowed
for that read only (:mod:`ailurus_mm.compat`).

Loading is strict: :func:`check_state_dict` lists the missing, unexpected
and mis-shaped keys before anything is loaded.
"""
import os.path as osp
import pickle
import re
import zipfile
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

# allow_mmengine_checkpoints: re-exported for the analysis tools
from ailurus_mm.compat import allow_mmengine_checkpoints  # noqa: F401
from ailurus_mm.compat import mmengine_checkpoint_globals

# What ``Runner.resume`` reads besides the weights.
RUNNER_CHECKPOINT_KEYS = ('meta', 'state_dict', 'message_hub')


class CheckpointReadError(RuntimeError):
    """A file could not be read as a checkpoint; the message names it."""


class CheckpointMismatchError(RuntimeError):
    """The checkpoint's parameters do not fit the model."""


class NotRunnerCheckpointError(ValueError):
    """A checkpoint to resume from lacks what mmengine's Runner saves."""


def _refused_global(error: BaseException) -> str:
    """The ``Unsupported global: ...`` line of torch's weights_only error."""
    for line in str(error).splitlines():
        match = re.search(r'Unsupported global: GLOBAL (\S+)', line)
        if match:
            return match.group(1)
    return 'an object'


def describe_read_error(filename: str,
                        error: BaseException) -> CheckpointReadError:
    """The error to raise (``from error``) when ``filename`` could not be
    read as a checkpoint: it names the file and says what is wrong."""
    if isinstance(error, pickle.UnpicklingError) and \
            'Weights only load failed' in str(error):
        return CheckpointReadError(
            f'{filename}: refused to load {_refused_global(error)}, which '
            'is not allowed when loading with torch weights_only=True (only '
            'tensors, containers, numpy data and mmengine\'s message hub '
            'are). Loading such a file can run arbitrary code; if you trust '
            'it, re-save its state dict with plain tensors.')
    if '://' not in filename and osp.isfile(filename):
        size = osp.getsize(filename)
        if size == 0:
            return CheckpointReadError(
                f'{filename} is empty (0 bytes): not a checkpoint (an '
                'interrupted download or save?)')
        with open(filename, 'rb') as f:
            head = f.read(4)
        if head.startswith(b'PK') and not zipfile.is_zipfile(filename):
            return CheckpointReadError(
                f'{filename} is truncated or corrupt ({size} bytes): a '
                'torch checkpoint archive without its end (an interrupted '
                'download or save?)')
        if not head.startswith((b'PK', b'\x80')):
            return CheckpointReadError(
                f'{filename} is not a torch checkpoint: it starts with '
                f'{head!r}, neither a torch zip archive nor a pickle')
        if isinstance(error, (EOFError, pickle.UnpicklingError)) or \
                'zip archive' in str(error):
            return CheckpointReadError(
                f'{filename} is truncated or corrupt ({size} bytes): '
                f'{type(error).__name__}: {error}')
    return CheckpointReadError(
        f'{filename} could not be read as a checkpoint: '
        f'{type(error).__name__}: {error}')


def read_checkpoint(filename: str, map_location: str = 'cpu') -> Dict:
    """Read a checkpoint (local path or URL) with mmengine's loader.

    mmengine Runner checkpoints are allowed for this read only
    (:func:`ailurus_mm.compat.mmengine_checkpoint_globals`); anything else
    beyond tensors is refused.

    Raises:
        FileNotFoundError: ``filename`` does not exist.
        CheckpointReadError: It cannot be read, or holds no dict.
    """
    from mmengine.runner.checkpoint import _load_checkpoint

    if '://' not in filename and not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename} does not exist')
    try:
        with mmengine_checkpoint_globals():
            checkpoint = _load_checkpoint(filename, map_location=map_location)
    except Exception as error:
        raise describe_read_error(filename, error) from error
    if not isinstance(checkpoint, dict):
        raise CheckpointReadError(
            f'{filename} holds a {type(checkpoint).__name__}, not a '
            'checkpoint (a dict of tensors, or a dict with a state_dict)')
    return checkpoint


# The name the analysis tools use.
load_checkpoint_file = read_checkpoint


def check_runner_checkpoint(checkpoint: Dict, source: str) -> None:
    """Raise :class:`NotRunnerCheckpointError` unless ``checkpoint`` holds
    what ``Runner.resume`` needs (weights, message hub, epoch and iter)."""
    meta = checkpoint.get('meta')
    missing = [key for key in RUNNER_CHECKPOINT_KEYS if key not in checkpoint]
    if isinstance(meta, dict):
        missing += [f'meta.{key}' for key in ('epoch', 'iter')
                    if key not in meta]
    if missing:
        raise NotRunnerCheckpointError(
            f'{source} is not a Runner checkpoint (it has no '
            f'{", ".join(missing)}), so training cannot resume from it: '
            'resume continues a run from a checkpoint mmengine\'s Runner '
            f'saved. To start training from these weights, use '
            f'load_from={source} instead of --resume.')


def strip_wrapper_prefix(
        state_dict: Dict) -> 'OrderedDict[str, torch.Tensor]':
    """``state_dict`` without the ``module.`` prefixes of DDP wrappers."""
    return OrderedDict(
        (re.sub(r'^module\.', '', key), value)
        for key, value in state_dict.items())


def checkpoint_state_dict(
        checkpoint: Dict) -> 'OrderedDict[str, torch.Tensor]':
    """The model weights of a checkpoint, ``module.`` prefixes stripped."""
    return strip_wrapper_prefix(checkpoint.get('state_dict', checkpoint))


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
