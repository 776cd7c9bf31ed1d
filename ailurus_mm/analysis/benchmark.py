"""Vanilla vs AiluRus on one model, measured in one process.

Three steps, three modules: :mod:`.inputs` makes the batch, this module
measures (returning a :class:`BenchmarkReport`), :mod:`.report` formats it.
Used by ``tools/benchmark.py`` and the demo. Every number is measured here:
times by :func:`~ailurus_mm.analysis.measure.interleaved_times` (variants
interleaved run by run, minimum reported), FLOPs by mmengine's
FlopAnalyzer, tokens by forward hooks on the layers during the timed runs.
"""
import dataclasses
import platform
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.config import Config
from torch import Tensor, nn

from .inputs import default_shape, make_batch
from .measure import (count_flops, count_parameters, interleaved_times,
                      peak_memory, recorded_tokens, stage_times)
from .variants import (DEFAULT_VARIANTS, DESCRIPTIONS, MERGED_DECODING,
                       VARIANTS, build_variants, supports_merged_decode)

__all__ = [
    'Seconds', 'VariantResult', 'BenchmarkReport', 'PredictTiming',
    'time_predictions', 'segmentation_stage_fns', 'run_benchmark',
    'default_shape', 'make_batch', 'VARIANTS', 'DEFAULT_VARIANTS'
]

# Where the time of a segmentation forward goes, in order.
SEG_STAGES = ('backbone', 'recover', 'decode_head', 'post')
DET_STAGES = ('backbone', 'neck_heads')


