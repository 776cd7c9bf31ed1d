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
    if isinstance(error, pickle.UnpicklingError) and \
            'Weights only load failed' in str(error):
        return CheckpointReadError(
            f'{filename}: refused to load {_refused_global(error)}, which '
            'is not allowed when loading with torch weights_only=True (only '
            'tensors, containers, numpy data and mmengine\'s message hub '
            'are). Loading such a file can run arbitrary code; if you trust '
            'it, re-save its state dict with plain tensors.')
    if '://' not in filename and osp.isfile(filename) and (
            isinstance(error, (EOFError, pickle.UnpicklingError))
            or 'zip archive' in str(error)):
        return CheckpointReadError(
            f'{filename} is truncated or corrupt ({osp.getsize(filename)} '
            f'bytes): {type(error).__name__}: {error}')
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

    if '://' not in filename and osp.isdir(filename):
        raise CheckpointReadError(
            f'{filename} is a directory, not a checkpoint file (give the '
            '.pth file inside it, e.g. a work dir\'s iter_N.pth)')
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
        checkpoint: Dict,
        source: str = 'the checkpoint') -> 'OrderedDict[str, torch.Tensor]':
    """The model weights of a checkpoint (its ``state_dict``, or the dict
    itself if it is a bare state dict), ``module.`` prefixes stripped.

    Raises:
        CheckpointReadError: What holds the weights is not a dict with
            string keys (naming ``source`` and what it holds).
    """
    if not isinstance(checkpoint, dict):
        raise CheckpointReadError(
            f'{source} holds a {type(checkpoint).__name__}, not a checkpoint '
            '(a dict of tensors, or a dict with a state_dict)')
    state_dict = checkpoint.get('state_dict', checkpoint)
    where = "its 'state_dict'" if 'state_dict' in checkpoint else 'it'
    if not isinstance(state_dict, dict):
        raise CheckpointReadError(
            f'{source}: {where} is a {type(state_dict).__name__} '
            f'({_short(state_dict)}), expected a dict of parameter names to '
            'tensors')
    bad = [key for key in state_dict if not isinstance(key, str)]
    if bad:
        raise CheckpointReadError(
            f'{source}: {where} has keys that are not parameter names: '
            f'{_short(bad)}')
    return strip_wrapper_prefix(state_dict)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + '...'


def _listing(keys: List[str], limit: int = 50) -> str:
    shown = ', '.join(keys[:limit])
    more = len(keys) - limit
    return shown + (f', ... ({more} more)' if more > 0 else '')


def state_dict_mismatch(model: nn.Module,
                        state_dict: Dict) -> Tuple[List[str], List[str],
                                                   List[str]]:
    """Keys missing from ``state_dict``, unexpected in it, and clashes.

    Returns:
        ``(missing, unexpected, wrong)``; the last holds
        ``'key: checkpoint (..) vs model (..)'`` strings for shape clashes
        and for a dtype of another kind (an integer or bool tensor where the
        model has floating point, or the reverse: loading would cast it
        silently), and ``'key: checkpoint holds a str, not a tensor'`` for
        values that are not tensors (mmengine would skip them silently).
    """
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    wrong = []
    for key in sorted(set(own) & set(state_dict)):
        value = state_dict[key]
        if not isinstance(value, torch.Tensor):
            wrong.append(f'{key}: checkpoint holds a '
                         f'{type(value).__name__} ({_short(value)}), not a '
                         'tensor')
        elif tuple(value.shape) != tuple(own[key].shape):
            wrong.append(f'{key}: checkpoint {tuple(value.shape)} vs model '
                         f'{tuple(own[key].shape)}')
        elif _dtype_kind(value) != _dtype_kind(own[key]):
            wrong.append(f'{key}: checkpoint {value.dtype} vs model '
                         f'{own[key].dtype}')
    return missing, unexpected, wrong


def _dtype_kind(tensor: torch.Tensor) -> str:
    if tensor.dtype == torch.bool:
        return 'bool'
    if tensor.is_floating_point() or tensor.is_complex():
        return 'float'
    return 'int'


def check_state_dict(model: nn.Module, state_dict: Dict,
                     source: str = 'checkpoint') -> None:
    """Raise :class:`CheckpointMismatchError` unless the keys and shapes of
    ``state_dict`` are exactly those of ``model``."""
    missing, unexpected, wrong = state_dict_mismatch(model, state_dict)
    if not (missing or unexpected or wrong):
        return
    lines = [f'{source} does not fit {type(model).__name__}:']
    if missing:
        lines.append(f'  missing in the checkpoint ({len(missing)}): '
                     f'{_listing(missing)}')
    if unexpected:
        lines.append(f'  unexpected in the checkpoint ({len(unexpected)}): '
                     f'{_listing(unexpected)}')
    not_tensors = [w for w in wrong if w.endswith('not a tensor')]
    wrong_shape = [w for w in wrong if not w.endswith('not a tensor')]
    if wrong_shape:
        lines.append(f'  shape or dtype mismatch ({len(wrong_shape)}): '
                     f'{_listing(wrong_shape)}')
    if not_tensors:
        lines.append(f'  not tensors ({len(not_tensors)}): '
                     f'{_listing(not_tensors)}')
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
    state_dict = checkpoint_state_dict(checkpoint, source)
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
    checkpoint = read_checkpoint(filename, map_location)
    load_state_dict_strictly(model, checkpoint, filename)
    return checkpoint


def checkpoint_config_text(checkpoint: Dict) -> Optional[str]:
    """The config text mmengine's Runner stores in ``meta['cfg']``, if any."""
    meta = checkpoint.get('meta')
    if isinstance(meta, dict) and isinstance(meta.get('cfg'), str):
        return meta['cfg']
    return None
