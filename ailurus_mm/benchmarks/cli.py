"""The command lines of the suite's tools, in one place: every parser and
``main`` of ``tools/benchmark.py``, ``sweep.py``, ``visualize.py``,
``accuracy_benchmark.py`` and ``demo.py``.

Each ``main`` validates all its settings (a one-line usage error naming the
flag) before it reads data or builds a model. Process-wide settings (torch
threads, flush-denormal, warning filters) are the entry scripts': see
:func:`entry`.
"""
import argparse
import os.path as osp
from typing import Any, Callable, Dict, List, Optional

import torch
from mmengine.config import DictAction

from ailurus_mm.convert import model_clustering
from .paths import (OutputPathError, RunLock, prepare_dir, prepare_file,
                    refuse_results)

# Known mmengine log warnings about its own API that our tools trigger
# only through mmengine and mmseg (dropped from the tools' console).
UPSTREAM_LOG_WARNINGS = (
    '"FileClient" will be deprecated', '"HardDiskBackend" is the alias',
    'The torch.Tensor.cuda', 'DeprecationWarning: pretrained is deprecated')


class _UpstreamLogFilter:
    """A ``logging`` filter dropping :data:`UPSTREAM_LOG_WARNINGS`."""

    def filter(self, record) -> bool:
        message = record.getMessage()
        return not any(text in message for text in UPSTREAM_LOG_WARNINGS)


def quiet_mmengine() -> None:
    """Keep mmengine's INFO logs (per-parameter init reports) and its known
    deprecation warnings off the console of the suite's tools: they print
    their own report. Our own warnings are not filtered."""
    from mmengine.logging import MMLogger
    logger = MMLogger.get_instance('ailurus_mm_benchmarks',
                                   log_level='WARNING')
    if not any(isinstance(f, _UpstreamLogFilter) for f in logger.filters):
        logger.addFilter(_UpstreamLogFilter())


def entry(main: Callable[[Optional[List[str]]], Any]) -> None:
    """Run a tool's ``main`` as its entry script: upstream warnings
    filtered, flush-denormal on (CPU training and long evaluations slow
    down several-fold on denormal floats), Runner checkpoints readable."""
    from ailurus_mm.compat import allow_mmengine_checkpoints

    from .quiet import quiet_upstream_warnings
    quiet_upstream_warnings()
    torch.set_flush_denormal(True)
    allow_mmengine_checkpoints()
    main(None)


def _threads(parser: argparse.ArgumentParser, value: Optional[int]) -> None:
    if value is not None:
        if value < 1:
            parser.error(f'--threads must be >= 1, got {value}')
        torch.set_num_threads(value)


def _device(parser: argparse.ArgumentParser, value: str) -> None:
    try:
        device = torch.device(value)
    except RuntimeError as error:
        parser.error(f'--device {value!r}: {error}')
    if device.type == 'cuda' and not torch.cuda.is_available():
        parser.error(f'--device {value}: CUDA is not available here')


def _load(parser: argparse.ArgumentParser, config: str, cfg_options):
    from ailurus_mm.zoo import load_config
    try:
        return load_config(config, cfg_options)
    except FileNotFoundError as error:
        parser.error(str(error))


def _start(parser: argparse.ArgumentParser, argv: Optional[List[str]]):
    """Parse ``argv``, check ``--device`` and load the config: the first
    steps of every tool with a config."""
    args = parser.parse_args(argv)
    _device(parser, args.device)
    quiet_mmengine()
    return args, _load(parser, args.config, args.cfg_options)


def _overwrite(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--overwrite', action='store_true',
                        help='replace the results of an earlier run at the '
                        'output path (refused otherwise)')


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int,
                        help='torch threads (default: torch\'s)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, e.g. '
                        'model.backbone.num_clusters=0.5')


