"""Train and test entry points behind ``tools/train.py`` and ``tools/test.py``.

They follow mmseg's and mmdet's own tools (same flags, same Runner), for
segmentation and detection configs alike, and add what AiluRus needs: the
``ailurus_mm.models`` registration, checkpoints that load under torch >= 2.6,
and strict checkpoint loading with a clear error (``--no-finetune``
evaluates a vanilla mmseg/mmdet checkpoint as is).
"""
import argparse
import logging
import os
import os.path as osp
from typing import List, Optional

from mmengine.config import Config, DictAction
from mmengine.logging import print_log
from mmengine.runner import Runner

from .checkpoint import (allow_mmengine_checkpoints, check_state_dict,
                         checkpoint_config_text, checkpoint_state_dict,
                         load_checkpoint_file, load_state_dict_strictly)

LAUNCHERS = ['none', 'pytorch', 'slurm', 'mpi']


def _add_common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, key=value pairs in '
        'xxx=yyy format; e.g. model.backbone.num_clusters=0.5')
    parser.add_argument('--launcher', choices=LAUNCHERS, default='none',
                        help='job launcher')
    # torch.distributed.launch passes --local-rank; torchrun sets LOCAL_RANK.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def train_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description='Train an mmseg/mmdet model (AiluRus or vanilla)')
    parser.add_argument('config', help='train config file path')
    parser.add_argument(
        '--resume',
        action='store_true',
        help='resume from the latest checkpoint in the work_dir')
    parser.add_argument('--amp', action='store_true',
                        help='enable automatic-mixed-precision training')
    _add_common_args(parser)
    return parser


def test_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description='Evaluate an mmseg/mmdet model (AiluRus or vanilla)')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--no-finetune',
        action='store_true',
        help='the checkpoint is a vanilla mmseg/mmdet checkpoint (not '
        'fine-tuned with AiluRus): load it strictly into the AiluRus model '
        'and evaluate it as is')
    parser.add_argument(
        '--out',
        help='segmentation: directory to save predictions for offline '
        'evaluation; detection: a .pkl file for the raw results')
    parser.add_argument('--show', action='store_true',
                        help='show prediction results')
    parser.add_argument('--show-dir',
                        help='directory where painted images are saved')
    parser.add_argument('--wait-time', type=float, default=2,
                        help='the interval of show (s)')
    parser.add_argument('--tta', action='store_true',
                        help='test time augmentation')
    _add_common_args(parser)
    return parser


def _parse(parser: argparse.ArgumentParser,
           argv: Optional[List[str]]) -> argparse.Namespace:
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def load_config(args: argparse.Namespace) -> Config:
    """Read the config and apply the flags shared by both tools."""
    allow_mmengine_checkpoints()
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    return cfg


def _build_runner(cfg: Config) -> Runner:
    if 'runner_type' not in cfg:
        return Runner.from_cfg(cfg)
    from mmengine.registry import RUNNERS
    return RUNNERS.build(cfg)


def _unwrap(model):
    from mmengine.model import is_model_wrapper
    return model.module if is_model_wrapper(model) else model


def _uses_ailurus(config_text: Optional[str]) -> bool:
    return config_text is not None and 'AiluRusViT' in config_text


def build_train_runner(args: argparse.Namespace) -> Runner:
    """The Runner of ``tools/train.py``, as mmseg's and mmdet's build it."""
    cfg = load_config(args)
    if args.amp:
        optim_wrapper = cfg.optim_wrapper.type
        if optim_wrapper == 'AmpOptimWrapper':
            print_log('AMP training is already enabled in your config.',
                      logger='current', level=logging.WARNING)
        elif optim_wrapper != 'OptimWrapper':
            raise ValueError('--amp is only supported with OptimWrapper, '
                             f'got optim_wrapper.type={optim_wrapper!r}')
        else:
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'
    cfg.resume = args.resume
    load_from = cfg.get('load_from')
    if load_from and not args.resume and '://' not in load_from \
            and not osp.isfile(load_from):
        # Before building the model: the fine-tuning configs ship a
        # placeholder path.
        raise FileNotFoundError(
            f'load_from={load_from!r} does not exist. A fine-tuning config '
            'starts from a vanilla checkpoint of its _base_ config: put it '
            'there or pass --cfg-options load_from=PATH (see '
            'configs/README.md).')
    runner = _build_runner(cfg)
    if load_from and not args.resume:
        # Fine-tuning starts from a checkpoint: every parameter must be in it
        # (mmengine's own load_from is non-strict and only logs mismatches).
        checkpoint = load_checkpoint_file(load_from)
        check_state_dict(
            _unwrap(runner.model), checkpoint_state_dict(checkpoint),
            source=f'load_from={load_from}')
    return runner


