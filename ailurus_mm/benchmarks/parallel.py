"""Spreading an evaluation grid over processes: the figures do not depend
on it, only the wall time."""
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, List, Sequence, TypeVar

Item = TypeVar('Item')
Row = TypeVar('Row')


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
    with ProcessPoolExecutor(
            len(arguments),
            mp_context=multiprocessing.get_context('spawn')) as pool:
        parts = list(pool.map(run, arguments))
    return [row for part in parts for row in part]
