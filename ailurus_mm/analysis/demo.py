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
from mmengine.config import DictAction

from ailurus_mm.apis.config import find_config, load_config

# Found in the installed package as well as in a source checkout.
DEFAULT_CONFIG = find_config('segmenter_vitl_ailurus.py')


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
    parser.add_argument('--runs', type=int, default=2)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    parser.add_argument(
        '--accuracy-checkpoint',
        help='the accuracy line: a model of the synthetic proxy (default: '
        'the one shipped in ailurus_mm/checkpoints)')
    parser.add_argument('--accuracy-images', type=int, default=8,
                        help='generated 640x640 proxy scenes for the '
                        'accuracy line (0: skip it)')
    return parser


def demo_main(argv: Optional[List[str]] = None) -> dict:
    from ailurus_mm.apis.checkpoint import allow_mmengine_checkpoints
    from ailurus_mm.ops import resolve_num_clusters
    from .benchmark import time_predictions
    from .cli import quiet_mmengine
    from .inputs import default_shape, make_batch
    from .measure import describe_tokens
    from .variants import build_variants, config_variant

    args = demo_parser().parse_args(argv)
    quiet_mmengine()
    allow_mmengine_checkpoints()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    cfg = load_config(args.config, args.cfg_options)
    shape = default_shape(cfg)
    device = torch.device(args.device)
    weights = args.checkpoint or 'random weights (no checkpoint given)'
    print(f'AiluRus demo: {osp.basename(args.config)} at {shape[0]}x'
          f'{shape[1]}, {weights}')
    # The config's own AiluRus model (with merged decoding if it asks).
    ailurus = config_variant(cfg.model)
    models = build_variants(cfg, args.checkpoint,
                            names=('vanilla', ailurus), device=device)
    models['ailurus'] = models.pop(ailurus)
    image = None
    if args.image:
        import mmcv
        image = mmcv.imread(args.image)
    inputs, samples = make_batch(cfg, models['vanilla'], shape, 1, device,
                                 image=image)

    print(f'timing both models in this process: batch 1, {args.warmup} '
          f'warm-up + {args.runs} interleaved runs each, '
          f'{torch.get_num_threads()} threads on {device} ...', flush=True)
    # The benchmark's own measurement: each timed run predicts the image;
    # the last predictions and the token count of every layer are kept.
    timing = time_predictions(models, inputs, samples, args.warmup,
                              args.runs, device)
    tokens, preds = timing.tokens_per_layer, timing.predictions

    backbone = models['ailurus'].backbone
    extra = 1 if backbone.with_cls_token else 0
    patch_tokens = tokens['vanilla'][0] - extra
    kept = resolve_num_clusters(backbone.num_clusters, patch_tokens)
    speed = {name: 1.0 / min(values)
             for name, values in timing.seconds.items()}
    agreement = (preds['vanilla'] == preds['ailurus']).float().mean().item()
    per_layer = {name: describe_tokens(t) for name, t in tokens.items()}
    print(f'tokens: {patch_tokens} patch tokens -> {kept} after layer '
          f'{backbone.cluster_layer} (num_clusters={backbone.num_clusters});'
          f" per layer: vanilla {per_layer['vanilla']}, AiluRus "
          f"{per_layer['ailurus']} (+{extra} cls)")
    print(f"vanilla: {speed['vanilla']:.4f} img/s, AiluRus: "
          f"{speed['ailurus']:.4f} img/s, speed-up "
          f"{speed['ailurus'] / speed['vanilla']:.2f}x (min of "
          f'{args.runs} runs)')
    print(f'pixel agreement of the two predictions: {100 * agreement:.2f}%')
    accuracy = None
    if args.accuracy_images > 0:
        from .accuracy import proxy_accuracy
        accuracy = proxy_accuracy(args.accuracy_checkpoint,
                                  args.accuracy_images, device=args.device)
        print(f"accuracy (synthetic proxy, not ADE20K): Segmenter ViT-T "
              f"trained here, {accuracy['images']} generated scenes at "
              f"640x640, {accuracy['tokens']} -> {accuracy['kept']} tokens "
              f"with AiluRusViT's defaults: vanilla mIoU "
              f"{accuracy['vanilla']:.2f}, AiluRus mIoU "
              f"{accuracy['ailurus']:.2f}")
    return dict(
        accuracy=accuracy,
        images_per_second=speed,
        speedup=speed['ailurus'] / speed['vanilla'],
        patch_tokens=patch_tokens,
        kept_tokens=kept,
        tokens_per_layer={name: list(t) for name, t in tokens.items()},
        predictions=preds,
        pixel_agreement=agreement,
        threads=torch.get_num_threads())
