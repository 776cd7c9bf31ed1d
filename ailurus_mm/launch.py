"""``tools/train.py`` and ``tools/test.py``: mmseg's or mmdet's own tools,
plus only what is ours.

The tools run the train or test script that mmseg or mmdet ships in its
wheel (``<package>/.mim/tools/``, what ``mim train`` runs), chosen by the
config's ``default_scope``; every flag of those scripts works because it is
theirs (``--work-dir``, ``--resume``, ``--amp``, ``--cfg-options``,
``--launcher``, ``--out``, ``--show-dir``, ``--tta``, ...). Before them,
these tools add:

- the strict-loading hook for a config that lacks it, and ``--no-finetune``
  (``no_finetune=True``, read by the hook), both through a generated config
  that inherits the given one under the same file name (so the default work
  dir is the same);
- distributed runs without CUDA: mmengine's ``pytorch`` launcher calls
  ``torch.cuda.set_device`` and its DDP wrapper passes
  ``device_ids=[LOCAL_RANK]``, so the tool starts the gloo process group
  itself (mmengine then finds it started) and gives the wrapper
  ``device_ids=None``; with CUDA nothing changes (NCCL);
- refusals up front, before any model or data is built: ``--tta`` on an
  instance-segmentation detector (mmdet 3.3's ``DetTTAModel`` merges boxes
  only), ``--amp`` without a GPU (mmengine's ``AmpOptimWrapper`` asserts
  one; bf16 training on a CPU is ``ailurus_mm.AutocastOptimWrapper``), a
  detection ``--out`` that is not a ``.pkl`` (mmdet asserts it after
  building the Runner);
- CPU training with ``torch.set_flush_denormal(True)`` (denormal floats
  slow CPU training several-fold after a few dozen iterations).
"""
import argparse
import importlib
import os
import os.path as osp
import runpy
import sys
import tempfile
from typing import Optional, Sequence

import torch
from mmengine.config import Config

from .zoo import STRICT_LOAD_HOOK, find_config

TOOLS = ('train', 'test')


class UsageError(ValueError):
    """A flag that cannot work with this config or on this machine; the
    tools print it as a usage error (no traceback)."""


def upstream_tool(library: str, tool: str) -> str:
    """The path of ``<library>/.mim/tools/<tool>.py`` (mmseg or mmdet)."""
    package = importlib.import_module(library)
    path = osp.join(osp.dirname(package.__file__), '.mim', 'tools',
                    f'{tool}.py')
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{library} ships no {tool}.py at {path} (an editable install '
            f'of {library}? run its repository\'s tools/{tool}.py)')
    return path


def config_library(cfg: Config) -> str:
    """``'mmdet'`` for configs in mmdet's scope, else ``'mmseg'``."""
    return 'mmdet' if cfg.get('default_scope') == 'mmdet' else 'mmseg'