def _trigger_visualization_hook(cfg: Config,
                                args: argparse.Namespace) -> None:
    default_hooks = cfg.default_hooks
    if 'visualization' not in default_hooks:
        raise RuntimeError(
            'VisualizationHook must be included in default_hooks to use '
            '--show or --show-dir; see mmseg/mmdet default_runtime.py')
    hook = default_hooks['visualization']
    hook['draw'] = True
    if args.show:
        hook['show'] = True
        hook['wait_time'] = args.wait_time
    if args.show_dir:
        if cfg.get('default_scope') == 'mmdet':
            hook['test_out_dir'] = args.show_dir
        else:
            cfg.visualizer['save_dir'] = args.show_dir


def build_test_runner(args: argparse.Namespace) -> Runner:
    """The Runner of ``tools/test.py`` with the checkpoint loaded strictly."""
    cfg = load_config(args)
    is_det = cfg.get('default_scope') == 'mmdet'
    if args.show or args.show_dir:
        _trigger_visualization_hook(cfg, args)
    if args.tta:
        if 'tta_model' not in cfg or 'tta_pipeline' not in cfg:
            raise ValueError('--tta needs tta_model and tta_pipeline in the '
                             'config')
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model
    if args.out is not None and not is_det:
        cfg.test_evaluator['output_dir'] = args.out
        cfg.test_evaluator['keep_results'] = True
    if args.out is not None and is_det and not args.out.endswith(
            ('.pkl', '.pickle')):
        raise ValueError(f'--out must be a .pkl file for detection, '
                         f'got {args.out!r}')
    # The checkpoint is loaded below, strictly; the Runner must not load it
    # again non-strictly.
    cfg.load_from = None
    runner = _build_runner(cfg)
    if args.out is not None and is_det:
        from mmdet.evaluation import DumpDetResults
        runner.test_evaluator.metrics.append(
            DumpDetResults(out_file_path=args.out))

    model = _unwrap(runner.model)
    if args.tta:
        model = model.module
    checkpoint = load_checkpoint_file(args.checkpoint)
    # As mmengine's Runner.load_checkpoint: hooks see it before it is loaded.
    runner.call_hook('after_load_checkpoint', checkpoint=checkpoint)
    load_state_dict_strictly(model, checkpoint, args.checkpoint)
    fine_tuned = _uses_ailurus(checkpoint_config_text(checkpoint))
    if args.no_finetune:
        print_log(
            f'--no-finetune: evaluating the vanilla checkpoint '
            f'{args.checkpoint} with AiluRus as configured, without '
            'fine-tuning', logger='current')
    elif not fine_tuned:
        print_log(
            f'{args.checkpoint} was not trained with AiluRusViT (its config '
            'does not name it): evaluating it as is; pass --no-finetune to '
            'state that this is intended.',
            logger='current',
            level=logging.WARNING)
    print_log(f'Loaded checkpoint strictly from {args.checkpoint}',
              logger='current')
    return runner


def train(argv: Optional[List[str]] = None) -> Runner:
    """``tools/train.py``: returns the Runner after training."""
    runner = build_train_runner(_parse(train_parser(), argv))
    runner.train()
    return runner


def test(argv: Optional[List[str]] = None) -> dict:
    """``tools/test.py``: returns the metrics."""
    runner = build_test_runner(_parse(test_parser(), argv))
    return runner.test()
