"""Distributed training on CPU: two gloo ranks through torchrun and
tools/train.py --launcher pytorch train a tiny AiluRus Segmenter."""
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

from conftest import CONFIGS, REPO, write_tiny_config

AILURUS_B = osp.join(
    CONFIGS, 'segmenter',
    'ailurus_segmenter_vit-b_mask_8xb1-160k_ade20k-512x512.py')

# Saves every rank's weights before training and after each iteration, and
# the images each rank trained on.
RANK_DUMP = '''
import os

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class RankDumpHook(Hook):

    def before_train(self, runner):
        self._save(runner, 'start', [])

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        images = [s.img_path for s in data_batch['data_samples']]
        self._save(runner, f'iter{runner.iter + 1}', images)

    def _save(self, runner, tag, images):
        model = runner.model.module if hasattr(runner.model, 'module') \\
            else runner.model
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        path = os.path.join(runner.work_dir, f'{tag}_rank{get_rank()}.pt')
        torch.save({'state_dict': state, 'images': images,
                    'wrapper': type(runner.model).__name__}, path)
'''


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason='the CPU path')
def test_two_gloo_ranks_train_and_synchronise(tmp_path, ade20k_root):
    from ailurus_mm.checkpoint import (check_state_dict,
                                       checkpoint_state_dict,
                                       read_checkpoint)

    (tmp_path / 'rank_dump.py').write_text(RANK_DUMP)
    cfg = write_tiny_config(
        str(tmp_path / 'dist.py'), AILURUS_B, ade20k_root, iters=2,
        backbone=dict(cluster_layer=0, num_clusters=0.5),
        extra="custom_imports = dict(imports=['ailurus_mm.models', "
        "'rank_dump'], allow_failed_imports=False)\n"
        "custom_hooks = [dict(type='RankDumpHook')]\n")
    work = tmp_path / 'work'
    env = dict(os.environ, OMP_NUM_THREADS='1',
               PYTHONPATH=os.pathsep.join(
                   [REPO, str(tmp_path), os.environ.get('PYTHONPATH', '')]))
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone',
           '--nproc_per_node=2', osp.join(REPO, 'tools', 'train.py'), cfg,
           '--launcher', 'pytorch', '--work-dir', str(work)]
    proc = subprocess.run(cmd, cwd=str(tmp_path), env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-8000:]
    assert 'set_device' not in proc.stdout

    dumps = {(tag, rank): torch.load(work / f'{tag}_rank{rank}.pt')
             for tag in ('start', 'iter1', 'iter2') for rank in (0, 1)}
    assert dumps['iter1', 0]['wrapper'] == 'MMDistributedDataParallel'
    # the ranks trained on different images ...
    assert set(dumps['iter1', 0]['images']).isdisjoint(
        dumps['iter1', 1]['images'])
    for tag in ('start', 'iter1', 'iter2'):
        ours, theirs = (dumps[tag, r]['state_dict'] for r in (0, 1))
        assert list(ours) == list(theirs)
        for key in ours:
            # ... and still hold identical weights: gradients were averaged
            assert torch.equal(ours[key], theirs[key]), (tag, key)
    start, trained = dumps['start', 0]['state_dict'], \
        dumps['iter1', 0]['state_dict']
    changed = [k for k in start if not torch.equal(start[k], trained[k])]
    assert any(k.startswith('backbone.layers.1.') for k in changed)
    assert any(k.startswith('decode_head.') for k in changed)

    # rank 0's checkpoint loads strictly and holds the final weights
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    import ailurus_mm.models  # noqa: F401
    init_default_scope('mmseg')
    model = MODELS.build(
        Config.fromfile(cfg, import_custom_modules=False).model)
    state_dict = checkpoint_state_dict(read_checkpoint(
        str(work / 'iter_2.pth')))
    check_state_dict(model, state_dict)
    for key, value in dumps['iter2', 0]['state_dict'].items():
        assert torch.equal(state_dict[key], value), key
