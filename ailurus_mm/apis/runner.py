"""``tools/train.py`` and ``tools/test.py``: mmseg's and mmdet's own tools,
plus only what a config hook cannot do.

Everything about checkpoints (strict ``load_from`` and ``--resume``, Runner
checkpoints under torch's ``weights_only`` loader, errors naming the file,
``--no-finetune``) is ``StrictLoadHook``'s, which our configs switch on and
these tools add to any config that lacks it. The tools add:

- mmseg's and mmdet's flags in one tool: ``--resume`` alone (the latest
  checkpoint of the work dir) or ``--resume CKPT``, ``--auto-scale-lr``;
- ``--no-finetune`` (sets ``no_finetune=True``, which the hook reads);
- ``--tta`` on an instance-segmentation detector: refused up front (mmdet
  3.3's ``DetTTAModel`` merges boxes only);
- ``--amp`` where mmengine refuses it (no GPU): a clear message;
- distributed training without CUDA: the tool starts the gloo process group
  itself (so mmengine's launcher never calls ``torch.cuda.set_device``) and
  builds the DDP wrapper for CPU modules. With CUDA nothing changes (NCCL).
"""
import argparse
import copy
import logging
import os
from typing import List, Optional

import torch
from mmengine.config import Config, ConfigDict, DictAction
from mmengine.logging import print_log
from mmengine.runner import Runner

from .config import enable_strict_loading, load_config

LAUNCHERS = ['none', 'pytorch', 'slurm', 'mpi']


class UsageError(ValueError):
    """A flag that cannot work with this config or on this machine; the
    tools print it as a usage error (no traceback)."""


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
        nargs='?',
        type=str,
        const='auto',
        help='resume from the latest checkpoint of the work dir, or from '
        'the Runner checkpoint given')
    parser.add_argument('--amp', action='store_true',
                        help='enable automatic-mixed-precision training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the learning rate with the total batch size '
        "(the config's auto_scale_lr.base_batch_size)")
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
        help='the checkpoint is a vanilla mmseg/mmdet checkpoint: evaluate '
        'it with the AiluRus model as is (refused for a checkpoint trained '
        'with AiluRus; the AiluRus settings used are logged)')
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


def _load(args: argparse.Namespace) -> Config:
    cfg = load_config(args.config, args.cfg_options, args.work_dir)
    cfg.launcher = args.launcher
    enable_strict_loading(cfg)
    return cfg


def _is_detection(cfg: Config) -> bool:
    return cfg.get('default_scope') == 'mmdet'


def _build_runner(cfg: Config) -> Runner:
    if 'runner_type' not in cfg:
        return Runner.from_cfg(cfg)
    from mmengine.registry import RUNNERS
    return RUNNERS.build(cfg)