# ---------------------------------------------------------------- benchmark
def benchmark_parser() -> argparse.ArgumentParser:
    from .variants import VARIANTS

    parser = argparse.ArgumentParser(
        description='Time vanilla vs AiluRus versions of one model in one '
        'process (plus the ideal reducer and the layers-alone row)')
    parser.add_argument('config', help='an AiluRus config')
    parser.add_argument('--checkpoint', help='optional checkpoint (random '
                        'weights otherwise)')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help='input size (default: the config crop size)')
    parser.add_argument('--mode', choices=['infer', 'train'],
                        default='infer',
                        help='infer: predict forward; train: full optimizer '
                        'step')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--runs', type=int, default=5)
    parser.add_argument(
        '--variants', nargs='+', choices=VARIANTS,
        help='which versions to time (an AiluRus one at least; speed-ups '
        'need vanilla; default: all, the *_merged '
        'ones if the decode head has merged decoding)')
    parser.add_argument('--no-stage-times', '--no-backbone-times',
                        dest='no_stage_times', action='store_true',
                        help='skip timing the parts of the forward')
    parser.add_argument('--no-flops', action='store_true')
    parser.add_argument('--no-memory', action='store_true')
    parser.add_argument('--out', help='also write the report as JSON here')
    parser.add_argument(
        '--runtime', choices=('pytorch', 'onnxruntime'), default='pytorch',
        help='onnxruntime: export vanilla and AiluRus to ONNX and time them '
        'in ONNX Runtime beside PyTorch (the deploy extra)')
    _overwrite(parser)
    _common(parser)
    return parser


def benchmark_main(argv: Optional[List[str]] = None):
    """``tools/benchmark.py``; returns the report."""
    from .speed.report import format_table, write_json
    from .speed.run import BenchmarkSpec, run_benchmark

    parser = benchmark_parser()
    args, cfg = _start(parser, argv)
    spec = BenchmarkSpec(
        checkpoint=args.checkpoint,
        shape=tuple(args.shape) if args.shape else None, mode=args.mode,
        warmup=args.warmup, runs=args.runs, device=args.device,
        variants=tuple(args.variants) if args.variants else None,
        flops=not args.no_flops, memory=not args.no_memory,
        stages=not args.no_stage_times)
    try:
        spec.validate(cfg)
        model_clustering(cfg.model)
        if args.out:
            prepare_file(args.out, '--out', inputs=(
                args.config, args.checkpoint or ''),
                overwrite=args.overwrite)
    except (ValueError, TypeError, FileNotFoundError) as error:
        parser.error(str(error))
    _threads(parser, args.threads)
    if args.runtime == 'onnxruntime':
        return _onnx_benchmark(parser, args, cfg)
    report = run_benchmark(cfg, spec)
    print(format_table(report))
    if args.out:
        write_json(report, args.out)
    return report


def _onnx_benchmark(parser: argparse.ArgumentParser,
                    args: argparse.Namespace, cfg) -> Dict:
    from .onnx_runtime import format_speed, onnx_speed
    from .paths import write_json
    from .speed.inputs import default_shape

    shape = tuple(args.shape) if args.shape else default_shape(cfg)
    result = onnx_speed(cfg, shape, args.checkpoint,
                        threads=args.threads or torch.get_num_threads(),
                        warmup=args.warmup, runs=args.runs)
    print(format_speed(result))
    if args.out:
        write_json(result, args.out)
    return result


# -------------------------------------------------------------------- sweep
def sweep_parser() -> argparse.ArgumentParser:
    from .presets import PRESET_NAMES

    parser = argparse.ArgumentParser(
        description='mIoU and images/s of vanilla and AiluRus settings on '
        "the config's test dataset; writes sweep.csv and sweep.png")
    parser.add_argument('config', help='an AiluRus config')
    parser.add_argument('checkpoint', help='checkpoint of the model')
    parser.add_argument('--num-clusters', type=float, nargs='+',
                        required=True,
                        help='fractions of the patch tokens to keep')
    parser.add_argument('--cluster-layer', type=int, nargs='+',
                        help="layers to cluster after (default: the "
                        "config's)")
    parser.add_argument(
        '--presets', '--reducers', dest='reducers', nargs='+',
        choices=PRESET_NAMES, metavar='PRESET',
        help="reducer presets to compare (default: the config's own "
        "clustering)")
    parser.add_argument(
        '--prop-attn', nargs='+', choices=['off', 'on'],
        help="proportional attention settings (default: the config's)")
    parser.add_argument('--out-dir', default='sweep')
    _overwrite(parser)
    _common(parser)
    return parser


