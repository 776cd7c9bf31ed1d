"""``StrictLoadHook``: strict, safe and clear checkpoint loading for any tool.

mmengine's Runner loads ``load_from`` and ``--resume`` checkpoints
non-strictly: a checkpoint of another architecture only logs "missing keys"
and training goes on from random weights. Switched on in a config,

    custom_hooks = [dict(type='ailurus_mm.StrictLoadHook')]

the hook makes every checkpoint the Runner reads (``load_from``, the
checkpoint of ``tools/test.py``, ``--resume``) hold exactly the model's
parameters, under mmseg's and mmdet's own tools and ours alike (the
``ailurus_mm.`` prefix makes mmengine import the hook; no
``custom_imports`` entry is needed). It also

- reads Runner checkpoints under torch's ``weights_only`` loader with the
  types mmengine writes allowed for that read only
  (:mod:`ailurus_mm.compat`), and names the file and what is wrong with it
  when it cannot be read (missing, empty, truncated, not a torch checkpoint,
  an object refused);
- refuses to resume from a checkpoint that is not a Runner checkpoint (a
  bare state dict: use ``load_from``);
- implements ``no_finetune=True`` (a top-level config key, set by
  ``tools/test.py --no-finetune`` or ``--cfg-options no_finetune=True``):
  the run must be an evaluation of a vanilla mmseg/mmdet checkpoint with an
  AiluRus model. A checkpoint whose stored config names ``AiluRusViT`` (it
  was trained with AiluRus) is refused, and the AiluRus settings used are
  logged. Without the flag, evaluating a checkpoint that was not trained with
  AiluRus gets a warning.
"""
import functools
import logging
import os.path as osp
from typing import Callable, Dict, Optional

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import BaseTTAModel, is_model_wrapper
from mmengine.runner import BaseLoop, find_latest_checkpoint
from torch import nn

from ailurus_mm.checkpoint import (CheckpointMismatchError,
                                   NotRunnerCheckpointError,
                                   check_runner_checkpoint, check_state_dict,
                                   checkpoint_config_text,
                                   checkpoint_state_dict, describe_read_error)
from ailurus_mm.compat import mmengine_checkpoint_globals
from ailurus_mm.models import AiluRusViT
from ailurus_mm.registry import HOOKS


def find_ailurus_backbone(model: nn.Module) -> Optional[AiluRusViT]:
    """The :class:`AiluRusViT` inside ``model`` (also through DDP and TTA
    wrappers), or ``None``."""
    for module in model.modules():
        if isinstance(module, AiluRusViT):
            return module
    return None


def ailurus_settings(backbone: AiluRusViT) -> str:
    """``cluster_layer=1, num_clusters=0.5, ...``: every knob of a
    backbone."""
    return backbone.clustering.describe()


def unwrap_model(model: nn.Module) -> nn.Module:
    """The model whose state dict a checkpoint holds: without DDP-style and
    test-time-augmentation wrappers (as mmengine loads it)."""
    while is_model_wrapper(model) or isinstance(model, BaseTTAModel):
        model = model.module
    return model


# mmengine 0.10's Runner has no public accessor for three things the hook
# needs, so it reads them from the Runner's attributes:
# - ``_load_from`` and ``_resume``: what ``load_or_resume`` will read
#   (``runner.cfg`` holds them only for a Runner built by ``from_cfg``);
# - ``_train_loop``: whether this run trains. The public ``train_loop``
#   property would build the loop (and raises without ``train_cfg``);
#   ``Runner.train`` builds it before ``before_run``, ``Runner.test`` and
#   ``Runner.val`` never do.


def _is_training(runner) -> bool:
    return isinstance(runner._train_loop, BaseLoop)


