"""The main job: accelerate a Segmenter and show what changes.

Builds the vanilla and AiluRus versions of a config's model with the same
weights, times both in one process on one image, and prints images/s, the
token count before/after clustering and how many pixels the two predictions
agree on.
"""
import argparse
import os.path as osp
from typing import List, Optional

import torch
from mmengine.config import Config, DictAction

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_CONFIG = osp.join(REPO, 'configs', 'segmenter_vitl_ailurus.py')


def demo_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description='Vanilla vs AiluRus Segmenter on one image')
    parser.add_argument('--config', default=DEFAULT_CONFIG,
                        help='an AiluRus config (default: Segmenter ViT-L/16 '
                        'ADE20K 640x640)')
    parser.add_argument('--checkpoint', help='a vanilla mmseg checkpoint of '
                        'the model (default: random weights)')
    parser.add_argument('--image', help='an image (default: a generated '
                        'scene at the crop size)')
    parser.add_argument('--threads', type=int, default=None)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--runs', type=int, default=3)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser


def prediction_agreement(models: dict, inputs, samples) -> float:
    """Share of pixels where vanilla and AiluRus predict the same class."""
    with torch.no_grad():
        preds = {
            name: model(inputs, samples, mode='predict')[0].pred_sem_seg.data
            for name, model in models.items()
        }
    return (preds['vanilla'] == preds['ailurus']).float().mean().item()


def demo_main(argv: Optional[List[str]] = None) -> dict:
    from ailurus_mm.apis.checkpoint import allow_mmengine_checkpoints
    from .benchmark import default_shape, make_batch, run_benchmark
    from .cli import quiet_mmengine
    from .variants import build_variants

    args = demo_parser().parse_args(argv)
    quiet_mmengine()
    allow_mmengine_checkpoints()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    shape = default_shape(cfg)
    weights = args.checkpoint or 'random weights (no checkpoint given)'
    print(f'AiluRus demo: {osp.basename(args.config)} at {shape[0]}x'
          f'{shape[1]}, {weights}')
    print('timing vanilla and AiluRus in this process (batch 1, '
          f'{args.warmup} warm-up + {args.runs} interleaved runs each) ...',
          flush=True)
    models = build_variants(cfg, args.checkpoint, names=('vanilla',
                                                         'ailurus'),
                            device=args.device)
    report = run_benchmark(
        cfg, checkpoint=args.checkpoint, shape=shape, mode='infer',
        warmup=args.warmup, runs=args.runs, threads=args.threads,
        device=args.device, flops=False, memory=False,
        backbone_times=False, models=models)

    image = None
    if args.image:
        import mmcv
        image = mmcv.imread(args.image)
    inputs, samples = make_batch(cfg, models['vanilla'], shape, 1,
                                 torch.device(args.device), image=image)
    agreement = prediction_agreement(models, inputs, samples)

    settings, results = report['settings'], report['results']
    vanilla, ailurus = results['vanilla'], results['ailurus']
    print(f"threads: {settings['threads']}, device: {settings['device']}")
    print(f"tokens: {settings['patch_tokens']} patch tokens -> "
          f"{settings['kept_tokens']} after layer "
          f"{settings['cluster_layer']} (num_clusters="
          f"{settings['num_clusters']}); tokens per layer: "
          f"vanilla {vanilla['tokens_per_layer']}, AiluRus "
          f"{ailurus['tokens_per_layer']}")
    print(f"vanilla: {vanilla['images_per_second']:.3f} img/s, AiluRus: "
          f"{ailurus['images_per_second']:.3f} img/s, speed-up "
          f"{ailurus['speedup']:.2f}x")
    print(f'pixel agreement of the two predictions: {100 * agreement:.2f}%')
    report['summary']['pixel_agreement'] = agreement
    return report
