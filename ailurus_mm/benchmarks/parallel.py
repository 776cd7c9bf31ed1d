"""Spreading an evaluation grid over processes: the figures do not depend
on it, only the wall time.

The grid's processes end with the parent: on Linux each asks the kernel
for SIGTERM when its parent dies (``PR_SET_PDEATHSIG``, so a killed
benchmark leaves no workers busy), and an error or Ctrl-C in the parent
stops them instead of waiting for their chunks.

The request is the first thing a worker does: this module imports nothing
heavy, the entry scripts (``tools/*.py``) import the mm stack only under
``if __name__ == '__main__'`` (a spawned worker imports them as its main
module), and a worker whose parent died before the request exits at once.
"""
import ctypes
import multiprocessing
import os
import signal
import sys
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from typing import Callable, List, Sequence, TypeVar

Item = TypeVar('Item')
Row = TypeVar('Row')

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """Ask the kernel to end this process when its parent dies (Linux; a
    no-op elsewhere, where the parent's ``finally`` still stops it); exit
    now if ``parent`` is no longer it (it died before the request)."""
    if not sys.platform.startswith('linux'):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:  # pragma: no cover - no libc to ask
        return
    libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def spread(items: Sequence[Item], jobs: int,
           work: Callable[[List[Item]], tuple],
           run: Callable[[tuple], List[Row]]) -> List[Row]:
    """Run ``run(work(chunk))`` for ``jobs`` round-robin chunks of
    ``items`` in spawned processes (a fresh interpreter each: its own torch
    threads, nothing inherited); the rows of every chunk, concatenated.

    Args:
        items: What to evaluate (e.g. settings), picklable.
        jobs: Processes, ``>= 1``.
        work: Makes the picklable argument of one process from its chunk.
        run: The process's function (module level, picklable).
    """
    chunks = [list(items[i::jobs]) for i in range(jobs)]
    arguments = [work(chunk) for chunk in chunks if chunk]
    pool = ProcessPoolExecutor(
        len(arguments), mp_context=multiprocessing.get_context('spawn'),
        initializer=die_with_parent, initargs=(os.getpid(), ))
    try:
        futures = [pool.submit(run, argument) for argument in arguments]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        for future in done:
            if future.exception() is not None:
                raise future.exception()
        parts = [future.result() for future in futures]
    except BaseException:
        # An error in one chunk, or Ctrl-C: the other chunks' results are
        # lost anyway, so stop their processes now.
        processes = list((pool._processes or {}).values())
        for process in processes:
            process.terminate()
        for process in processes:
            process.join(10)
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return [row for part in parts for row in part]