def setup_cpu_distributed(cfg: Config) -> bool:
    """Distributed training without CUDA: gloo, and DDP for CPU modules.

    mmengine's ``init_dist`` (launcher ``pytorch``) calls
    ``torch.cuda.set_device``, and its default DDP wrapper passes
    ``device_ids=[LOCAL_RANK]``, which torch refuses for CPU modules. So
    without CUDA the process group is started here (gloo, ``env://`` as
    torchrun sets it; mmengine then finds it started) and the wrapper gets
    ``device_ids=None``. With CUDA, or without a launcher, nothing changes.

    Returns:
        Whether it set up CPU distributed training.
    """
    if cfg.get('launcher', 'none') == 'none' or torch.cuda.is_available():
        return False
    if cfg.launcher != 'pytorch':
        raise UsageError(
            f'--launcher {cfg.launcher} without CUDA is not supported; use '
            'torchrun ... --launcher pytorch for multi-process CPU training')
    import torch.distributed as dist
    env_cfg = cfg.setdefault('env_cfg', ConfigDict())
    dist_cfg = env_cfg.setdefault('dist_cfg', ConfigDict())
    dist_cfg['backend'] = 'gloo'
    if not dist.is_initialized():
        kwargs = {k: v for k, v in dist_cfg.items() if k != 'backend'}
        if 'timeout' in kwargs:
            import datetime
            kwargs['timeout'] = datetime.timedelta(seconds=kwargs['timeout'])
        dist.init_process_group(backend='gloo', **kwargs)
    wrapper = cfg.get('model_wrapper_cfg') or ConfigDict(
        type='MMDistributedDataParallel',
        broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
    return True


def _set_amp(cfg: Config) -> None:
    optim_wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if optim_wrapper not in ('OptimWrapper', 'AmpOptimWrapper'):
        raise UsageError('--amp needs optim_wrapper.type=OptimWrapper, '
                         f'got {optim_wrapper!r}')
    from mmengine.device import (is_cuda_available, is_mlu_available,
                                 is_musa_available, is_npu_available)
    if not (is_cuda_available() or is_npu_available() or is_mlu_available()
            or is_musa_available()):
        raise UsageError(
            "--amp: mmengine's AmpOptimWrapper trains in mixed precision "
            'on a GPU, NPU, MLU or MUSA device only, and none is available '
            'here. Train without --amp on CPU (inference in bf16 works '
            'under torch.autocast).')
    if optim_wrapper == 'AmpOptimWrapper':
        print_log('AMP training is already enabled in your config.',
                  logger='current', level=logging.WARNING)
        return
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.loss_scale = 'dynamic'


def train_config(args: argparse.Namespace) -> Config:
    """The config of ``tools/train.py`` with its flags applied."""
    cfg = _load(args)
    if args.amp:
        _set_amp(cfg)
    if args.auto_scale_lr:
        scale = cfg.get('auto_scale_lr')
        if not scale or 'base_batch_size' not in scale:
            raise UsageError(
                '--auto-scale-lr needs auto_scale_lr.base_batch_size in the '
                'config (the total batch size its learning rate is for)')
        scale.enable = True
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    return cfg


def build_train_runner(args: argparse.Namespace) -> Runner:
    """The Runner of ``tools/train.py``, as mmseg's and mmdet's build it."""
    cfg = train_config(args)
    setup_cpu_distributed(cfg)
    return _build_runner(cfg)


def _trigger_visualization_hook(cfg: Config,
                                args: argparse.Namespace) -> None:
    default_hooks = cfg.default_hooks
    if 'visualization' not in default_hooks:
        raise UsageError(
            'VisualizationHook must be included in default_hooks to use '
            '--show or --show-dir; see mmseg/mmdet default_runtime.py')
    hook = default_hooks['visualization']
    hook['draw'] = True
    if args.show:
        hook['show'] = True
        hook['wait_time'] = args.wait_time
    if args.show_dir:
        if _is_detection(cfg):
            hook['test_out_dir'] = args.show_dir
        else:
            cfg.visualizer['save_dir'] = args.show_dir


def _predicts_masks(model_cfg: ConfigDict) -> bool:
    roi_head = model_cfg.get('roi_head') or {}
    return bool(roi_head.get('mask_head')) or 'mask_head' in model_cfg


def _set_detection_tta(cfg: Config) -> None:
    """mmdet's test.py TTA defaults; refused for instance segmentation."""
    if _predicts_masks(cfg.model):
        raise UsageError(
            f'--tta: {cfg.model.type} predicts instance masks, and mmdet '
            "3.3's DetTTAModel merges boxes only (it refuses instance "
            'segmentation). Evaluate without --tta.')
    if 'tta_model' not in cfg:
        cfg.tta_model = dict(
            type='DetTTAModel',
            tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.5),
                         max_per_img=100))
    if 'tta_pipeline' not in cfg:
        dataset = cfg.test_dataloader.dataset
        while 'dataset' in dataset:
            dataset = dataset['dataset']
        cfg.tta_pipeline = copy.deepcopy(dataset.pipeline)
        cfg.tta_pipeline[-1] = dict(
            type='TestTimeAug',
            transforms=[[
                dict(type='RandomFlip', prob=1.),
                dict(type='RandomFlip', prob=0.)
            ], [
                dict(type='PackDetInputs',
                     meta_keys=('img_id', 'img_path', 'ori_shape',
                                'img_shape', 'scale_factor', 'flip',
                                'flip_direction'))
            ]])


def test_config(args: argparse.Namespace) -> Config:
    """The config of ``tools/test.py``; the checkpoint is ``load_from``,
    read once by the Runner and checked by ``StrictLoadHook``."""
    cfg = _load(args)
    is_det = _is_detection(cfg)
    cfg.load_from = args.checkpoint
    if args.no_finetune:
        cfg.no_finetune = True
    if args.show or args.show_dir:
        _trigger_visualization_hook(cfg, args)
    if args.tta:
        if is_det:
            _set_detection_tta(cfg)
        elif 'tta_model' not in cfg or 'tta_pipeline' not in cfg:
            raise UsageError('--tta needs tta_model and tta_pipeline in the '
                             'config (mmseg defines them in its bases)')
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
    if args.out is not None and is_det and not args.out.endswith(
            ('.pkl', '.pickle')):
        raise UsageError(f'--out must be a .pkl file for detection, '
                         f'got {args.out!r}')
    if args.out is not None and not is_det:
        cfg.test_evaluator['output_dir'] = args.out
        cfg.test_evaluator['keep_results'] = True
    return cfg


def build_test_runner(args: argparse.Namespace) -> Runner:
    """The Runner of ``tools/test.py`` (see :func:`test_config`)."""
    cfg = test_config(args)
    setup_cpu_distributed(cfg)
    runner = _build_runner(cfg)
    if args.out is not None and _is_detection(cfg):
        from mmdet.evaluation import DumpDetResults
        runner.test_evaluator.metrics.append(
            DumpDetResults(out_file_path=args.out))
    return runner


def _run(parser: argparse.ArgumentParser, argv: Optional[List[str]],
         build, method: str):
    args = _parse(parser, argv)
    try:
        runner = build(args)
    except UsageError as error:
        parser.error(str(error))
    return runner, getattr(runner, method)()


def train(argv: Optional[List[str]] = None) -> Runner:
    """``tools/train.py``: returns the Runner after training."""
    runner, _ = _run(train_parser(), argv, build_train_runner, 'train')
    return runner


def test(argv: Optional[List[str]] = None) -> dict:
    """``tools/test.py``: returns the metrics."""
    _, metrics = _run(test_parser(), argv, build_test_runner, 'test')
    return metrics