def sweep_main(argv: Optional[List[str]] = None) -> list:
    """``tools/sweep.py``; returns the CSV rows."""
    from .sweep import SweepSpec, run_sweep

    parser = sweep_parser()
    args, cfg = _start(parser, argv)
    spec = SweepSpec(
        num_clusters=tuple(args.num_clusters),
        cluster_layers=tuple(args.cluster_layer) if args.cluster_layer
        else None,
        presets=tuple(args.reducers) if args.reducers else None,
        prop_attn=None if args.prop_attn is None else tuple(
            p == 'on' for p in dict.fromkeys(args.prop_attn)),
        device=args.device)
    try:
        spec.settings(cfg)
    except (ValueError, TypeError) as error:
        parser.error(str(error))
    if not osp.isfile(args.checkpoint):
        parser.error(f'checkpoint {args.checkpoint} does not exist')
    try:
        prepare_dir(args.out_dir)
        refuse_results(args.out_dir, ('sweep.csv', 'sweep.png'),
                       args.overwrite)
    except OutputPathError as error:
        parser.error(str(error))
    _threads(parser, args.threads)
    rows = run_sweep(cfg, args.checkpoint, spec, out_dir=args.out_dir)
    print(f"{'setting':<64}{'mIoU':>8}{'img/s':>10}{'speed-up':>10}")
    for row in rows:
        print(f"{row['setting']:<64}{row['mIoU']:>8.2f}"
              f"{row['images_per_second']:>10.3f}{row['speedup']:>9.2f}x")
    print(f'wrote {args.out_dir}/sweep.csv and {args.out_dir}/sweep.png')
    return rows


# ---------------------------------------------------------------- visualize
def visualize_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description='Cluster map, resolution map and vanilla vs AiluRus '
        'predictions of images, one PNG each')
    parser.add_argument('config', help='an AiluRus config')
    parser.add_argument('checkpoint', help='checkpoint of the model')
    parser.add_argument('images', nargs='+', help='image files')
    parser.add_argument('--out-dir', required=True,
                        help='where the PNGs are written '
                        '(<image name>_ailurus.png)')
    _overwrite(parser)
    _common(parser)
    return parser


def visualize_main(argv: Optional[List[str]] = None) -> list:
    """``tools/visualize.py``; returns one record per image."""
    from .visualize import check_images, panel_paths, visualize_images

    parser = visualize_parser()
    args, cfg = _start(parser, argv)
    try:
        check_images(args.images)
        model_clustering(cfg.model)
        prepare_dir(args.out_dir)
        outputs = panel_paths(args.images, args.out_dir)
        for path in outputs:
            prepare_file(path, '--out-dir', inputs=args.images,
                         overwrite=args.overwrite)
    except (ValueError, TypeError) as error:
        parser.error(str(error))
    if not osp.isfile(args.checkpoint):
        parser.error(f'checkpoint {args.checkpoint} does not exist')
    _threads(parser, args.threads)
    records = visualize_images(cfg, args.checkpoint, args.images,
                               outputs, device=args.device)
    for record in records:
        height, width = record['panel_shape']
        print(f"{record['path']}: {width}x{height} input, "
              f"{record['patch_tokens']} -> {record['kept_tokens']} "
              f"tokens, {100 * record['pixel_agreement']:.1f}% pixels "
              'agree')
    return records


