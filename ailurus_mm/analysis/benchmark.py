"""Vanilla vs AiluRus on one model, measured in one process.

Used by ``tools/benchmark.py`` and the demo. Every number is measured here:
times by :func:`~ailurus_mm.analysis.measure.interleaved_times`, FLOPs by
mmengine's FlopAnalyzer, tokens by forward hooks.
"""
import platform
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.config import Config

from .measure import (count_flops, count_parameters, describe_tokens,
                      interleaved_times, peak_memory, recorded_tokens,
                      stage_times, summarize)
from .variants import build_variants

VARIANTS = ('vanilla', 'nothing_merged', 'ideal', 'ailurus')
DESCRIPTIONS = {
    'vanilla': 'mmseg VisionTransformer, all tokens',
    'nothing_merged': 'AiluRusViT, num_clusters=1.0 (layers alone)',
    'ideal': 'ideal reducer: same token count, zero cost',
    'ailurus': 'AiluRusViT as configured',
}


def default_shape(cfg: Config) -> Tuple[int, int]:
    """The config's crop size (what the model is evaluated on per window)."""
    size = cfg.model.get('data_preprocessor', {}).get('size') or \
        cfg.get('crop_size') or cfg.model.backbone.get('img_size')
    if isinstance(size, int):
        return size, size
    return tuple(size)


def make_batch(cfg: Config,
               model,
               shape: Tuple[int, int],
               batch_size: int,
               device: torch.device,
               image=None):
    """A preprocessed batch of synthetic images (and labels for training)
    passed through the model's own data preprocessor.

    Args:
        image: Optional ``[H, W, 3]`` uint8 BGR image used instead of a
            synthetic one (resized to ``shape``).
    """
    if cfg.get('default_scope') == 'mmdet':
        from .det_batch import make_det_batch
        return make_det_batch(cfg, model, shape, batch_size, device)
    import cv2
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    from ailurus_mm.testing import synthetic_scene

    num_classes = cfg.model.decode_head.num_classes
    inputs, samples = [], []
    for i in range(batch_size):
        scene, label = synthetic_scene(*shape, num_classes, seed=i)
        if image is not None:
            scene = cv2.resize(image, (shape[1], shape[0]))
        inputs.append(torch.from_numpy(scene).permute(2, 0, 1).contiguous())
        sample = SegDataSample(
            metainfo=dict(
                ori_shape=shape, img_shape=shape, pad_shape=shape,
                scale_factor=(1.0, 1.0), flip=False, flip_direction=None,
                reduce_zero_label=False))
        sample.gt_sem_seg = PixelData(
            data=torch.from_numpy(label.astype('int64'))[None])
        samples.append(sample)
    # Normalise and stack with the model's own preprocessor, padded to
    # exactly ``shape`` (not to the config's crop size).
    preprocessor = model.data_preprocessor
    crop_size = preprocessor.size
    preprocessor.size = tuple(shape)
    try:
        data = preprocessor(
            dict(inputs=inputs, data_samples=samples), training=True)
    finally:
        preprocessor.size = crop_size
    samples = [sample.to(device) for sample in data['data_samples']]
    return data['inputs'].to(device), samples


def _train_step_fn(model, cfg: Config, inputs, samples):
    from mmengine.optim import build_optim_wrapper

    model.train()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)

    def step():
        losses = model(inputs, samples, mode='loss')
        loss, _ = model.parse_losses(losses)
        optim_wrapper.update_params(loss)

    return step


