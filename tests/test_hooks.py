"""StrictLoadHook under mmengine's own Runner: strict load_from and resume,
no_finetune, registration without side effects; and the package layering."""
import glob
import os.path as osp
import subprocess
import sys

import pytest
import torch

from ailurus_mm.ops import ClusterConfig
from conftest import CONFIGS, REPO, write_tiny_config

AILURUS_B = osp.join(
    CONFIGS, 'segmenter',
    'ailurus_segmenter_vit-b_mask_8xb1-160k_ade20k-512x512.py')
KNOBS = dict(cluster_layer=0, num_clusters=0.5)


def _runner(cfg_path, work_dir, name, **options):
    from mmengine.config import Config
    from mmengine.runner import Runner

    cfg = Config.fromfile(cfg_path)
    cfg.custom_hooks = [dict(type='ailurus_mm.StrictLoadHook')]
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = name
    cfg.merge_from_dict(options)
    return Runner.from_cfg(cfg)


def _log(runner) -> str:
    with open(osp.join(runner.log_dir,
                       osp.basename(runner.log_dir) + '.log')) as f:
        return f.read()


@pytest.fixture(scope='module')
def trained(tmp_path_factory, ade20k_root):
    """A tiny AiluRus Segmenter trained 1 iteration by mmengine's Runner with
    the hook on: its config and its Runner checkpoint."""
    tmp = tmp_path_factory.mktemp('hooks')
    cfg = write_tiny_config(str(tmp / 'tiny.py'), AILURUS_B, ade20k_root,
                            iters=1, backbone=KNOBS)
    runner = _runner(cfg, tmp / 'work', 'trained')
    runner.train()
    return cfg, str(tmp / 'work' / 'iter_1.pth')


def _edited(trained_checkpoint, path, edit):
    from ailurus_mm.checkpoint import read_checkpoint

    checkpoint = read_checkpoint(trained_checkpoint)
    edit(checkpoint)
    torch.save(checkpoint, path)
    return path


def _drop_decode_head(checkpoint):
    for key in [k for k in checkpoint['state_dict']
                if k.startswith('decode_head.')]:
        del checkpoint['state_dict'][key]


def _misshape_ffn(checkpoint):
    key = 'backbone.layers.1.ffn.layers.0.0.weight'
    checkpoint['state_dict'][key] = torch.zeros(7, 32)