# ----------------------------------------------------------------- accuracy
def accuracy_parser() -> argparse.ArgumentParser:
    from .accuracy.data import DATASETS
    from .common.train import FT_LR_FACTOR, FT_SCHEDULE_FRACTION
    from .accuracy.run import STUDIES
    from .presets import PRESET_NAMES

    parser = argparse.ArgumentParser(
        description='The accuracy benchmark: train a vanilla Segmenter ViT-T '
        '(or take --checkpoint) on the synthetic proxy or on CamVid, '
        'evaluate every token reducer without fine-tuning, choose the '
        'defaults, fine-tune; writes accuracy.csv/png/md and summary.json. '
        'Synthetic proxy or CamVid-with-a-small-ViT figures, not ADE20K.')
    parser.add_argument('--task', choices=('segmentation', 'detection'),
                        default='segmentation',
                        help='detection: the Mask R-CNN benchmark on the '
                        'synthetic COCO proxy (mmdet\'s CocoMetric)')
    parser.add_argument('--dataset', choices=tuple(DATASETS),
                        default='proxy',
                        help='segmentation: the synthetic proxy or CamVid')
    parser.add_argument('--data-root',
                        help='CamVid in mmseg\'s layout (--dataset camvid)')
    parser.add_argument('--out-dir', default='work_dirs/accuracy')
    parser.add_argument('--checkpoint', help='evaluate this model instead '
                        'of training one (e.g. a shipped one)')
    parser.add_argument('--export', help='where to write the trained fp16 '
                        'model (default: OUT_DIR/<its shipped name>)')
    parser.add_argument('--num-train', type=int, default=2000,
                        help='proxy training scenes')
    parser.add_argument('--layers', type=int, nargs='+', default=[3, 5],
                        help='detection: cluster layers studied besides '
                        'the default')
    parser.add_argument('--num-val', type=int,
                        help='proxy validation scenes (default: 64; '
                        'detection: 100)')
    parser.add_argument('--size', type=int, default=320,
                        help='proxy training resolution (validation at it '
                        'and 2x)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--iters', type=int,
                        help="training iterations (default: the config's)")
    parser.add_argument('--presets', '--reducers', dest='reducers',
                        nargs='+', choices=PRESET_NAMES, metavar='PRESET',
                        help='the settings to compare: a registered '
                        'reducer by name, or a variant (dpc_knn_plain, '
                        'dpc_cover_detail, dpc_cover_window); default: all')
    parser.add_argument('--keeps', type=float, nargs='+',
                        help="keep ratios (default: the dataset's)")
    parser.add_argument('--prop-attn', nargs='+', default=['off', 'on'],
                        choices=['off', 'on'])
    parser.add_argument('--studies', nargs='+', choices=STUDIES,
                        default=[], help='cluster layers 0-3, a second '
                        'clustering stage, anchors on class boundaries')
    parser.add_argument('--limit', type=int,
                        help='evaluate only the first LIMIT validation '
                        'images')
    parser.add_argument('--no-finetune', action='store_true',
                        help='skip the fine-tuning study')
    parser.add_argument('--finetune-only', action='store_true',
                        help='only the fine-tuning study')
    parser.add_argument('--ft-fraction', type=float,
                        help='fine-tuning iterations as a fraction of the '
                        "vanilla training's (default: the ailurus-ft_ "
                        f'recipe, {FT_SCHEDULE_FRACTION}; detection: a '
                        'short run, 0.125)')
    parser.add_argument('--ft-lr-factor', type=float, default=FT_LR_FACTOR,
                        help='fine-tuning learning rate as a factor of the '
                        "vanilla one (the ailurus-ft_ recipe: %(default)s)")
    parser.add_argument('--ft-train-keep', type=float,
                        help='keep ratio while fine-tuning (default: the '
                        'evaluated one)')
    parser.add_argument('--config', help='another training config')
    parser.add_argument('--jobs', type=int, default=1,
                        help='evaluate the grid in this many processes')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch threads of this process and of every '
                        'grid process')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    parser.add_argument('--splits', nargs='+', metavar='SPLIT',
                        help='evaluate only these splits (1x, 2x; '
                        'default: both)')
    _overwrite(parser)
    return parser