def run_benchmark(cfg: Config,
                  checkpoint: Optional[str] = None,
                  shape: Optional[Tuple[int, int]] = None,
                  mode: str = 'infer',
                  warmup: int = 2,
                  runs: int = 5,
                  threads: Optional[int] = None,
                  device: str = 'cpu',
                  variants: Sequence[str] = VARIANTS,
                  flops: bool = True,
                  memory: bool = True,
                  backbone_times: bool = True,
                  models: Optional[Dict[str, torch.nn.Module]] = None) -> Dict:
    """Measure the variants of an AiluRus config (see
    :mod:`ailurus_mm.analysis.variants`).

    Args:
        cfg: An AiluRus config.
        checkpoint: Optional checkpoint of the model (else random weights:
            speed does not depend on them, clustering only mildly).
        shape: Input ``(H, W)``; the config's crop size by default.
        mode: ``'infer'`` (a predict forward) or ``'train'`` (a full
            optimizer step with the config's optimizer).
        warmup: Untimed rounds first.
        runs: Timed rounds; each variant's minimum is reported.
        threads: ``torch.set_num_threads`` (default: leave as is).
        device: ``'cpu'`` or ``'cuda'``...
        variants: Which variants to measure (``'ailurus'`` at least;
            speed-ups need ``'vanilla'``).
        flops: Count FLOPs (costs one traced forward per variant).
        memory: Measure peak memory (one profiled run per variant).
        backbone_times: Also time parts of the model (inference):
            segmentation, the backbone with the neck (``extract_feat``);
            detection, the backbone alone and the neck plus heads (for
            AiluRus, TokenRecover belongs to the neck).
        models: Variants already built by
            :func:`~ailurus_mm.analysis.variants.build_variants` (then
            ``checkpoint`` and ``variants`` are taken from them).

    Returns:
        A JSON-serialisable dict with ``settings`` and per-variant results.
    """
    if mode not in ('infer', 'train'):
        raise ValueError(f"mode must be 'infer' or 'train', got {mode!r}")
    if models is not None:
        variants = tuple(models)
    unknown = set(variants) - set(VARIANTS)
    if unknown or 'ailurus' not in variants:
        raise ValueError(f'variants must include ailurus, from {VARIANTS}; '
                         f'got {list(variants)}')
    variants = tuple(v for v in VARIANTS if v in variants)  # table order
    if warmup < 0 or runs < 1:
        raise ValueError(f'need warmup >= 0 and runs >= 1, got {warmup}, '
                         f'{runs}')
    if threads is not None:
        torch.set_num_threads(threads)
    device = torch.device(device)
    shape = tuple(shape) if shape is not None else default_shape(cfg)
    if models is None:
        models = build_variants(cfg, checkpoint, names=variants,
                                device=device)
    inputs, samples = make_batch(cfg, models['ailurus'], shape, 1, device)
    is_det = cfg.get('default_scope') == 'mmdet'
    neck_heads_fns = {}

    if mode == 'infer':
        def forward_fn(model):
            def fn():
                with torch.no_grad():
                    return model(inputs, samples, mode='predict')
            return fn
        fns = {name: forward_fn(model) for name, model in models.items()}
        backbone_fns = {
            name: (lambda m=model: torch.no_grad()(m.extract_feat)(inputs))
            for name, model in models.items()
        } if backbone_times else {}
        if backbone_times and is_det:
            from .det_batch import backbone_fn, neck_and_heads_fn
            backbone_fns = {name: backbone_fn(model, inputs)
                            for name, model in models.items()}
            neck_heads_fns = {
                name: neck_and_heads_fn(model, inputs, samples)
                for name, model in models.items()
            }
    else:
        fns = {
            name: _train_step_fn(model, cfg, inputs, samples)
            for name, model in models.items()
        }
        backbone_fns = {}

    # The token counts are those of the timed runs themselves.
    with recorded_tokens({name: model.backbone
                          for name, model in models.items()}) as tokens:
        times = interleaved_times(fns, warmup, runs, device)
    backbone_seconds = interleaved_times(backbone_fns, warmup, runs,
                                         device) if backbone_fns else {}
    neck_heads_seconds = interleaved_times(
        neck_heads_fns, warmup, runs, device) if neck_heads_fns else {}

    results = {}
    for name, model in models.items():
        model.eval()
        entry = dict(
            description=DESCRIPTIONS[name],
            seconds=summarize(times[name]),
            images_per_second=1.0 / min(times[name]),
            parameters=count_parameters(model),
            tokens_per_layer=tokens[name])
        if name in backbone_seconds:
            entry['backbone_seconds'] = summarize(backbone_seconds[name])
        if name in neck_heads_seconds:
            entry['neck_heads_seconds'] = summarize(neck_heads_seconds[name])
        if flops:
            if is_det:  # mmdet's tensor mode needs the image metainfo
                from .det_batch import WithDataSamples
                entry['flops'] = count_flops(
                    WithDataSamples(model, samples), inputs)
            else:
                entry['flops'] = count_flops(model, inputs)
        if memory:
            fn = fns[name]
            if mode == 'train':
                model.train()
            entry['peak_memory_bytes'] = peak_memory(fn, device)
            model.eval()
        results[name] = entry

    base = results.get('vanilla')
    for entry in results.values():
        if base is None:
            break
        entry['speedup'] = entry['images_per_second'] / base[
            'images_per_second']
        if flops:
            entry['flop_ratio'] = base['flops'] / entry['flops']

    ailurus = models['ailurus']
    summary = {}
    if 'ideal' in results:
        summary['ailurus_over_ideal_time'] = (
            results['ailurus']['seconds']['min'] /
            results['ideal']['seconds']['min'])
    if 'nothing_merged' in results and base is not None:
        summary['nothing_merged_speedup'] = results['nothing_merged'][
            'speedup']
    if neck_heads_seconds and base is not None:
        for part in ('backbone', 'neck_heads'):
            summary[f'{part}_speedup'] = (
                results['vanilla'][f'{part}_seconds']['min'] /
                results['ailurus'][f'{part}_seconds']['min'])
    if mode == 'infer':
        # Recovery alone: TokenRecover may wrap a neck (detection).
        recover = getattr(ailurus.neck, 'recover', ailurus.neck)
        cluster_s, recover_s = stage_times(ailurus.backbone, recover,
                                           inputs, warmup, runs)
        total = results['ailurus']['seconds']['min']
        summary.update(
            cluster_merge_seconds=cluster_s,
            recover_seconds=recover_s,
            cluster_recover_share=(cluster_s + recover_s) / total)
    backbone = ailurus.backbone
    settings = dict(
        config=cfg.filename,
        checkpoint=checkpoint,
        mode=mode,
        shape=list(shape),
        batch_size=1,
        warmup=warmup,
        runs=runs,
        threads=torch.get_num_threads(),
        device=str(device),
        torch=torch.__version__,
        machine=platform.machine(),
        processor=platform.processor(),
        cluster_layer=backbone.cluster_layer,
        num_clusters=backbone.num_clusters,
        k=backbone.k,
        spatial_weight=backbone.spatial_weight,
        window=backbone.window,
        prop_attn=backbone.prop_attn,
        patch_tokens=_patch_tokens(
            results['ailurus']['tokens_per_layer'][:1],
            backbone.with_cls_token),
        kept_tokens=_patch_tokens(
            results['ailurus']['tokens_per_layer'][-1:],
            backbone.with_cls_token))
    return dict(settings=settings, results=results, summary=summary)


