"""Vanilla vs AiluRus on one model, measured in one process.

Three steps, three modules: :mod:`.inputs` makes the batch, this module
measures (returning a typed :class:`BenchmarkReport`), :mod:`.report`
formats it. Used by ``tools/benchmark.py`` and the demo. Every number is
measured here: times by :func:`.measure.interleaved_times` (variants
interleaved run by run, minimum reported), FLOPs by mmengine's
FlopAnalyzer, tokens by forward hooks on the layers during the timed runs.
"""
import dataclasses
import os.path as osp
import platform
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.config import Config
from torch import Tensor, nn

from ..variants import (DEFAULT_VARIANTS, DESCRIPTIONS, MERGED_DECODING,
                        VARIANTS, build_variants, supports_merged_decode)
from .inputs import default_shape, make_batch
from .measure import (count_flops, count_parameters, interleaved_times,
                      peak_memory, recorded_tokens, stage_times)

__all__ = [
    'Seconds', 'VariantResult', 'Summary', 'BenchmarkReport',
    'PredictTiming', 'time_predictions', 'segmentation_stage_fns',
    'run_benchmark', 'default_shape', 'make_batch', 'VARIANTS',
    'DEFAULT_VARIANTS'
]

# Where the time of a segmentation forward goes, in order.
SEG_STAGES = ('backbone', 'recover', 'decode_head', 'post')
DET_STAGES = ('backbone', 'recover', 'pyramid', 'rpn', 'roi_heads')


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
            ``backbone``, ``recover``, ``pyramid``, ``rpn``,
            ``roi_heads``), each timed alone on inputs computed
            beforehand.
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
class Summary:
    """The ratios of one run (``None`` where a variant was not measured).

    Attributes:
        over_ideal: AiluRus time over its ideal-reducer twin's, per AiluRus
            variant (``ailurus``/``ideal``, ``ailurus_merged``/
            ``ideal_merged``).
        nothing_merged_speedup: Layers alone (nothing merged) vs vanilla.
        stage_speedups: Per AiluRus variant, the speed-up of every part of
            the forward over the vanilla model's.
        cluster_merge_seconds, recover_seconds: AiluRus's own work, each
            timed alone on the tokens of a real forward.
        cluster_recover_share: Their share of the AiluRus forward.
        cluster_share_merged: Clustering's share of the merged-decoding
            forward.
        merged_head_all_tokens_time_ratio: The merged-decoding head on all
            ``N`` tokens over the vanilla head (the attention kernel alone).
        after_backbone_bound: The vanilla model's whole time over the time
            of its parts after the backbone: the speed-up a reducer would
            reach if the backbone cost nothing (the bound heavy necks and
            heads set).
    """
    over_ideal: Dict[str, float] = field(default_factory=dict)
    nothing_merged_speedup: Optional[float] = None
    stage_speedups: Dict[str, Dict[str, float]] = field(
        default_factory=dict)
    cluster_merge_seconds: Optional[float] = None
    recover_seconds: Optional[float] = None
    cluster_recover_share: Optional[float] = None
    cluster_share_merged: Optional[float] = None
    merged_head_all_tokens_time_ratio: Optional[float] = None
    after_backbone_bound: Optional[float] = None


@dataclass
class BenchmarkReport:
    """Settings (every knob of the measured AiluRus model included),
    per-variant results (in :data:`VARIANTS` order) and the summary of one
    benchmark run."""
    settings: Dict[str, Any]
    results: Dict[str, VariantResult]
    summary: Summary

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