@dataclass
class Seconds:
    """Minimum and median of timed runs, in seconds."""
    min: float
    median: float

    @classmethod
    def of(cls, values: Sequence[float]) -> 'Seconds':
        ordered = sorted(values)
        return cls(min=ordered[0], median=ordered[len(ordered) // 2])


@dataclass
class VariantResult:
    """Everything measured for one variant.

    Attributes:
        stages: Inference time of the parts of the forward (segmentation:
            ``backbone`` (with clustering), ``recover`` (TokenRecover; absent
            with merged decoding and for the vanilla model), ``decode_head``
            (merged decoding: on the merged tokens, plus the gather),
            ``post`` (resize to the input size and argmax); detection:
            ``backbone``, ``neck_heads``), each timed alone on inputs
            computed beforehand.
        speedup: Images/s over the vanilla model's (if measured).
        flop_ratio: Vanilla FLOPs over this variant's.
    """
    description: str
    seconds: Seconds
    images_per_second: float
    parameters: int
    tokens_per_layer: List[int]
    stages: Dict[str, Seconds] = field(default_factory=dict)
    flops: Optional[int] = None
    peak_memory_bytes: Optional[int] = None
    speedup: Optional[float] = None
    flop_ratio: Optional[float] = None


@dataclass
class BenchmarkReport:
    """Settings, per-variant results (in :data:`VARIANTS` order) and
    summary ratios of one benchmark run."""
    settings: Dict[str, Any]
    results: Dict[str, VariantResult]
    summary: Dict[str, float]

    def to_dict(self) -> Dict[str, Any]:
        """JSON-serialisable form (what ``--out`` writes)."""
        return dataclasses.asdict(self)


@dataclass
class PredictTiming:
    """Timed ``predict`` calls of several models on one batch.

    Attributes:
        seconds: Every timed run's seconds, per model.
        tokens_per_layer: Sequence length each layer of each backbone got in
            the last run (with the cls token).
        predictions: The last run's predicted labels ``[B, H, W]``
            (segmentation models; empty for detectors).
    """
    seconds: Dict[str, List[float]]
    tokens_per_layer: Dict[str, List[int]]
    predictions: Dict[str, Tensor]


def time_predictions(models: Dict[str, nn.Module], inputs: Tensor,
                     samples: list, warmup: int, runs: int,
                     device: torch.device) -> PredictTiming:
    """Time ``model(inputs, samples, mode='predict')`` of every model,
    interleaved run by run, recording the tokens per layer and keeping the
    last predictions.

    Args:
        models: ``{name: model}`` in eval mode.
        inputs: Preprocessed images ``[B, 3, H, W]``.
        samples: Their data samples.
        warmup: Untimed rounds first.
        runs: Timed rounds.
        device: For synchronisation.
    """
    predictions: Dict[str, Tensor] = {}

    def predict(name: str, model: nn.Module) -> Callable[[], None]:
        def fn() -> None:
            with torch.no_grad():
                out = model(inputs, samples, mode='predict')
            if hasattr(out[0], 'pred_sem_seg'):
                predictions[name] = torch.stack(
                    [sample.pred_sem_seg.data[0] for sample in out])
        return fn

    with recorded_tokens({name: model.backbone
                          for name, model in models.items()}) as tokens:
        seconds = interleaved_times(
            {name: predict(name, model)
             for name, model in models.items()}, warmup, runs, device)
    return PredictTiming(seconds, tokens, predictions)


def _uses_merged_decoding(model: nn.Module, outputs) -> bool:
    decode = getattr(model, '_decode', None)
    if decode is None or not getattr(model, 'merged_decode', False):
        return False
    with torch.no_grad():
        return decode(outputs)[1] is None


def segmentation_stage_fns(model: nn.Module, inputs: Tensor,
                           samples: list) -> Dict[str, Callable[[], Any]]:
    """The parts of a segmentor's ``predict`` (see
    :attr:`VariantResult.stages`), each a function of inputs computed here
    once, in :data:`SEG_STAGES` order."""
    metas = [sample.metainfo for sample in samples]
    head = model.decode_head
    with torch.no_grad():
        outputs = model.backbone(inputs)
        merged = _uses_merged_decoding(model, outputs)
        if merged:
            logits = model._decode(outputs)[0]
        else:
            recovered = model.neck(outputs) if model.with_neck else outputs
            logits = head.forward(recovered)
    no_grad = torch.no_grad()
    fns = {'backbone': no_grad(lambda: model.backbone(inputs))}
    if model.with_neck and not merged:
        fns['recover'] = no_grad(lambda: model.neck(outputs))
    if merged:
        fns['decode_head'] = no_grad(lambda: model._decode(outputs))
    else:
        fns['decode_head'] = no_grad(lambda: head.forward(recovered))
    fns['post'] = no_grad(lambda: model.postprocess_result(
        head.predict_by_feat(logits, metas), samples))
    return fns


def _train_step_fn(model, cfg: Config, inputs, samples):
    from mmengine.optim import build_optim_wrapper

    model.train()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)

    def step():
        losses = model(inputs, samples, mode='loss')
        loss, _ = model.parse_losses(losses)
        optim_wrapper.update_params(loss)

    return step


def _check_variants(cfg: Config, variants: Sequence[str]) -> Tuple[str, ...]:
    unknown = set(variants) - set(VARIANTS)
    if unknown or not any(v.startswith('ailurus') for v in variants):
        raise ValueError('variants must include an AiluRus one (ailurus, '
                         f'ailurus_merged, ...), from {VARIANTS}; got '
                         f'{list(variants)}')
    return tuple(v for v in VARIANTS if v in variants)  # table order


def run_benchmark(cfg: Config,
                  checkpoint: Optional[str] = None,
                  shape: Optional[Tuple[int, int]] = None,
                  mode: str = 'infer',
                  warmup: int = 2,
                  runs: int = 5,
                  threads: Optional[int] = None,
                  device: str = 'cpu',
                  variants: Optional[Sequence[str]] = None,
                  flops: bool = True,
                  memory: bool = True,
                  stages: bool = True,
                  models: Optional[Dict[str, nn.Module]] = None
                  ) -> BenchmarkReport:
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
        variants: Which variants to measure (an AiluRus one at least;
            speed-ups need ``'vanilla'``). Default: :data:`DEFAULT_VARIANTS`,
            without the ``*_merged`` ones if the head has no merged decoding.
        flops: Count FLOPs (costs one traced forward per variant).
        memory: Measure peak memory (one profiled run per variant).
        stages: Also time the parts of the forward (inference; see
            :attr:`VariantResult.stages`).
        models: Variants already built by
            :func:`~ailurus_mm.analysis.variants.build_variants` (then
            ``checkpoint`` and ``variants`` are taken from them).
    """
    if mode not in ('infer', 'train'):
        raise ValueError(f"mode must be 'infer' or 'train', got {mode!r}")
    is_det = cfg.get('default_scope') == 'mmdet'
    if models is not None:
        variants = tuple(models)
    elif variants is None:
        merged_ok = not is_det and supports_merged_decode(cfg.model)
        variants = [v for v in DEFAULT_VARIANTS
                    if merged_ok or v not in MERGED_DECODING]
    variants = _check_variants(cfg, variants)
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
    models = {name: models[name] for name in variants}
    reference = next(name for name in variants if name.startswith('ailurus'))
    inputs, samples = make_batch(cfg, models[reference], shape, 1, device)

    stage_fns: Dict[str, Callable[[], Any]] = {}
    if mode == 'infer':
        timing = time_predictions(models, inputs, samples, warmup, runs,
                                  device)
        seconds, tokens = timing.seconds, timing.tokens_per_layer
        for name, model in models.items() if stages else ():
            if is_det:
                from .det_batch import backbone_fn, neck_and_heads_fn
                parts = dict(backbone=backbone_fn(model, inputs),
                             neck_heads=neck_and_heads_fn(model, inputs,
                                                          samples))
            else:
                parts = segmentation_stage_fns(model, inputs, samples)
            stage_fns.update(
                {f'{name}/{part}': fn for part, fn in parts.items()})
    else:
        steps = {name: _train_step_fn(model, cfg, inputs, samples)
                 for name, model in models.items()}
        with recorded_tokens({name: model.backbone
                              for name, model in models.items()}) as tokens:
            seconds = interleaved_times(steps, warmup, runs, device)
    stage_seconds = interleaved_times(stage_fns, warmup, runs,
                                      device) if stage_fns else {}

    results: Dict[str, VariantResult] = {}
    for name, model in models.items():
        model.eval()
        result = VariantResult(
            description=DESCRIPTIONS[name],
            seconds=Seconds.of(seconds[name]),
            images_per_second=1.0 / min(seconds[name]),
            parameters=count_parameters(model),
            tokens_per_layer=list(tokens[name]),
            stages={
                key.split('/', 1)[1]: Seconds.of(values)
                for key, values in stage_seconds.items()
                if key.split('/', 1)[0] == name
            })
        if flops:
            if is_det:  # mmdet's tensor mode needs the image metainfo
                from .det_batch import WithDataSamples
                result.flops = count_flops(WithDataSamples(model, samples),
                                           inputs)
            else:
                result.flops = count_flops(model, inputs)
        if memory:
            if mode == 'train':
                model.train()
                fn = _train_step_fn(model, cfg, inputs, samples)
            else:
                fn = torch.no_grad()(
                    lambda m=model: m(inputs, samples, mode='predict'))
            result.peak_memory_bytes = peak_memory(fn, device)
            model.eval()
        results[name] = result

    base = results.get('vanilla')
    for result in results.values() if base is not None else ():
        result.speedup = result.images_per_second / base.images_per_second
        if flops:
            result.flop_ratio = base.flops / result.flops
    summary = _summary(results, models, inputs, mode, warmup, runs)
    backbone = models[reference].backbone
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
        patch_tokens=_patch_tokens(tokens[reference][:1],
                                   backbone.with_cls_token),
        kept_tokens=_patch_tokens(tokens[reference][-1:],
                                  backbone.with_cls_token))
    return BenchmarkReport(settings, results, summary)


def _summary(results: Dict[str, VariantResult], models: Dict[str, nn.Module],
             inputs: Tensor, mode: str, warmup: int,
             runs: int) -> Dict[str, float]:
    summary: Dict[str, float] = {}

    def ratio(key: str, numerator: float, denominator: float) -> None:
        summary[key] = numerator / denominator

    for ailurus, ideal in (('ailurus', 'ideal'),
                           ('ailurus_merged', 'ideal_merged')):
        if ailurus in results and ideal in results:
            ratio(f'{ailurus}_over_{ideal}_time',
                  results[ailurus].seconds.min, results[ideal].seconds.min)
    if 'nothing_merged' in results and 'vanilla' in results:
        summary['nothing_merged_speedup'] = results['nothing_merged'].speedup
    for name in ('ailurus', 'ailurus_merged'):
        if name in results and 'vanilla' in results:
            for part, seconds in results[name].stages.items():
                if part in results['vanilla'].stages:
                    ratio(f'{name}_{part}_speedup',
                          results['vanilla'].stages[part].min, seconds.min)
    if 'ailurus_prop_attn' in results and 'ailurus' in results and \
            'backbone' in results['ailurus'].stages:
        ratio('prop_attn_backbone_time_ratio',
              results['ailurus_prop_attn'].stages['backbone'].min,
              results['ailurus'].stages['backbone'].min)
    if mode == 'infer':
        name = next(n for n in ('ailurus', 'ailurus_merged',
                                'ailurus_prop_attn') if n in models)
        model = models[name]
        # Recovery alone: TokenRecover may wrap a neck (detection).
        recover = getattr(model.neck, 'recover', model.neck)
        cluster_s, recover_s = stage_times(model.backbone, recover, inputs,
                                           warmup, runs)
        summary.update(cluster_merge_seconds=cluster_s,
                       recover_seconds=recover_s,
                       cluster_recover_share=(cluster_s + recover_s) /
                       results[name].seconds.min)
        if 'ailurus_merged' in results:
            summary['cluster_share_merged'] = (
                cluster_s / results['ailurus_merged'].seconds.min)
            summary['merged_head_all_tokens_time_ratio'] = \
                merged_head_kernel_ratio(models['ailurus_merged'], inputs,
                                         warmup, runs)
    return summary


def merged_head_kernel_ratio(model: nn.Module, inputs: Tensor, warmup: int,
                             runs: int) -> float:
    """Time of the merged-decoding head function on all ``N`` tokens (every
    cluster of size 1) over the vanilla head's on the same features: what
    the head's attention path alone changes, apart from the token count
    (scaled_dot_product_attention vs mmcv's ``nn.MultiheadAttention``
    call)."""
    from ailurus_mm.models.merged_decode import merged_head_forward
    from ailurus_mm.ops import ClusterAssignment

    head = model.decode_head
    with torch.no_grad():
        recovered = model.neck(model.backbone(inputs))
    feature = recovered[head.in_index]
    batch, _, height, width = feature.shape
    tokens = feature.flatten(2).transpose(1, 2)
    index = torch.arange(height * width, device=inputs.device).expand(
        batch, -1)
    identity = ClusterAssignment(index, torch.ones_like(index), index,
                                 (height, width))
    no_grad = torch.no_grad()
    times = interleaved_times(
        dict(vanilla=no_grad(lambda: head.forward(recovered)),
             merged=no_grad(
                 lambda: merged_head_forward(head, tokens, identity))),
        warmup, runs, inputs.device)
    return min(times['merged']) / min(times['vanilla'])


def _patch_tokens(counts: List[int], with_cls_token: bool) -> int:
    return counts[-1] - (1 if with_cls_token else 0)