def _neck_heads_share(entry: Dict) -> float:
    return entry['neck_heads_seconds']['min'] / entry['seconds']['min']


def _patch_tokens(counts: List[int], with_cls_token: bool) -> int:
    return counts[-1] - (1 if with_cls_token else 0)


def format_table(report: Dict) -> str:
    """The report as a plain-text table."""
    settings, results = report['settings'], report['results']
    lines = [
        f"config: {settings['config']}",
        f"mode: {settings['mode']}, input {settings['shape'][0]}x"
        f"{settings['shape'][1]}, batch 1, {settings['threads']} threads on "
        f"{settings['device']} ({settings['machine']}), warm-up "
        f"{settings['warmup']}, min of {settings['runs']} interleaved runs",
        f"AiluRus: cluster_layer={settings['cluster_layer']}, "
        f"num_clusters={settings['num_clusters']}: "
        f"{settings['patch_tokens']} -> {settings['kept_tokens']} patch "
        f"tokens, k={settings['k']}, spatial_weight="
        f"{settings['spatial_weight']}, window={settings['window']}",
        '',
    ]
    first = results['ailurus']
    has_flops = 'flops' in first
    has_memory = 'peak_memory_bytes' in first
    has_backbone = 'backbone_seconds' in first
    has_neck_heads = 'neck_heads_seconds' in first
    has_ratio = 'speedup' in first
    header = f"{'variant':<16}{'img/s':>9}{'speed-up':>10}"
    if has_neck_heads:
        header += f"{'whole ms':>10}"
    if has_backbone:
        header += f"{'backbone ms':>13}"
    if has_neck_heads:
        header += f"{'neck+heads ms':>15}"
    if has_flops:
        header += f"{'GFLOPs':>10}{'FLOP ratio':>12}"
    header += f"{'params M':>10}"
    if has_memory:
        header += f"{'peak MB':>9}"
    header += '  tokens per layer'
    lines.append(header)
    for name, entry in results.items():
        row = f"{name:<16}{entry['images_per_second']:>9.3f}"
        row += f"{entry['speedup']:>9.2f}x" if has_ratio else f"{'-':>10}"
        if has_neck_heads:
            row += f"{1000 * entry['seconds']['min']:>10.1f}"
        if has_backbone:
            row += f"{1000 * entry['backbone_seconds']['min']:>13.1f}"
        if has_neck_heads:
            row += f"{1000 * entry['neck_heads_seconds']['min']:>15.1f}"
        if has_flops:
            row += f"{entry['flops'] / 1e9:>10.1f}"
            row += f"{entry['flop_ratio']:>11.2f}x" if has_ratio else \
                f"{'-':>12}"
        row += f"{entry['parameters'] / 1e6:>10.1f}"
        if has_memory:
            row += f"{entry['peak_memory_bytes'] / 2**20:>9.0f}"
        row += '  ' + describe_tokens(entry['tokens_per_layer'])
        lines.append(row)
    summary = report['summary']
    lines.append('')
    if has_neck_heads and 'backbone_speedup' in summary:
        vanilla, ailurus = results['vanilla'], results['ailurus']
        lines.append(
            'where the time goes (neck+heads run on the backbone output, '
            'TokenRecover counts as neck): backbone '
            f"{summary['backbone_speedup']:.2f}x, neck+heads "
            f"{summary['neck_heads_speedup']:.2f}x, whole detector "
            f"{ailurus['speedup']:.2f}x; neck+heads take "
            f"{100 * _neck_heads_share(vanilla):.0f}% of the vanilla and "
            f"{100 * _neck_heads_share(ailurus):.0f}% of the AiluRus "
            'detector')
    if 'ailurus_over_ideal_time' in summary:
        lines.append('AiluRus time / ideal reducer time: '
                     f"{summary['ailurus_over_ideal_time']:.3f}")
    if 'nothing_merged_speedup' in summary:
        lines.append('layers alone (nothing merged vs vanilla): '
                     f"{summary['nothing_merged_speedup']:.3f}x")
    if 'cluster_recover_share' in summary:
        lines.append(
            f"clustering+merge {1000 * summary['cluster_merge_seconds']:.1f}"
            f" ms, recovery {1000 * summary['recover_seconds']:.1f} ms: "
            f"{100 * summary['cluster_recover_share']:.2f}% of the AiluRus "
            'forward')
    return '\n'.join(lines)