@dataclass(frozen=True)
class BenchmarkSpec:
    """What one run measures (``tools/benchmark.py``'s flags).

    Attributes:
        checkpoint: Optional checkpoint of the model (else random weights:
            speed does not depend on them, clustering only mildly).
        shape: Input ``(H, W)``; the config's crop size by default.
        mode: ``'infer'`` (a predict forward) or ``'train'`` (a full
            optimizer step with the config's optimizer).
        warmup: Untimed rounds first.
        runs: Timed rounds; each variant's minimum is reported.
        device: ``'cpu'`` or ``'cuda'``...
        variants: Which variants to measure (an AiluRus one at least;
            speed-ups need ``'vanilla'``). Default: :data:`DEFAULT_VARIANTS`,
            without the ``*_merged`` ones if the head has no merged
            decoding.
        flops: Count FLOPs (costs one traced forward per variant).
        memory: Measure peak memory (one profiled run per variant).
        stages: Also time the parts of the forward (inference; see
            :attr:`VariantResult.stages`).
    """
    checkpoint: Optional[str] = None
    shape: Optional[Tuple[int, int]] = None
    mode: str = 'infer'
    warmup: int = 2
    runs: int = 5
    device: str = 'cpu'
    variants: Optional[Tuple[str, ...]] = None
    flops: bool = True
    memory: bool = True
    stages: bool = True

    def validate(self, cfg: Config) -> Tuple[str, ...]:
        """Every check before a model is built; returns the variants."""
        if self.mode not in ('infer', 'train'):
            raise ValueError(f"mode must be 'infer' or 'train', got "
                             f'{self.mode!r}')
        if self.warmup < 0 or self.runs < 1:
            raise ValueError(f'need warmup >= 0 and runs >= 1, got '
                             f'{self.warmup}, {self.runs}')
        if self.shape is not None and (len(self.shape) != 2 or min(
                self.shape) < 1):
            raise ValueError(f'shape must be two sizes >= 1 (H W), got '
                             f'{self.shape}')
        device = torch.device(self.device)
        if device.type == 'cuda' and not torch.cuda.is_available():
            raise ValueError(f'device {self.device}: CUDA is not available '
                             'here')
        if self.checkpoint is not None and '://' not in self.checkpoint \
                and not osp.isfile(self.checkpoint):
            raise FileNotFoundError(f'checkpoint {self.checkpoint} does not '
                                    'exist')
        variants = self.variants
        if variants is None:
            merged_ok = not _is_detection(cfg) and \
                supports_merged_decode(cfg.model)
            variants = [v for v in DEFAULT_VARIANTS
                        if merged_ok or v not in MERGED_DECODING]
        return _check_variants(cfg, variants)


def _is_detection(cfg: Config) -> bool:
    return cfg.get('default_scope') == 'mmdet'


def _stage_fns(models: Dict[str, nn.Module], inputs: Tensor, samples: list,
               is_det: bool) -> Dict[Tuple[str, str], Callable[[], Any]]:
    """``{(variant, part): fn}``: the parts of every model's forward."""
    fns: Dict[Tuple[str, str], Callable[[], Any]] = {}
    for name, model in models.items():
        if is_det:
            from .det_inputs import detection_stage_fns
            parts = detection_stage_fns(model, inputs, samples)
        else:
            parts = segmentation_stage_fns(model, inputs, samples)
        fns.update({(name, part): fn for part, fn in parts.items()})
    return fns


def _measure(cfg: Config, spec: BenchmarkSpec, models: Dict[str, nn.Module],
             inputs: Tensor, samples: list, device: torch.device):
    """Seconds of every timed run, tokens per layer and part times."""
    is_det = _is_detection(cfg)
    stage_seconds: Dict[Tuple[str, str], List[float]] = {}
    if spec.mode == 'infer':
        timing = time_predictions(models, inputs, samples, spec.warmup,
                                  spec.runs, device)
        seconds, tokens = timing.seconds, timing.tokens_per_layer
        if spec.stages:
            stage_seconds = interleaved_times(
                _stage_fns(models, inputs, samples, is_det), spec.warmup,
                spec.runs, device)
    else:
        steps = {name: _train_step_fn(model, cfg, inputs, samples)
                 for name, model in models.items()}
        with recorded_tokens({name: model.backbone
                              for name, model in models.items()}) as tokens:
            seconds = interleaved_times(steps, spec.warmup, spec.runs,
                                        device)
    return seconds, tokens, stage_seconds


def _variant_result(name: str, model: nn.Module, cfg: Config,
                    spec: BenchmarkSpec, seconds: List[float],
                    tokens: List[int],
                    stage_seconds: Dict[Tuple[str, str], List[float]],
                    inputs: Tensor, samples: list,
                    device: torch.device) -> VariantResult:
    model.eval()
    result = VariantResult(
        description=DESCRIPTIONS[name],
        seconds=Seconds.of(seconds),
        images_per_second=1.0 / min(seconds),
        parameters=count_parameters(model),
        tokens_per_layer=list(tokens),
        stages={part: Seconds.of(values)
                for (variant, part), values in stage_seconds.items()
                if variant == name})
    if spec.flops:
        if _is_detection(cfg):  # mmdet's tensor mode needs the metainfo
            from .det_inputs import WithDataSamples
            result.flops = count_flops(WithDataSamples(model, samples),
                                       inputs)
        else:
            result.flops = count_flops(model, inputs)
    if spec.memory:
        if spec.mode == 'train':
            model.train()
            fn = _train_step_fn(model, cfg, inputs, samples)
        else:
            fn = torch.no_grad()(
                lambda m=model: m(inputs, samples, mode='predict'))
        result.peak_memory_bytes = peak_memory(fn, device)
        model.eval()
    return result


