"""Command-line front ends of the analysis tools."""
import argparse
from typing import List, Optional

from mmengine.config import Config, DictAction

from ailurus_mm.apis.config import load_config
from .variants import VARIANTS


def quiet_mmengine() -> None:
    """Keep mmengine's INFO logs (per-parameter init reports) off the
    console of the analysis tools: they print their own report."""
    from mmengine.logging import MMLogger
    MMLogger.get_instance('ailurus_mm_analysis', log_level='WARNING')


def benchmark_parser() -> argparse.ArgumentParser:
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
    parser.add_argument('--threads', type=int,
                        help='torch threads (default: torch default)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument(
        '--variants', nargs='+', choices=VARIANTS,
        help='which versions to time (an AiluRus one at least; speed-ups '
        'need vanilla; default: all but ailurus_prop_attn, the *_merged '
        'ones if the decode head has merged decoding)')
    parser.add_argument('--no-stage-times', '--no-backbone-times',
                        dest='no_stage_times', action='store_true',
                        help='skip timing the parts of the forward '
                        '(backbone, recovery, head, post-processing)')
    parser.add_argument('--no-flops', action='store_true',
                        help='skip FLOP counting')
    parser.add_argument('--no-memory', action='store_true',
                        help='skip peak memory')
    parser.add_argument('--out', help='also write the report as JSON here')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, e.g. '
        'model.backbone.num_clusters=0.5')
    return parser


def benchmark_main(argv: Optional[List[str]] = None) -> dict:
    """Returns the report as a dict (what ``--out`` writes)."""
    from ailurus_mm.analysis import format_table, run_benchmark
    from ailurus_mm.analysis.report import write_json
    from ailurus_mm.apis.checkpoint import allow_mmengine_checkpoints

    args = benchmark_parser().parse_args(argv)
    quiet_mmengine()
    allow_mmengine_checkpoints()
    cfg = load_config(args.config, args.cfg_options)
    report = run_benchmark(
        cfg,
        checkpoint=args.checkpoint,
        shape=args.shape,
        mode=args.mode,
        warmup=args.warmup,
        runs=args.runs,
        threads=args.threads,
        device=args.device,
        variants=args.variants,
        flops=not args.no_flops,
        memory=not args.no_memory,
        stages=not args.no_stage_times)
    print(format_table(report))
    if args.out:
        write_json(report, args.out)
    return report.to_dict()


def _load_cfg(path: str, cfg_options) -> Config:
    from ailurus_mm.apis.checkpoint import allow_mmengine_checkpoints

    quiet_mmengine()
    allow_mmengine_checkpoints()
    return load_config(path, cfg_options)


def visualize_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description='Cluster map, resolution map and vanilla vs AiluRus '
        'predictions of images, one PNG each')
    parser.add_argument('config', help='an AiluRus config')
    parser.add_argument('checkpoint', help='checkpoint of the model')
    parser.add_argument('images', nargs='+', help='image files')
    parser.add_argument('--out-dir', required=True,
                        help='where the PNGs are written')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser


def visualize_main(argv: Optional[List[str]] = None) -> list:
    from ailurus_mm.analysis.visualize import visualize_images

    args = visualize_parser().parse_args(argv)
    cfg = _load_cfg(args.config, args.cfg_options)
    records = visualize_images(cfg, args.checkpoint, args.images,
                               args.out_dir, device=args.device)
    for record in records:
        print(f"{record['path']}: {record['patch_tokens']} -> "
              f"{record['kept_tokens']} tokens, "
              f"{100 * record['pixel_agreement']:.1f}% pixels agree")
    return records


def sweep_parser() -> argparse.ArgumentParser:
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
        '--reducers', nargs='+',
        help="token reducers to compare (from the accuracy benchmark: "
        "ailurus, dpc_knn_plain, farthest, kmeans, tome, random, grid, "
        "ailurus_detail); default: the config's clustering")
    parser.add_argument(
        '--prop-attn', nargs='+', choices=['off', 'on'],
        help="proportional attention settings (default: the config's)")
    parser.add_argument('--out-dir', default='sweep')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser


def sweep_main(argv: Optional[List[str]] = None) -> list:
    from ailurus_mm.analysis.sweep import run_sweep

    args = sweep_parser().parse_args(argv)
    cfg = _load_cfg(args.config, args.cfg_options)
    prop_attn = None if args.prop_attn is None else [
        p == 'on' for p in dict.fromkeys(args.prop_attn)]
    rows = run_sweep(cfg, args.checkpoint, args.num_clusters,
                     args.cluster_layer, out_dir=args.out_dir,
                     device=args.device, threads=args.threads,
                     reducers=args.reducers, prop_attn=prop_attn)
    print(f"{'setting':<60}{'mIoU':>8}{'img/s':>10}{'speed-up':>10}")
    for row in rows:
        print(f"{row['setting']:<60}{row['mIoU']:>8.2f}"
              f"{row['images_per_second']:>10.3f}{row['speedup']:>9.2f}x")
    print(f'wrote {args.out_dir}/sweep.csv and {args.out_dir}/sweep.png')
    return rows
