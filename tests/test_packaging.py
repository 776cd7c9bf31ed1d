"""A regular (non-editable) install: the configs ship inside the package,
the API and a user's config find them, py.typed ships."""
import os
import os.path as osp
import shutil
import subprocess
import sys

import pytest

from conftest import REPO

CHECK = r'''
import os.path as osp
import sys

import ailurus_mm
from mmengine.config import Config

root = osp.dirname(ailurus_mm.__file__)
assert root.startswith(sys.argv[1]), root
assert osp.isfile(osp.join(root, 'py.typed'))
assert ailurus_mm.config_dir() == osp.join(root, '.mim', 'configs')
path = ailurus_mm.find_config('segmenter_vitl_ailurus.py')
assert path.startswith(root), path
cfg = ailurus_mm.load_config('segmenter_vitl_ailurus.py')
assert cfg.model.backbone.type == 'AiluRusViT'
# A user's config inherits ours by path (mmengine 0.10 resolves
# ``package::`` only for OpenMMLab's own packages).
with open(sys.argv[2], 'w') as f:
    f.write(f"_base_ = [{ailurus_mm.find_config(sys.argv[3])!r}]\n"
            'model = dict(backbone=dict(num_clusters=0.4))\n')
user = Config.fromfile(sys.argv[2])
print(user.model.backbone.type, user.model.backbone.num_clusters,
      user.model.decode_head.num_classes)
from ailurus_mm.benchmarks.accuracy.data import PROXY
from ailurus_mm.benchmarks.demo import DEMO_CONFIG, shipped_checkpoint
assert osp.isfile(ailurus_mm.find_config(DEMO_CONFIG)), DEMO_CONFIG
assert shipped_checkpoint(PROXY).startswith(root), shipped_checkpoint(PROXY)
'''


@pytest.mark.slow
def test_non_editable_install_ships_configs(tmp_path):
    # Build from a copy: building in the checkout would leave a copy of the
    # configs in ailurus_mm/.mim that shadows configs/.
    source = tmp_path / 'src'
    source.mkdir()
    for name in ('setup.py', 'README.md'):
        shutil.copy(osp.join(REPO, name), source / name)
    for name in ('ailurus_mm', 'configs'):
        shutil.copytree(osp.join(REPO, name), source / name,
                        ignore=shutil.ignore_patterns('__pycache__', '.mim'))
    target = tmp_path / 'site'
    proc = subprocess.run(
        [sys.executable, '-m', 'pip', 'install', '--no-deps',
         '--no-build-isolation', '--no-index', '--quiet', '--target',
         str(target), str(source)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:]
    (tmp_path / 'check.py').write_text(CHECK)
    outside = tmp_path / 'elsewhere'
    outside.mkdir()
    env = dict(os.environ, PYTHONPATH=str(target))
    proc = subprocess.run(
        [sys.executable, str(tmp_path / 'check.py'), str(target),
         str(tmp_path / 'user.py'),
         'segmenter/ailurus_segmenter_vit-b_mask_8xb1-160k_ade20k-512x512.py'],
        cwd=str(outside), env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert proc.stdout.split()[-3:] == ['AiluRusViT', '0.4', '150']
