"""Shared fixtures: tiny configs over the real ones, tiny generated
datasets."""
import os
import os.path as osp
import subprocess
import sys
from typing import List, Optional

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = osp.join(REPO, 'configs')

if os.environ.get('PYTEST_XDIST_WORKER'):
    # One torch thread per pytest-xdist worker (and per tool it starts):
    # the workers share the cores, and OpenMP threads beyond them only
    # oversubscribe.
    os.environ['OMP_NUM_THREADS'] = '1'
    import torch
    torch.set_num_threads(1)

# Shrinks a Segmenter config to a model that trains in seconds on a CPU, on
# 64x64 crops of the generated datasets. Appended to a config that inherits
# the real one, so everything else (dataset class, evaluator, hooks, the
# AiluRus knobs) is the real config's.
TINY_SEGMENTER = '''
crop_size = (64, 64)
model = dict(
    pretrained=None,
    data_preprocessor=dict(size=crop_size),
    backbone=dict(img_size=(64, 64), embed_dims=32, num_layers=3,
                  num_heads=2, drop_path_rate=0.0, **{backbone!r}),
    decode_head=dict(in_channels=32, channels=32, num_heads=2,
                     embed_dims=32, num_layers=1),
    test_cfg=dict(mode='slide', crop_size=(64, 64), stride=(48, 48)))
train_cfg = dict(max_iters={iters}, val_interval={iters})
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0,
                        end={iters}, by_epoch=False)]
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(interval={iters}),
                     visualization=dict(type='SegVisualizationHook'))
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root={data_root!r},
                                     serialize_data=False, pipeline=[
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label={reduce_zero_label}),
    dict(type='RandomResize', scale=(128, 64), ratio_range=(0.75, 1.25),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')]))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(128, 64), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label={reduce_zero_label}),
    dict(type='PackSegInputs')]
val_dataloader = dict(batch_size=1, num_workers=0, persistent_workers=False,
                      dataset=dict(data_root={data_root!r},
                                   serialize_data=False,
                                   pipeline=test_pipeline))
test_dataloader = val_dataloader
'''


def write_tiny_config(path: str,
                      base: str,
                      data_root: str,
                      iters: int = 2,
                      backbone: Optional[dict] = None,
                      extra: str = '',
                      reduce_zero_label: bool = True) -> str:
    """Write a config inheriting ``base`` (a path or an ``mmseg::`` name)
    with the tiny model and data settings; returns ``path``.

    Args:
        backbone: More backbone settings (e.g. the AiluRus knobs).
        extra: Config text appended at the end.
    """
    if not base.startswith('mmseg::') and not base.startswith('mmdet::'):
        base = osp.abspath(base)
    text = f'_base_ = [{base!r}]\n' + TINY_SEGMENTER.format(
        iters=iters, data_root=data_root, backbone=backbone or {},
        reduce_zero_label=reduce_zero_label) + extra
    with open(path, 'w') as f:
        f.write(text)
    return path


def vit_pair(tiny: dict, **kwargs):
    """A vanilla mmseg ``VisionTransformer`` and an ``AiluRusViT`` with the
    same weights, both built from ``tiny``; the AiluRus knobs in ``kwargs``
    go to the latter only. Both are in eval mode."""
    import torch
    from mmseg.models.backbones import VisionTransformer

    from ailurus_mm.models import AiluRusViT
    from ailurus_mm.ops import ClusterConfig

    vit_kwargs = {**tiny, **{key: value for key, value in kwargs.items()
                             if key not in ClusterConfig.names()}}
    torch.manual_seed(0)
    vanilla = VisionTransformer(**vit_kwargs)
    vanilla.init_weights()
    ailurus = AiluRusViT(**tiny, **kwargs)
    ailurus.load_state_dict(vanilla.state_dict(), strict=True)
    vanilla.eval()  # mmseg's VisionTransformer.train() returns None
    return vanilla, ailurus.eval()


def run_tool_here(tool: str, args: List[str], capfd) -> str:
    """Run ``tools/<tool>.py``'s code in this process (``train`` and
    ``test`` through ailurus_mm.launch, which runs mmseg's or mmdet's own
    script with runpy); returns what it printed. Faster than
    :func:`run_tool` by an interpreter start and the imports."""
    from ailurus_mm.launch import run

    capfd.readouterr()
    run(tool, [str(a) for a in args])
    captured = capfd.readouterr()
    return captured.out + captured.err


def run_tool(tool: str, args: List[str], cwd: str) -> str:
    """Run ``tools/<tool>.py`` as a user would; returns its output, and fails
    the test with the output if the tool fails."""
    cmd = [sys.executable, osp.join(REPO, 'tools', f'{tool}.py')] + args
    proc = subprocess.run(
        cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, timeout=900)
    if proc.returncode != 0:
        pytest.fail(f'{" ".join(cmd)} exited {proc.returncode}:\n'
                    f'{proc.stdout[-6000:]}')
    return proc.stdout


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    """The tools' ``main`` functions set torch's thread count (their
    ``--threads``); give the next test the count it had."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='session')
def ade20k_root(tmp_path_factory) -> str:
    from ailurus_mm.testing import make_ade20k
    return make_ade20k(str(tmp_path_factory.mktemp('ade20k')))


@pytest.fixture(scope='session')
def cityscapes_root(tmp_path_factory) -> str:
    from ailurus_mm.testing import make_cityscapes
    return make_cityscapes(str(tmp_path_factory.mktemp('cityscapes')))


@pytest.fixture(scope='session')
def pascal_context_root(tmp_path_factory) -> str:
    from ailurus_mm.testing import make_pascal_context
    return make_pascal_context(str(tmp_path_factory.mktemp('pascal_context')))


@pytest.fixture(scope='session')
def fast_config_parsing():
    """Parse ``mmseg::`` configs in about 0.1 s instead of 1-2 s.

    mmengine re-reads every metafile of mmseg (about 200 YAML files) and
    reloads ``pkg_resources`` for each ``mmseg::`` base it resolves. Both
    answers are fixed while the tests run, so they are cached here (in this
    process only; the tools run in their own).
    """
    import functools

    import mmengine.config.config as config_module
    import mmengine.config.utils as config_utils

    patch = pytest.MonkeyPatch()
    patch.setattr(config_utils, 'load',
                  functools.lru_cache(maxsize=None)(config_utils.load))
    patch.setattr(config_module, 'is_installed',
                  functools.lru_cache(maxsize=None)(
                      config_module.is_installed))
    yield
    patch.undo()