def run_benchmark(cfg: Config,
                  spec: BenchmarkSpec = BenchmarkSpec(),
                  models: Optional[Dict[str, nn.Module]] = None
                  ) -> BenchmarkReport:
    """Measure the variants of an AiluRus config (see
    :mod:`ailurus_mm.benchmarks.variants`) in this process, with the torch
    threads it has.

    Args:
        cfg: An AiluRus config.
        spec: What to measure.
        models: Variants already built by
            :func:`~ailurus_mm.benchmarks.variants.build_variants` (then
            ``spec.checkpoint`` and ``spec.variants`` are taken from them).
    """
    if models is not None:
        spec = dataclasses.replace(spec, variants=tuple(models))
    variants = spec.validate(cfg)
    device = torch.device(spec.device)
    shape = tuple(spec.shape) if spec.shape is not None else \
        default_shape(cfg)
    if models is None:
        models = build_variants(cfg, spec.checkpoint, names=variants,
                                device=device)
    models = {name: models[name] for name in variants}
    reference = next(name for name in variants if name.startswith('ailurus'))
    inputs, samples = make_batch(cfg, models[reference], shape, 1, device)
    seconds, tokens, stage_seconds = _measure(cfg, spec, models, inputs,
                                              samples, device)
    results = {
        name: _variant_result(name, model, cfg, spec, seconds[name],
                              tokens[name], stage_seconds, inputs, samples,
                              device)
        for name, model in models.items()
    }
    base = results.get('vanilla')
    for result in results.values() if base is not None else ():
        result.speedup = result.images_per_second / base.images_per_second
        if spec.flops:
            result.flop_ratio = base.flops / result.flops
    summary = _summary(results, models, inputs, spec.mode, spec.warmup,
                       spec.runs)
    backbone = models[reference].backbone
    settings = dict(
        config=cfg.filename,
        checkpoint=spec.checkpoint,
        mode=spec.mode,
        shape=list(shape),
        batch_size=1,
        warmup=spec.warmup,
        runs=spec.runs,
        threads=torch.get_num_threads(),
        device=str(device),
        torch=torch.__version__,
        machine=platform.machine(),
        processor=platform.processor(),
        clustering=backbone.clustering.to_dict(),
        patch_tokens=_patch_tokens(tokens[reference][:1],
                                   backbone.with_cls_token),
        kept_tokens=_patch_tokens(tokens[reference][-1:],
                                  backbone.with_cls_token))
    return BenchmarkReport(settings, results, summary)


def _summary(results: Dict[str, VariantResult], models: Dict[str, nn.Module],
             inputs: Tensor, mode: str, warmup: int,
             runs: int) -> Summary:
    summary = Summary()
    for ailurus, ideal in (('ailurus', 'ideal'),
                           ('ailurus_merged', 'ideal_merged')):
        if ailurus in results and ideal in results:
            summary.over_ideal[ailurus] = (results[ailurus].seconds.min /
                                           results[ideal].seconds.min)
    vanilla = results.get('vanilla')
    if 'nothing_merged' in results and vanilla is not None:
        summary.nothing_merged_speedup = results['nothing_merged'].speedup
    for name in ('ailurus', 'ailurus_merged'):
        if name in results and vanilla is not None:
            summary.stage_speedups[name] = {
                part: vanilla.stages[part].min / seconds.min
                for part, seconds in results[name].stages.items()
                if part in vanilla.stages}
    if vanilla is not None and 'backbone' in vanilla.stages:
        after = sum(t.min for part, t in vanilla.stages.items()
                    if part != 'backbone')
        if after > 0:
            summary.after_backbone_bound = vanilla.seconds.min / after
    if mode == 'infer':
        name = next(n for n in ('ailurus', 'ailurus_merged')
                    if n in models)
        model = models[name]
        # Recovery alone: TokenRecover may wrap a neck (detection).
        recover = getattr(model.neck, 'recover', model.neck)
        cluster_s, recover_s = stage_times(model.backbone, recover, inputs,
                                           warmup, runs)
        summary.cluster_merge_seconds = cluster_s
        summary.recover_seconds = recover_s
        summary.cluster_recover_share = (cluster_s + recover_s) / \
            results[name].seconds.min
        if 'ailurus_merged' in results:
            summary.cluster_share_merged = (
                cluster_s / results['ailurus_merged'].seconds.min)
            summary.merged_head_all_tokens_time_ratio = \
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
