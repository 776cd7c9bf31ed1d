"""mmengine Runner checkpoints under torch's ``weights_only`` loader.

torch >= 2.6 loads with ``weights_only=True``. Checkpoints written by
mmengine's Runner hold more than tensors: the message hub's
``HistoryBuffer`` objects, numpy arrays, dtypes and scalars in ``meta``. Our
decision: keep ``weights_only=True`` (no code runs when a checkpoint is
read) and allow exactly the types mmengine's Runner writes: numpy arrays,
dtypes and scalars, and ``HistoryBuffer`` with a ``getattr`` restricted to
its statistics methods (the real ``getattr`` would let a malicious file
reach arbitrary code).

The same holds for checkpoints fetched from a URL: mmengine's
``load_from_http`` (behind ``http(s)://``, ``torchvision://``,
``open-mmlab://`` URLs and ``mmcls://``) reads the download with
``torch.hub.load_state_dict_from_url``, whose ``weights_only`` is False, so
a downloaded pickle would run code. While the types above are allowed, the
download is read by :func:`load_from_url` instead: fetched into torch hub's
cache as before, then read with ``weights_only=True`` like a local file.

Nothing is allowed by importing this package. It is enabled explicitly:

- scoped, by :func:`mmengine_checkpoint_globals` (a context manager around
  one read; what ``StrictLoadHook``, our tools and
  :func:`ailurus_mm.checkpoint.read_checkpoint` use);
- process-wide, by the one documented call
  :func:`allow_mmengine_checkpoints` (e.g. before ``mmseg.apis.init_model``
  reads a Runner checkpoint in a user's script).
"""
import contextlib
import os
import os.path as osp
import pickle
from typing import Any, Dict, Iterator, List, Optional
from urllib.parse import urlparse

import torch
from mmengine.dist import get_dist_info
from mmengine.runner import checkpoint as mmengine_checkpoint

URL_PREFIXES = ('http://', 'https://')


def _history_buffer_getattr(obj, name: str):
    """Stands in for ``getattr`` while a checkpoint is unpickled.

    mmengine pickles ``HistoryBuffer.statistics_methods`` as
    ``getattr(HistoryBuffer, 'min')`` etc.; only these lookups are answered.
    """
    from mmengine.logging.history_buffer import HistoryBuffer

    allowed = {'min', 'max', 'mean', 'current'}
    allowed.update(HistoryBuffer._statistics_methods)  # registered ones
    if obj is HistoryBuffer and name in allowed:
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'checkpoint asks for getattr({obj!r}, {name!r}); only '
        'HistoryBuffer statistics are allowed')


def runner_checkpoint_globals() -> List:
    """The globals mmengine's Runner checkpoints need, in the form
    ``torch.serialization.add_safe_globals`` takes."""
    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer

    types: List = [
        HistoryBuffer, np.ndarray, np.dtype,
        (_history_buffer_getattr, 'builtins.getattr')
    ]
    # numpy moved ``core`` to ``_core`` in 2.0; pickles name either module,
    # whichever numpy wrote them, so both names are allowed for the
    # functions of the installed one.
    from numpy.core import multiarray
    for name in ('_reconstruct', 'scalar'):
        function = getattr(multiarray, name)
        types += [(function, f'{core}.multiarray.{name}')
                  for core in ('numpy.core', 'numpy._core')]
    # Concrete dtype classes (numpy >= 1.25), e.g. Float64DType.
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        types += [
            getattr(dtypes, name) for name in dir(dtypes)
            if name.endswith('DType')
        ]
    return types


def url_cache_path(url: str, model_dir: Optional[str] = None) -> str:
    """Where torch hub caches the download of ``url``
    (``$TORCH_HOME/hub/checkpoints/<file name>``, as
    ``torch.hub.load_state_dict_from_url`` does)."""
    if model_dir is None:
        model_dir = osp.join(torch.hub.get_dir(), 'checkpoints')
    name = osp.basename(urlparse(url).path)
    if not name:
        raise ValueError(f'{url} names no file to download')
    return osp.join(model_dir, name)


def load_from_url(url: str, map_location: Any = None,
                  model_dir: Optional[str] = None,
                  progress: bool = False) -> Dict:
    """mmengine's ``load_from_http``, reading the file with
    ``weights_only=True`` (no code runs): downloaded into torch hub's cache
    unless it is there (by rank 0 first in a distributed run), then read
    like a local checkpoint."""
    path = url_cache_path(url, model_dir)
    rank, world_size = get_dist_info()

    def fetch() -> None:
        if not osp.isfile(path):
            os.makedirs(osp.dirname(path), exist_ok=True)
            torch.hub.download_url_to_file(url, path, progress=progress)

    if rank == 0:
        fetch()
    if world_size > 1:
        torch.distributed.barrier()
        if rank > 0:
            fetch()
    return torch.load(path, map_location=map_location, weights_only=True)


@contextlib.contextmanager
def _safe_url_loader() -> Iterator[None]:
    """mmengine reads URLs with :func:`load_from_url` inside the block."""
    schemes = mmengine_checkpoint.CheckpointLoader._schemes
    saved = {p: schemes[p] for p in URL_PREFIXES if p in schemes}
    original = mmengine_checkpoint.load_from_http
    mmengine_checkpoint.load_from_http = load_from_url
    schemes.update({p: load_from_url for p in URL_PREFIXES})
    try:
        yield
    finally:
        mmengine_checkpoint.load_from_http = original
        schemes.update(saved)


def _use_safe_url_loader() -> None:
    mmengine_checkpoint.load_from_http = load_from_url
    mmengine_checkpoint.CheckpointLoader._schemes.update(
        {p: load_from_url for p in URL_PREFIXES})


@contextlib.contextmanager
def mmengine_checkpoint_globals() -> Iterator[None]:
    """Allow the types of mmengine Runner checkpoints inside the block only,
    and read URLs with :func:`load_from_url`.

    Globals that were already allowed (e.g. by
    :func:`allow_mmengine_checkpoints`) stay allowed after the block. A
    no-op on torch versions without ``safe_globals``.
    """
    safe_globals = getattr(torch.serialization, 'safe_globals', None)
    with _safe_url_loader():
        if safe_globals is None:
            yield
            return
        present = set(torch.serialization.get_safe_globals())
        added = [g for g in runner_checkpoint_globals() if g not in present]
        with safe_globals(added):
            yield


def allow_mmengine_checkpoints() -> None:
    """Allow the types of mmengine Runner checkpoints for the whole process,
    and read URLs with :func:`load_from_url` from now on.

    The one documented call for code that reads Runner checkpoints outside
    our tools and ``StrictLoadHook`` (e.g. ``mmseg.apis.init_model(cfg,
    'iter_8000.pth')``). Idempotent; a no-op on torch versions without
    ``add_safe_globals``.
    """
    _use_safe_url_loader()
    add_safe_globals = getattr(torch.serialization, 'add_safe_globals', None)
    if add_safe_globals is not None:
        add_safe_globals(runner_checkpoint_globals())