@HOOKS.register_module()
class StrictLoadHook(Hook):
    """Strict, safe and clear loading of ``load_from`` and resume
    checkpoints (see the module docstring).

    Runs before every other hook at ``after_load_checkpoint``, so the
    checkpoint is checked as it was read.
    """

    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self._source: Optional[str] = None
        self._read = False
        self._resuming = False

    # ------------------------------------------------------------ before_run
    def before_run(self, runner) -> None:
        no_finetune = bool(runner.cfg.get('no_finetune', False))
        load_from = runner._load_from
        if no_finetune:
            self._check_no_finetune_run(runner, load_from)
        if load_from and '://' not in load_from \
                and not osp.isfile(load_from):
            if not _is_training(runner):
                raise FileNotFoundError(
                    f'checkpoint {load_from} does not exist')
            if not runner._resume:
                # The fine-tuning configs ship a placeholder path.
                raise FileNotFoundError(
                    f'load_from={load_from!r} does not exist. A fine-tuning '
                    'config starts from a vanilla checkpoint of its _base_ '
                    'config: put it there or pass --cfg-options '
                    'load_from=PATH (see configs/README.md).')
            raise FileNotFoundError(
                f'checkpoint {load_from} to resume from does not exist')
        if not getattr(runner.load_checkpoint, '_strict_load_hook', False):
            # This runner only: read through the hook. mmengine has no hook
            # before a checkpoint is read (``after_load_checkpoint`` comes
            # after torch.load), and ``Runner.resume`` reads through
            # ``Runner.load_checkpoint`` too; wrapping that one method is
            # the only way to name a file that cannot be read and to allow
            # the types of Runner checkpoints for that read only.
            runner.load_checkpoint = self._wrap(runner.load_checkpoint)

    @staticmethod
    def _check_no_finetune_run(runner, load_from: Optional[str]) -> None:
        if _is_training(runner):
            raise ValueError(
                'no_finetune=True evaluates a vanilla checkpoint with an '
                'AiluRus model without fine-tuning; it does not apply to '
                'training (fine-tuning starts from load_from)')
        if not load_from:
            raise ValueError(
                'no_finetune=True evaluates a vanilla checkpoint, but none '
                'is given (tools/test.py CONFIG CHECKPOINT, or load_from)')
        if find_ailurus_backbone(runner.model) is None:
            raise ValueError(
                'no_finetune=True evaluates a vanilla checkpoint with an '
                'AiluRus model, but the model has no AiluRusViT backbone '
                f'(found {type(_backbone(runner.model)).__name__})')

    def _wrap(self, load_checkpoint: Callable) -> Callable:

        @functools.wraps(load_checkpoint)
        def strict_load_checkpoint(filename: str, *args, **kwargs):
            self._source, self._read = filename, False
            try:
                with mmengine_checkpoint_globals():
                    return load_checkpoint(filename, *args, **kwargs)
            except (FileNotFoundError, CheckpointMismatchError,
                    NotRunnerCheckpointError):
                raise
            except Exception as error:
                if self._read:  # failed after reading: not a read error
                    raise
                raise describe_read_error(filename, error) from error

        strict_load_checkpoint._strict_load_hook = True
        return strict_load_checkpoint

    # -------------------------------------------------- after_load_checkpoint
    def after_load_checkpoint(self, runner, checkpoint: Dict) -> None:
        self._read = True
        source = self._source or self._guess_source(runner)
        model = unwrap_model(runner.model)
        if runner._resume:
            check_runner_checkpoint(checkpoint, source)
        # Before mmengine loads it non-strictly.
        check_state_dict(
            model, checkpoint_state_dict(checkpoint, source), source=source)
        print_log(f'{source} fits the model strictly', logger='current')
        backbone = find_ailurus_backbone(model)
        if backbone is None or _is_training(runner):
            return
        config_text = checkpoint_config_text(checkpoint)
        trained_with_ailurus = config_text is not None and \
            'AiluRusViT' in config_text
        if runner.cfg.get('no_finetune', False):
            if trained_with_ailurus:
                raise ValueError(
                    f'no_finetune=True (--no-finetune) evaluates a vanilla '
                    f'checkpoint, but {source} was trained with AiluRus '
                    '(its stored config names AiluRusViT): evaluate it '
                    'without --no-finetune')
            print_log(
                f'--no-finetune: evaluating the vanilla checkpoint {source} '
                f'with AiluRus, without fine-tuning: '
                f'{ailurus_settings(backbone)}',
                logger='current')
        elif not trained_with_ailurus:
            print_log(
                f'{source} was not trained with AiluRusViT (its config does '
                'not name it): evaluating it as is; pass --no-finetune '
                '(no_finetune=True) to state that this is intended.',
                logger='current',
                level=logging.WARNING)

    @staticmethod
    def _guess_source(runner) -> str:
        if runner._load_from:
            return str(runner._load_from)
        latest = find_latest_checkpoint(runner.work_dir)
        return str(latest) if latest else 'the checkpoint'


def _backbone(model: nn.Module) -> object:
    model = unwrap_model(model)
    return getattr(model, 'backbone', model)