def accuracy_main(argv: Optional[List[str]] = None) -> Dict:
    """``tools/accuracy_benchmark.py``; returns the summary."""
    from .common.train import FT_SCHEDULE_FRACTION, Recipe
    from .accuracy.run import BenchmarkSpec, run_accuracy_benchmark

    parser = accuracy_parser()
    args = parser.parse_args(argv)
    if args.task == 'detection':
        return _detection_main(parser, args)
    if args.num_val is None:
        args.num_val = 64
    try:
        spec = BenchmarkSpec(
            dataset=args.dataset, out_dir=args.out_dir,
            data_root=args.data_root, checkpoint=args.checkpoint,
            export=args.export, iters=args.iters,
            presets=tuple(args.reducers) if args.reducers else None,
            keeps=tuple(args.keeps) if args.keeps else None,
            prop_attn=tuple(p == 'on' for p in dict.fromkeys(
                args.prop_attn)),
            studies=tuple(args.studies), finetune=not args.no_finetune,
            finetune_only=args.finetune_only,
            recipe=Recipe(args.ft_fraction or FT_SCHEDULE_FRACTION,
                          args.ft_lr_factor, args.ft_train_keep),
            config=args.config, cfg_options=args.cfg_options,
            num_train=args.num_train, num_val=args.num_val, size=args.size,
            seed=args.seed, device=args.device, jobs=args.jobs,
            threads=args.threads, limit=args.limit,
            splits=tuple(args.splits) if args.splits else None)
        spec.validate()
        _check_outputs(args)
    except (ValueError, TypeError, FileNotFoundError) as error:
        parser.error(str(error))
    _threads(parser, args.threads)
    quiet_mmengine()
    with RunLock(args.out_dir):
        summary = run_accuracy_benchmark(spec)
    if 'finetune_table' in summary:
        print(summary['finetune_table'])
    if 'table' in summary:
        print(summary['table'])
        chosen = summary.get('default_setting')
        rule = ', '.join(f'{b} mIoU at {s}'
                         for s, b in summary['rule'].items())
        print(f'fastest AiluRus setting within {rule} (drop beyond the '
              'noise): ' + ('none' if not chosen else ', '.join(
                  f"{s}: {r['setting']} prop_attn={r['prop_attn']} keep "
                  f"{r['keep']} (drop {r['drop']:.2f} +- {r['noise']:.2f})"
                  for s, r in chosen.items())))
    print(f'wrote {osp.join(args.out_dir, "summary.json")}')
    return summary


def _check_outputs(args: argparse.Namespace) -> None:
    """The accuracy benchmark's outputs, before any work: the folder (an
    earlier run's results refused unless ``--overwrite``, a running one's
    always) and the export."""
    prepare_dir(args.out_dir)
    refuse_results(args.out_dir, ('summary.json', 'accuracy.csv'),
                   args.overwrite)
    RunLock(args.out_dir).check()
    if args.export:
        prepare_file(args.export, '--export',
                     inputs=[args.checkpoint] if args.checkpoint else [],
                     overwrite=args.overwrite)


