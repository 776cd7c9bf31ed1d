"""mmengine Runner checkpoints under torch's ``weights_only`` loader.

torch >= 2.6 loads with ``weights_only=True``. Checkpoints written by
mmengine's Runner hold more than tensors: the message hub's
``HistoryBuffer`` objects, numpy arrays, dtypes and scalars in ``meta``. Our
decision: keep ``weights_only=True`` (no code runs when a checkpoint is
read) and allow exactly the types mmengine's Runner writes: numpy arrays,
dtypes and scalars, and ``HistoryBuffer`` with a ``getattr`` restricted to
its statistics methods (the real ``getattr`` would let a malicious file
reach arbitrary code).

Nothing is allowed by importing this package. It is enabled explicitly:

- scoped, by :func:`mmengine_checkpoint_globals` (a context manager around
  one read; what ``StrictLoadHook``, our tools and
  :func:`ailurus_mm.checkpoint.read_checkpoint` use);
- process-wide, by the one documented call
  :func:`allow_mmengine_checkpoints` (e.g. before ``mmseg.apis.init_model``
  reads a Runner checkpoint in a user's script).
"""
import contextlib
import pickle
from typing import Iterator, List

import torch


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


@contextlib.contextmanager
def mmengine_checkpoint_globals() -> Iterator[None]:
    """Allow the types of mmengine Runner checkpoints inside the block only.

    Globals that were already allowed (e.g. by
    :func:`allow_mmengine_checkpoints`) stay allowed after the block. A
    no-op on torch versions without ``safe_globals``.
    """
    safe_globals = getattr(torch.serialization, 'safe_globals', None)
    if safe_globals is None:
        yield
        return
    present = set(torch.serialization.get_safe_globals())
    added = [g for g in runner_checkpoint_globals() if g not in present]
    with safe_globals(added):
        yield


def allow_mmengine_checkpoints() -> None:
    """Allow the types of mmengine Runner checkpoints for the whole process.

    The one documented call for code that reads Runner checkpoints outside
    our tools and ``StrictLoadHook`` (e.g. ``mmseg.apis.init_model(cfg,
    'iter_8000.pth')``). Idempotent; a no-op on torch versions without
    ``add_safe_globals``.
    """
    add_safe_globals = getattr(torch.serialization, 'add_safe_globals', None)
    if add_safe_globals is not None:
        add_safe_globals(runner_checkpoint_globals())
