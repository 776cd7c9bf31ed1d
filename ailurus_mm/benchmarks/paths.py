"""Where the suite's tools write: checked (and created) before any work,
an input is never an output, and a finished result is never silently
replaced.

Every tool calls these before it reads data or builds a model, so a bad
path costs seconds, not a finished run.
"""
import errno
import hashlib
import json
import math
import os
import os.path as osp
from typing import Any, Iterable, Optional, Sequence


class OutputPathError(ValueError):
    """An output path cannot be used; the message names the flag."""


def _same(a: str, b: str) -> bool:
    if osp.exists(a) and osp.exists(b):
        return osp.samefile(a, b)
    return osp.abspath(a) == osp.abspath(b)


def prepare_dir(path: str, flag: str = '--out-dir') -> str:
    """Create the folder ``path`` (and its parents) now.

    Raises:
        OutputPathError: ``path`` or a parent is a file, or it cannot be
            created.
    """
    try:
        os.makedirs(path, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as error:
        raise OutputPathError(f'{flag} {path}: a file is in the way '
                              f'({error.filename or path} is not a folder)'
                              ) from error
    except OSError as error:
        raise OutputPathError(f'{flag} {path} cannot be created: '
                              f'{os.strerror(error.errno or errno.EIO)}'
                              ) from error
    if not os.access(path, os.W_OK):
        raise OutputPathError(f'{flag} {path} is not writable')
    return path


def prepare_file(path: str, flag: str = '--out',
                 inputs: Sequence[str] = (), overwrite: bool = False) -> str:
    """Check the output file ``path`` and create its folder now.

    Raises:
        OutputPathError: ``path`` is one of ``inputs``, a folder, already
            exists (unless ``overwrite``), or its folder cannot be made.
    """
    for source in inputs:
        if _same(path, source):
            raise OutputPathError(f'{flag} {path} is also an input: it would '
                                  'be overwritten; write elsewhere')
    if osp.isdir(path):
        raise OutputPathError(f'{flag} {path} is a folder, expected a file')
    if osp.exists(path) and not overwrite:
        raise OutputPathError(
            f'{flag} {path} exists: it holds an earlier result, which this '
            'run would replace; remove it, write elsewhere or pass '
            '--overwrite')
    prepare_dir(osp.dirname(osp.abspath(path)), flag)
    return path


def refuse_results(out_dir: str, names: Iterable[str],
                   overwrite: bool = False,
                   flag: str = '--out-dir') -> None:
    """Raise :class:`OutputPathError` if ``out_dir`` already holds one of
    the result files ``names`` (an earlier, finished run), unless
    ``overwrite``."""
    if overwrite:
        return
    found = [n for n in names if osp.exists(osp.join(out_dir, n))]
    if found:
        raise OutputPathError(
            f'{flag} {out_dir} already holds the results of an earlier run '
            f'({", ".join(found)}), which this run would replace: choose '
            'another folder, move them, or pass --overwrite')


def strict_json(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, inf) as ``None``:
    strict JSON, which ``json.dump`` does not write by default."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value


def write_json(data: Any, path: str) -> None:
    """Write ``data`` as strict JSON (no NaN), indented."""
    with open(path, 'w') as f:
        json.dump(strict_json(data), f, indent=2, allow_nan=False)


def file_id(path: str) -> str:
    """A file's identity: the first 16 hex digits of its sha256."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()[:16]


class RunLock:
    """``<out_dir>/.lock`` holding the process id while a run writes
    there: a second run on the same folder is refused while the first is
    alive (a stale lock of a dead process is taken over).

    Use as a context manager; the folder must exist.
    """

    def __init__(self, out_dir: str, flag: str = '--out-dir') -> None:
        self.path = osp.join(out_dir, '.lock')
        self.flag, self.out_dir = flag, out_dir
        self._held = False

    def _holder(self) -> Optional[int]:
        try:
            with open(self.path) as f:
                pid = int(f.read().strip() or 0)
        except (OSError, ValueError):
            return None
        if pid <= 0 or pid == os.getpid():
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None  # stale
        except PermissionError:
            pass
        return pid

    def check(self) -> None:
        """Raise :class:`OutputPathError` if another live run holds the
        folder."""
        holder = self._holder()
        if holder is not None:
            raise OutputPathError(
                f'{self.flag} {self.out_dir} is in use by another run '
                f'(process {holder}); wait for it or choose another folder')

    def __enter__(self) -> 'RunLock':
        self.check()
        with open(self.path, 'w') as f:
            f.write(str(os.getpid()))
        self._held = True
        return self

    def __exit__(self, *exc) -> None:
        if self._held and osp.exists(self.path):
            os.remove(self.path)
        self._held = False