def _detection_main(parser: argparse.ArgumentParser,
                    args: argparse.Namespace) -> Dict:
    from .common.train import Recipe
    from .detection.run import (DET_RECIPE, DetectionSpec,
                                run_detection_benchmark)

    if args.dataset != 'proxy' or args.data_root and not osp.isdir(
            args.data_root):
        parser.error('--task detection runs on its own generated COCO '
                     'proxy (--data-root: where to generate it)')
    try:
        spec = DetectionSpec(
            out_dir=args.out_dir, data_root=args.data_root,
            checkpoint=args.checkpoint, export=args.export,
            iters=args.iters,
            presets=tuple(args.reducers) if args.reducers else None,
            keeps=tuple(args.keeps) if args.keeps else DetectionSpec.keeps,
            prop_attn=tuple(p == 'on' for p in dict.fromkeys(
                args.prop_attn)),
            layers=tuple(args.layers), finetune=not args.no_finetune,
            finetune_only=args.finetune_only,
            recipe=Recipe(args.ft_fraction or DET_RECIPE.fraction,
                          args.ft_lr_factor),
            config=args.config, cfg_options=args.cfg_options,
            num_train=args.num_train, num_val=args.num_val or 100,
            size=args.size, seed=args.seed, device=args.device,
            jobs=args.jobs, threads=args.threads, limit=args.limit,
            **({'splits': tuple(args.splits)} if args.splits else {}))
        spec.validate()
        _check_outputs(args)
    except (ValueError, TypeError, FileNotFoundError) as error:
        parser.error(str(error))
    _threads(parser, args.threads)
    quiet_mmengine()
    with RunLock(args.out_dir):
        summary = run_detection_benchmark(spec)
    if 'finetune_table' in summary:
        print(summary['finetune_table'])
    if 'table' not in summary:  # the fine-tuning study alone
        print(f'wrote {osp.join(args.out_dir, "summary.json")}')
        return summary
    print(summary['table'])
    chosen = summary['default_setting']
    print(f"Mask R-CNN default ({summary['rule']}): " + (
        'none' if chosen is None else
        f"{chosen['setting']} prop_attn={chosen['prop_attn']} keep "
        f"{chosen['keep']}"))
    print(f'wrote {osp.join(args.out_dir, "summary.json")}')
    return summary


# --------------------------------------------------------------------- demo
def demo_parser() -> argparse.ArgumentParser:
    from .demo import DEMO_CONFIG

    parser = argparse.ArgumentParser(
        description='Vanilla vs AiluRus Segmenter on one image, then the '
        'accuracy of a shipped benchmark model')
    parser.add_argument('--config', default=DEMO_CONFIG,
                        help='an AiluRus config (default: Segmenter ViT-L/16 '
                        'ADE20K 640x640)')
    parser.add_argument('--checkpoint', help='a vanilla mmseg checkpoint of '
                        'the model (default: random weights)')
    parser.add_argument('--image', help='an image (default: a generated '
                        'scene at the crop size)')
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--runs', type=int, default=2)
    parser.add_argument('--camvid-root',
                        help='CamVid in mmseg\'s layout: the accuracy line '
                        'on its validation images (default: the synthetic '
                        'proxy)')
    parser.add_argument(
        '--accuracy-images', type=int, default=8,
        help='images of the accuracy line (0: skip it)')
    _common(parser)
    return parser


def demo_main(argv: Optional[List[str]] = None) -> dict:
    """``tools/demo.py``; returns what it printed, as numbers."""
    from .demo import DemoSpec, run_demo

    parser = demo_parser()
    args = parser.parse_args(argv)
    _device(parser, args.device)
    if args.warmup < 0 or args.runs < 1:
        parser.error(f'need --warmup >= 0 and --runs >= 1, got '
                     f'{args.warmup}, {args.runs}')
    if args.image is not None:
        import cv2
        if not osp.isfile(args.image):
            parser.error(f'--image {args.image} does not exist')
        if cv2.imread(args.image) is None:
            parser.error(f'--image {args.image} cannot be read as an image '
                         '(empty, corrupt or not an image file)')
    if args.camvid_root is not None:
        from .accuracy.data import CAMVID
        try:
            CAMVID.check_data_root(args.camvid_root)
        except FileNotFoundError as error:
            parser.error(str(error))
    _load(parser, args.config, args.cfg_options)
    _threads(parser, args.threads)
    quiet_mmengine()
    return run_demo(DemoSpec(
        config=args.config, checkpoint=args.checkpoint, image=args.image,
        warmup=args.warmup, runs=args.runs, device=args.device,
        cfg_options=args.cfg_options,
        accuracy_images=args.accuracy_images,
        camvid_root=args.camvid_root), log=lambda *a: print(*a,
                                                            flush=True))
