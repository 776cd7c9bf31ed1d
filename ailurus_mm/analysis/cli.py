"""Command-line front ends of the analysis tools."""
import argparse
import json
from typing import List, Optional

from mmengine.config import Config, DictAction


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
    from ailurus_mm.analysis import format_table, run_benchmark
    from ailurus_mm.apis.checkpoint import allow_mmengine_checkpoints

    args = benchmark_parser().parse_args(argv)
    quiet_mmengine()
    allow_mmengine_checkpoints()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    report = run_benchmark(
        cfg,
        checkpoint=args.checkpoint,
        shape=args.shape,
        mode=args.mode,
        warmup=args.warmup,
        runs=args.runs,
        threads=args.threads,
        device=args.device,
        flops=not args.no_flops,
        memory=not args.no_memory)
    print(format_table(report))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(report, f, indent=2)
    return report
