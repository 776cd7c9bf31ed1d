"""The plugin does not depend on the benchmark suite; the algorithm does
not depend on mm; converting a model loads no training pipeline."""
import ast
import glob
import os.path as osp
import subprocess
import sys

from conftest import REPO

PACKAGE = osp.join(REPO, 'ailurus_mm')
# The suite and the test helpers; everything else is the plugin, found by
# walking the package (a new module is checked without an edit here).
SUITE = ('benchmarks', 'testing')


def _imports(path):
    tree = ast.parse(open(path).read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolved against the package
                package = osp.relpath(osp.dirname(path), REPO).split(osp.sep)
                base = package[:len(package) - node.level + 1]
                yield '.'.join(base + ([node.module] if node.module else []))
            else:
                yield node.module


def _files(place):
    path = osp.join(PACKAGE, place)
    files = [path] if path.endswith('.py') else sorted(
        glob.glob(osp.join(path, '**', '*.py'), recursive=True))
    assert files, place
    return files


def test_ops_import_torch_only():
    allowed_roots = set(sys.stdlib_module_names) | {'torch', 'ailurus_mm'}
    files = _files('ops')
    assert len(files) >= 8
    for path in files:
        for name in _imports(path):
            assert name.split('.')[0] in allowed_roots, (path, name)
            if name.startswith('ailurus_mm'):
                assert name.startswith('ailurus_mm.ops'), (path, name)


def test_models_import_neither_the_engine_nor_the_tools():
    for path in _files('models'):
        for name in _imports(path):
            assert not name.startswith((
                'ailurus_mm.engine', 'ailurus_mm.launch',
                'ailurus_mm.benchmarks', 'ailurus_mm.testing')), (path, name)


def _plugin_files():
    files = sorted(glob.glob(osp.join(PACKAGE, '**', '*.py'),
                             recursive=True))
    return [f for f in files
            if osp.relpath(f, PACKAGE).split(osp.sep)[0] not in SUITE]


def test_the_plugin_never_imports_the_suite():
    files = _plugin_files()
    assert len(files) >= 25
    assert osp.join(PACKAGE, 'zoo.py') in files
    assert not any('benchmarks' in f for f in files)
    for path in files:
        for name in _imports(path):
            assert not name.startswith(('ailurus_mm.benchmarks',
                                        'ailurus_mm.testing')), (path, name)


def test_converting_a_model_loads_no_training_pipeline():
    code = '''
import sys
import ailurus_mm
ailurus_mm.apply, ailurus_mm.to_ailurus_config, ailurus_mm.ClusterConfig
ailurus_mm.StrictLoadHook, ailurus_mm.read_checkpoint
import ailurus_mm.models, ailurus_mm.engine, ailurus_mm.datasets
loaded = sorted(m for m in sys.modules
                if m.startswith(('ailurus_mm.benchmarks', 'ailurus_mm.testing',
                                 'ailurus_mm.launch')))
print(loaded)
'''
    out = subprocess.run([sys.executable, '-c', code], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == '[]'