def _our_flags(tool: str) -> argparse.ArgumentParser:
    """The flags the tools read before handing over (``--no-finetune`` is
    ours and removed; the others are only peeked at)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument('config')
    if tool == 'test':
        parser.add_argument('checkpoint')
        parser.add_argument('--no-finetune', action='store_true')
        parser.add_argument('--tta', action='store_true')
        parser.add_argument('--out')
    else:
        parser.add_argument('--amp', action='store_true')
    parser.add_argument('--launcher', default='none')
    return parser


def _predicts_masks(model_cfg) -> bool:
    roi_head = model_cfg.get('roi_head') or {}
    return bool(roi_head.get('mask_head')) or 'mask_head' in model_cfg


def _has_strict_hook(cfg: Config) -> bool:
    return any(
        isinstance(hook, dict) and hook.get('type') in (STRICT_LOAD_HOOK,
                                                        'StrictLoadHook')
        for hook in cfg.get('custom_hooks', None) or [])


def check_request(tool: str, cfg: Config, args: argparse.Namespace) -> None:
    """The refusals, before anything is built."""
    if tool == 'test' and args.tta and config_library(cfg) == 'mmdet' and \
            _predicts_masks(cfg.model):
        raise UsageError(
            f'--tta: {cfg.model.type} predicts instance masks, and mmdet '
            "3.3's DetTTAModel merges boxes only (it refuses instance "
            'segmentation). Evaluate without --tta.')
    if tool == 'test' and args.out is not None and \
            config_library(cfg) == 'mmdet' and not args.out.endswith(
                ('.pkl', '.pickle')):
        raise UsageError(f'--out must be a .pkl file for detection (mmdet '
                         f'dumps raw results), got {args.out!r}')
    if tool == 'train' and args.amp and not torch.cuda.is_available():
        raise UsageError(
            "--amp: mmengine's AmpOptimWrapper trains in mixed precision on "
            'a GPU (or NPU, MLU, MUSA) only, and none is available here. '
            'On a CPU, train in bf16 with --cfg-options '
            'optim_wrapper.type=ailurus_mm.AutocastOptimWrapper')
    if args.launcher not in ('none', 'pytorch') and \
            not torch.cuda.is_available():
        raise UsageError(
            f'--launcher {args.launcher} without CUDA is not supported; use '
            'torchrun ... --launcher pytorch for multi-process CPU runs')


def start_cpu_distributed() -> bool:
    """Start the gloo process group for a ``--launcher pytorch`` run
    without CUDA (``env://``, as torchrun sets it). Returns whether it did
    (``False`` with CUDA, or if a group is already started)."""
    import torch.distributed as dist
    if torch.cuda.is_available() or dist.is_initialized():
        return False
    dist.init_process_group(backend='gloo')
    return True


def wrapper_config(cfg: Config, config_path: str, no_finetune: bool,
                   cpu_distributed: bool, out_dir: str) -> Optional[str]:
    """Write the config the upstream tool runs, if ours must add anything:
    it inherits ``config_path`` under the same file name (the default work
    dir stays ``work_dirs/<name>``) and adds the strict-loading hook,
    ``no_finetune=True`` and, for CPU distributed runs, gloo and a DDP
    wrapper without device ids. ``None`` if nothing is to be added."""
    lines = []
    if not _has_strict_hook(cfg):
        hooks = list(cfg.get('custom_hooks', None) or [])
        hooks.append(dict(type=STRICT_LOAD_HOOK))
        lines.append(f'custom_hooks = {hooks!r}')
    if no_finetune:
        lines.append('no_finetune = True')
    if cpu_distributed:
        wrapper = dict(cfg.get('model_wrapper_cfg', None) or dict(
            type='MMDistributedDataParallel', broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False)))
        wrapper['device_ids'] = None
        lines += ["env_cfg = dict(dist_cfg=dict(backend='gloo'))",
                  f'model_wrapper_cfg = {wrapper!r}']
    if not lines:
        return None
    path = osp.join(out_dir, osp.basename(config_path))
    with open(path, 'w') as f:
        f.write(f'_base_ = [{osp.abspath(config_path)!r}]\n' +
                '\n'.join(lines) + '\n')
    return path


def run(tool: str, argv: Optional[Sequence[str]] = None) -> None:
    """``tools/<tool>.py``: our additions, then mmseg's or mmdet's own
    ``<tool>.py`` with the remaining arguments (``argv``: default
    ``sys.argv[1:]``)."""
    if tool not in TOOLS:
        raise ValueError(f'tool must be one of {TOOLS}, got {tool!r}')
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _our_flags(tool)
    args, _ = parser.parse_known_args(argv)
    try:
        config_path = find_config(args.config)
        cfg = Config.fromfile(config_path)
        check_request(tool, cfg, args)
    except (UsageError, FileNotFoundError) as error:
        raise SystemExit(f'{tool}.py: error: {error}')
    rest = [a for a in argv if a != '--no-finetune']
    cpu_distributed = args.launcher == 'pytorch' and \
        not torch.cuda.is_available()
    if cpu_distributed:
        start_cpu_distributed()
    if tool == 'train' and not torch.cuda.is_available():
        torch.set_flush_denormal(True)
    script = upstream_tool(config_library(cfg), tool)
    with tempfile.TemporaryDirectory(prefix='ailurus_mm_') as tmp:
        path = wrapper_config(cfg, config_path, getattr(
            args, 'no_finetune', False), cpu_distributed, tmp)
        if path is not None or config_path != args.config:
            rest[rest.index(args.config)] = path or config_path
        saved = sys.argv
        sys.argv = [script] + rest
        if 'LOCAL_RANK' not in os.environ:
            os.environ['LOCAL_RANK'] = '0'
        try:
            runpy.run_path(script, run_name='__main__')
        finally:
            sys.argv = saved