def test_hook_is_found_by_scope_without_side_effects():
    """Importing ailurus_mm.models allows nothing in torch's loader, and a
    config's dict(type='ailurus_mm.StrictLoadHook') finds the hook without
    custom_imports (mmengine imports ailurus_mm.registry)."""
    code = '''
import sys, torch
import mmseg.models
before = set(map(str, torch.serialization.get_safe_globals()))
import ailurus_mm.models
after = set(map(str, torch.serialization.get_safe_globals()))
assert after == before, after - before
assert not any('HistoryBuffer' in name for name in after), after
assert 'ailurus_mm.engine' not in sys.modules
assert 'ailurus_mm.benchmarks' not in sys.modules
from mmengine.registry import HOOKS, init_default_scope
init_default_scope('mmseg')
hook = HOOKS.build(dict(type='ailurus_mm.StrictLoadHook'))
print(type(hook).__module__, type(hook).__name__)
'''
    out = subprocess.run([sys.executable, '-c', code], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ['ailurus_mm.engine.hooks', 'StrictLoadHook']


@pytest.mark.parametrize('edit,match,resume', [
    (_drop_decode_head, r'missing in the checkpoint \(\d+\): '
     r'decode_head\.', False),
    (_drop_decode_head, r'missing in the checkpoint \(\d+\): '
     r'decode_head\.', True),
    (_misshape_ffn, r'shape or dtype mismatch \(1\): '
     r'backbone\.layers\.1\.ffn\.layers\.0\.0\.weight: checkpoint '
     r'\(7, 32\) vs model \(128, 32\)',
     True),
])
def test_checkpoint_that_does_not_fit_fails_before_training(
        tmp_path, trained, edit, match, resume):
    from ailurus_mm.checkpoint import CheckpointMismatchError

    cfg, checkpoint = trained
    bad = _edited(checkpoint, str(tmp_path / 'bad.pth'), edit)
    runner = _runner(cfg, tmp_path / 'w', f'bad_{resume}', load_from=bad,
                     resume=resume, train_cfg=dict(max_iters=2))
    with pytest.raises(CheckpointMismatchError, match=match):
        runner.train()
    assert not glob.glob(str(tmp_path / 'w' / '*.pth'))


def test_resume_through_the_tool_is_strict(tmp_path, trained):
    """tools/train.py --resume CKPT: mmengine alone resumes with exit code
    0 from a checkpoint without the decode head."""
    from ailurus_mm.checkpoint import CheckpointMismatchError
    from ailurus_mm.launch import run

    cfg, checkpoint = trained
    bad = _edited(checkpoint, str(tmp_path / 'bad.pth'), _drop_decode_head)
    with pytest.raises(CheckpointMismatchError,
                       match=f'{bad} does not fit AiluRusEncoderDecoder'):
        run('train', [cfg, '--resume', '--work-dir', str(tmp_path / 'w'),
                      '--cfg-options', f'load_from={bad}',
                      'train_cfg.max_iters=2'])


def test_resume_from_bare_state_dict_is_refused(tmp_path, trained):
    from ailurus_mm.checkpoint import NotRunnerCheckpointError

    cfg, checkpoint = trained

    def bare(ckpt):
        state_dict = ckpt['state_dict']
        ckpt.clear()
        ckpt.update(state_dict)

    bad = _edited(checkpoint, str(tmp_path / 'bare.pth'), bare)
    runner = _runner(cfg, tmp_path / 'w', 'bare', load_from=bad, resume=True,
                     train_cfg=dict(max_iters=2))
    with pytest.raises(NotRunnerCheckpointError,
                       match=rf'{bad} is not a Runner checkpoint \(it has no '
                       r'meta, state_dict, message_hub\).*use '
                       rf'load_from={bad} instead of --resume'):
        runner.train()


def test_resume_continues_with_the_hook(tmp_path, trained):
    import shutil

    cfg, checkpoint = trained
    work = tmp_path / 'w'
    work.mkdir()
    shutil.copy(checkpoint, work / 'iter_1.pth')
    (work / 'last_checkpoint').write_text(str(work / 'iter_1.pth'))
    runner = _runner(cfg, work, 'resumed', resume=True,
                     train_cfg=dict(max_iters=2))
    runner.train()
    assert runner.iter == 2
    assert 'resumed epoch: 0, iter: 1' in _log(runner)


def test_no_finetune_refuses_a_checkpoint_trained_with_ailurus(
        tmp_path, trained):
    cfg, checkpoint = trained
    runner = _runner(cfg, tmp_path / 'w', 'refused', load_from=checkpoint,
                     no_finetune=True)
    with pytest.raises(ValueError,
                       match=f'but {checkpoint} was trained with AiluRus'):
        runner.test()


def test_no_finetune_logs_the_settings(tmp_path, trained):
    from ailurus_mm.checkpoint import read_checkpoint

    cfg, checkpoint = trained
    vanilla = str(tmp_path / 'vanilla.pth')
    torch.save({'meta': {}, 'state_dict':
                read_checkpoint(checkpoint)['state_dict']}, vanilla)
    runner = _runner(cfg, tmp_path / 'w', 'settings', load_from=vanilla,
                     no_finetune=True)
    runner.test()
    log = _log(runner)
    assert (f'--no-finetune: evaluating the vanilla checkpoint {vanilla} '
            'with AiluRus, without fine-tuning: cluster_layer=0, '
            "num_clusters=0.5, k=5, spatial_weight=1.0, window=None, "
            f"prop_attn={ClusterConfig().prop_attn}, reducer='dpc_cover', "
            'recover_detail=False') \
        in log
    assert 'was not trained with AiluRusViT' not in log


def test_vanilla_checkpoint_without_no_finetune_is_flagged(tmp_path,
                                                           trained):
    from ailurus_mm.checkpoint import read_checkpoint

    cfg, checkpoint = trained
    vanilla = str(tmp_path / 'vanilla.pth')
    torch.save({'state_dict': read_checkpoint(checkpoint)['state_dict']},
               vanilla)
    runner = _runner(cfg, tmp_path / 'w', 'flagged', load_from=vanilla)
    runner.test()
    assert f'{vanilla} was not trained with AiluRusViT' in _log(runner)


@pytest.mark.parametrize('options,match', [
    (dict(), r'does not apply to training'),
    (dict(load_from=None), r'does not apply to training'),
])
def test_no_finetune_is_not_a_training_setting(tmp_path, trained, options,
                                               match):
    cfg, checkpoint = trained
    runner = _runner(cfg, tmp_path / 'w', 'train_nf', no_finetune=True,
                     **{'load_from': checkpoint, **options})
    with pytest.raises(ValueError, match=match):
        runner.train()


def test_no_finetune_needs_a_checkpoint_and_an_ailurus_model(
        tmp_path, trained, ade20k_root):
    cfg, _ = trained
    runner = _runner(cfg, tmp_path / 'w', 'none', no_finetune=True)
    with pytest.raises(ValueError, match='but none is given'):
        runner.test()
    vanilla_cfg = write_tiny_config(
        str(tmp_path / 'vanilla.py'),
        'mmseg::segmenter/segmenter_vit-b_mask_8xb1-160k_ade20k-512x512.py',
        ade20k_root, iters=1)
    runner = _runner(vanilla_cfg, tmp_path / 'v', 'vanilla', no_finetune=True,
                     load_from='unused.pth')
    with pytest.raises(ValueError, match=r'has no AiluRusViT backbone '
                       r'\(found VisionTransformer\)'):
        runner.test()


def test_placeholder_load_from_is_explained(tmp_path, trained):
    cfg, _ = trained
    runner = _runner(cfg, tmp_path / 'w', 'placeholder',
                     load_from='checkpoints/vanilla.pth')
    with pytest.raises(FileNotFoundError,
                       match=r"load_from='checkpoints/vanilla\.pth' does not "
                       r'exist\. A fine-tuning config starts from a vanilla '
                       r'checkpoint'):
        runner.train()


# -- checkpoints from a URL: read with weights_only=True, no code runs -------
class _Marker:
    """Unpickling this would create a file (``__reduce__``)."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, 'w'))


@pytest.fixture
def url_payload(tmp_path, monkeypatch):
    """An https URL whose download is already in torch hub's cache (no
    network): a checkpoint that creates ``marker`` if unpickled with
    ``weights_only=False``."""
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    cache = tmp_path / 'torch' / 'hub' / 'checkpoints'
    cache.mkdir(parents=True)
    marker = tmp_path / 'pwned'
    torch.save({'state_dict': {'w': torch.zeros(1)},
                'meta': {'x': _Marker(str(marker))}}, cache / 'x.pth')
    return 'https://example.invalid/x.pth', marker


def test_read_checkpoint_refuses_a_pickle_from_a_url(url_payload):
    from ailurus_mm.checkpoint import CheckpointReadError, read_checkpoint

    url, marker = url_payload
    with pytest.raises(CheckpointReadError,
                       match=r'https://example.invalid/x.pth: refused to '
                       r'load \S*open'):
        read_checkpoint(url)
    assert not marker.exists()


@pytest.mark.parametrize('resume', [False, True])
def test_the_hook_refuses_a_pickle_from_a_url(tmp_path, trained, url_payload,
                                              resume):
    """load_from=URL, and --resume with a last_checkpoint file holding a
    URL: refused before anything runs (mmengine alone would execute it)."""
    from ailurus_mm.checkpoint import CheckpointReadError

    cfg, _ = trained
    url, marker = url_payload
    work = tmp_path / 'w'
    work.mkdir()
    options = dict(train_cfg=dict(max_iters=2))
    if resume:
        (work / 'last_checkpoint').write_text(url)
        options['resume'] = True
    else:
        options['load_from'] = url
    runner = _runner(cfg, work, f'url_{resume}', **options)
    with pytest.raises(CheckpointReadError, match=r'refused to load \S*open'):
        runner.train()
    assert not marker.exists()


def test_allow_mmengine_checkpoints_makes_mmengine_read_urls_safely(
        url_payload):
    """The process-wide switch (for mmseg.apis.init_model and friends)
    covers mmengine's URL loader too (in a fresh interpreter: it is
    process-wide)."""
    url, marker = url_payload
    code = ('import pickle\n'
            'from mmengine.runner.checkpoint import _load_checkpoint\n'
            'import ailurus_mm\n'
            'ailurus_mm.allow_mmengine_checkpoints()\n'
            'try:\n'
            f'    _load_checkpoint({url!r})\n'
            'except pickle.UnpicklingError as error:\n'
            '    print("refused" if "Weights only" in str(error) '
            'else error)\n')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True,
                         text=True, cwd=REPO, timeout=300)
    assert out.stdout.strip().endswith('refused'), out.stdout + out.stderr
    assert not marker.exists()
