"""The grid's processes (benchmarks/parallel.py): rows come back in chunk
order, and no process outlives the run, whether a chunk fails or the
benchmark itself is killed."""
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import pytest

from ailurus_mm.benchmarks.parallel import spread

HERE = osp.dirname(osp.abspath(__file__))


def _square(argument):
    return [x * x for x in argument[0]]


def _work(chunk):
    return (chunk, )


def _sleep_or_fail(argument):
    """A chunk ``('sleep', pid_file)`` writes its pid and sleeps; a chunk
    ``('fail', pid_file)`` waits for that pid, then raises."""
    (what, pid_file), = argument[0]
    if what == 'sleep':
        with open(pid_file + '.tmp', 'w') as f:
            f.write(str(os.getpid()))
        os.replace(pid_file + '.tmp', pid_file)
        time.sleep(120)
        return []
    for _ in range(600):
        if osp.exists(pid_file):
            raise ValueError('this chunk fails')
        time.sleep(0.05)
    raise AssertionError('the sleeping chunk never started')


def _gone(pid: int) -> bool:
    """No such process, or only its zombie (nobody reaped it yet)."""
    try:
        with open(f'/proc/{pid}/status') as f:
            return any(line.startswith('State:') and 'Z' in line
                       for line in f)
    except FileNotFoundError:
        return True


def _wait_gone(pid: int, seconds: float = 20) -> bool:
    for _ in range(int(seconds / 0.1)):
        if _gone(pid):
            return True
        time.sleep(0.1)
    return _gone(pid)


def _wait_for(path: str, seconds: float = 120) -> int:
    for _ in range(int(seconds / 0.1)):
        if osp.exists(path):
            with open(path) as f:
                return int(f.read())
        time.sleep(0.1)
    raise AssertionError(f'{path} was never written')


def test_rows_come_back_in_chunk_order():
    rows = spread([1, 2, 3, 4, 5], 2, _work, _square)
    # chunks are round-robin: [1, 3, 5] then [2, 4]
    assert rows == [1, 9, 25, 4, 16]


@pytest.mark.skipif(not sys.platform.startswith('linux'),
                    reason='reads /proc')
def test_a_failing_chunk_stops_the_others(tmp_path):
    pid_file = str(tmp_path / 'pid')
    with pytest.raises(ValueError, match='this chunk fails'):
        spread([('sleep', pid_file), ('fail', pid_file)], 2, _work,
               _sleep_or_fail)
    # the sleeping chunk is stopped with the failure, not left running
    assert _wait_gone(_wait_for(pid_file))


@pytest.mark.skipif(not sys.platform.startswith('linux'),
                    reason='PR_SET_PDEATHSIG is Linux only')
def test_killing_the_benchmark_ends_its_processes(tmp_path):
    pid_file = str(tmp_path / 'pid')
    script = (
        'import sys; sys.path.insert(0, {here!r})\n'
        'from ailurus_mm.benchmarks.parallel import spread\n'
        'import test_parallel as t\n'
        'spread([("sleep", {pid!r})], 1, t._work, t._sleep_or_fail)\n'
    ).format(here=HERE, pid=pid_file)
    # (its resource tracker cleans up the killed pool's semaphores, and
    # would warn about them)
    parent = subprocess.Popen([sys.executable, '-c', script],
                              env=dict(os.environ, PYTHONWARNINGS='ignore'))
    try:
        worker = _wait_for(pid_file)
        assert not _gone(worker)
        parent.send_signal(signal.SIGKILL)  # no finally runs in the parent
        parent.wait(30)
        assert _wait_gone(worker), f'grid process {worker} outlived it'
    finally:
        if parent.poll() is None:
            parent.kill()


@pytest.mark.skipif(not sys.platform.startswith('linux'),
                    reason='PR_SET_PDEATHSIG is Linux only')
def test_a_worker_whose_parent_died_during_its_start_exits(tmp_path):
    """The parent is killed right after it spawns the worker, before the
    worker can ask for PR_SET_PDEATHSIG: the worker sees it and exits
    instead of running its chunk under PID 1."""
    pids, pid_file = str(tmp_path / 'pids'), str(tmp_path / 'pid')
    script = (
        'import os, signal, sys; sys.path.insert(0, {here!r})\n'
        'from ailurus_mm.benchmarks import parallel\n'
        'import test_parallel as t\n'
        'class Killed(parallel.ProcessPoolExecutor):\n'
        '    def submit(self, *args, **kwargs):\n'
        '        future = super().submit(*args, **kwargs)\n'
        '        with open({pids!r}, "w") as f:\n'
        '            f.write(" ".join(map(str, self._processes)))\n'
        '        os.kill(os.getpid(), signal.SIGKILL)\n'
        'parallel.ProcessPoolExecutor = Killed\n'
        'parallel.spread([("sleep", {pid!r})], 1, t._work, t._sleep_or_fail)\n'
    ).format(here=HERE, pids=pids, pid=pid_file)
    parent = subprocess.Popen([sys.executable, '-c', script],
                              env=dict(os.environ, PYTHONWARNINGS='ignore'))
    parent.wait(60)
    workers = [int(p) for p in open(pids).read().split()]
    assert workers
    for worker in workers:
        assert _wait_gone(worker, 60), f'worker {worker} outlived its parent'
    assert not osp.exists(pid_file)  # its chunk never ran


def test_the_tools_import_the_mm_stack_only_when_run():
    """A spawned worker imports the tool as its main module: that must not
    load torch or mmengine before the worker asks to die with its
    parent."""
    for tool in ('accuracy_benchmark', 'benchmark', 'sweep', 'visualize',
                 'demo'):
        path = osp.join(osp.dirname(HERE), 'tools', tool + '.py')
        code = ('import runpy, sys\n'
                f"runpy.run_path({path!r}, run_name='__mp_main__')\n"
                "print(sorted(m for m in ('torch', 'mmengine', 'mmseg') "
                'if m in sys.modules))\n')
        out = subprocess.run([sys.executable, '-c', code],
                             capture_output=True, text=True, timeout=120)
        assert out.stdout.strip() == '[]', (tool, out.stdout, out.stderr)
