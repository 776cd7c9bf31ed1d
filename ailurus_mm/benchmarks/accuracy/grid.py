"""The evaluation grid: vanilla and every setting on every split, scored
with mmseg's ``IoUMetric``, without fine-tuning.

A :class:`Setting` is a preset (:mod:`ailurus_mm.benchmarks.presets`) at a
keep ratio with ``prop_attn`` on or off, on a base
:class:`~ailurus_mm.ops.ClusterConfig` (e.g. another ``cluster_layer``).
Every row records every knob of the model it measured.

The noise of a drop is half the difference between the drops on the two
disjoint halves of the split (even and odd images): ``|drop_a - drop_b| /
2`` estimates the standard error of the drop on the whole split.
"""
import dataclasses
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.config import Config

from ailurus_mm.convert import ailurus_model_config
from ailurus_mm.ops import ClusterConfig
from ..common.settings import VANILLA, VANILLA_SETTING, Setting
from ..models import build_with_weights
from .data import AccuracyDataset, Split, load_batches


@dataclasses.dataclass
class Row:
    """One evaluated setting on one split.

    Attributes:
        kept_tokens: Patch tokens after clustering (the mean over images
            for a per-image count), ``tokens`` for the vanilla model.
        layer_fraction: The mean over layers of the fraction of patch
            tokens a layer runs on (a compute measure comparable across
            ``cluster_layer`` settings).
        class_iou: IoU (%) of the dataset's focus classes.
        knobs: Every knob of the model (``{}`` for the vanilla model).
        model: The evaluated checkpoint's identity (the first 16 hex
            digits of its sha256; empty in reports older than it).
    """
    split: str
    tokens: int
    setting: str
    prop_attn: Optional[bool]
    keep: float
    kept_tokens: float
    layer_fraction: float
    miou: float
    miou_a: float
    miou_b: float
    class_iou: Dict[str, float] = dataclasses.field(default_factory=dict)
    knobs: Dict[str, Any] = dataclasses.field(default_factory=dict)
    drop: float = 0.0
    drop_a: float = 0.0
    drop_b: float = 0.0
    noise: float = 0.0
    class_drop: Dict[str, float] = dataclasses.field(default_factory=dict)
    model: str = ''

    @property
    def is_vanilla(self) -> bool:
        return self.setting == VANILLA


def iou_metric(results: Sequence[tuple], classes: Sequence[str]
               ) -> Tuple[float, Dict[str, float]]:
    """mIoU (%) and per-class IoU (%) of per-image areas (intersection,
    union, prediction, label per class), by mmseg's ``IoUMetric``."""
    from mmseg.evaluation import IoUMetric

    totals = [sum(r[i] for r in results) for i in range(4)]
    metrics = IoUMetric.total_area_to_metrics(*totals, metrics=['mIoU'])
    iou = metrics['IoU']
    iou = iou.numpy() if torch.is_tensor(iou) else np.asarray(iou)
    return float(np.nanmean(iou) * 100), {
        name: float(iou[i] * 100) for i, name in enumerate(classes)}


def per_image_areas(model: torch.nn.Module, batches: List[Dict],
                    metainfo: Dict) -> Tuple[List[tuple], List[int]]:
    """mmseg ``IoUMetric`` areas of every image, and the patch tokens kept
    per image (the number of non-empty clusters; ``N`` if nothing is
    merged)."""
    from mmseg.evaluation import IoUMetric

    metric = IoUMetric(iou_metrics=['mIoU'])
    metric.dataset_meta = metainfo
    kept: List[int] = []

    def hook(module, args, output) -> None:
        assignment = getattr(output, 'assignment', None)
        if assignment is None:
            hw = getattr(output, 'hw_shape', None)
            if hw is not None:
                kept.extend([hw[0] * hw[1]] * args[0].shape[0])
            return
        kept.extend((assignment.sizes > 0).sum(1).tolist())

    handle = model.backbone.register_forward_hook(hook)
    try:
        with torch.no_grad():
            for batch in batches:
                outputs = model.test_step(batch)
                # As mmengine's Evaluator: metrics take samples as dicts.
                metric.process(batch,
                               [sample.to_dict() for sample in outputs])
    finally:
        handle.remove()
    return metric.results, kept


def _grid_tokens(batches: List[Dict], patch_size: int) -> int:
    height, width = batches[0]['inputs'][0].shape[-2:]
    return -(-height // patch_size) * -(-width // patch_size)


class Evaluator:
    """Scores settings on one split of one dataset (its batches are read
    once)."""

    def __init__(self, cfg: Config, dataset: AccuracyDataset, split: Split,
                 state_dict: Dict[str, torch.Tensor],
                 device: str = 'cpu', limit: Optional[int] = None,
                 log=print) -> None:
        self.cfg, self.dataset, self.split = cfg, dataset, split
        self.state_dict = state_dict
        self.device = torch.device(device)
        self.log = log
        self.batches, self.metainfo = load_batches(cfg, split, limit)
        backbone = cfg.model.backbone
        self.num_layers = backbone.get('num_layers', 12)
        self.tokens = _grid_tokens(self.batches,
                                   backbone.get('patch_size', 16))

    def _model(self, clustering: Optional[ClusterConfig]):
        model_cfg = self.cfg.model if clustering is None else \
            ailurus_model_config(self.cfg.model, **clustering.to_dict())
        return build_with_weights(model_cfg, self.state_dict, self.device,
                                  source=self.dataset.checkpoint or
                                  'the benchmark model')

    def score(self, setting: Setting) -> Row:
        clustering = None if setting.preset is None else \
            setting.clustering()
        model = self._model(clustering)
        results, kept = per_image_areas(model, self.batches, self.metainfo)
        classes = self.metainfo['classes']
        miou, class_iou = iou_metric(results, classes)
        fraction = 1.0 if clustering is None else \
            clustering.mean_kept_fraction(self.num_layers, self.tokens)
        row = Row(
            split=self.split.name, tokens=self.tokens, setting=setting.name,
            prop_attn=setting.prop_attn, keep=setting.keep,
            kept_tokens=float(np.mean(kept)) if kept else self.tokens,
            layer_fraction=fraction, miou=miou,
            miou_a=iou_metric(results[0::2], classes)[0],
            miou_b=iou_metric(results[1::2], classes)[0],
            class_iou={c: class_iou[c] for c in self.dataset.focus
                       if c in class_iou},
            knobs={} if clustering is None else clustering.to_dict())
        self.log(f'[{self.dataset.name} {self.split.name}, {self.tokens} '
                 f'tokens] {setting.name:<16} prop_attn='
                 f'{setting.prop_attn!s:<5} keep={setting.keep:<5} mIoU '
                 f'{row.miou:.2f}')
        return row


def add_drops(rows: List[Row]) -> List[Row]:
    """Fill in every row's drops against the vanilla row of its split."""
    vanilla = {r.split: r for r in rows if r.is_vanilla}
    for row in rows:
        base = vanilla.get(row.split)
        if base is None or row.is_vanilla:
            continue
        row.drop = base.miou - row.miou
        row.drop_a = base.miou_a - row.miou_a
        row.drop_b = base.miou_b - row.miou_b
        row.noise = abs(row.drop_a - row.drop_b) / 2
        row.class_drop = {c: base.class_iou[c] - v
                          for c, v in row.class_iou.items()
                          if c in base.class_iou}
    return rows


def evaluate(cfg: Config, dataset: AccuracyDataset,
             state_dict: Dict[str, torch.Tensor], settings: Sequence[Setting],
             splits: Optional[Sequence[Split]] = None, device: str = 'cpu',
             limit: Optional[int] = None, log=print) -> List[Row]:
    """Rows of vanilla (first) and every setting on every split, with
    drops."""
    rows = []
    for split in splits or dataset.splits:
        evaluator = Evaluator(cfg, dataset, split, state_dict, device, limit,
                              log)
        rows.append(evaluator.score(VANILLA_SETTING))
        rows += [evaluator.score(s) for s in settings]
    return add_drops(rows)


def _evaluate_job(job: tuple) -> List[Row]:
    """One process of :func:`evaluate_parallel` (spawned: its own torch
    threads)."""
    (cfg_text, dataset, checkpoint, settings, splits, device, limit,
     threads) = job
    from ..models import load_weights
    from .coverage import register  # (coverage imports this module)

    register()  # the coverage study's reducers, if a setting names one

    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    cfg = Config.fromstring(cfg_text, '.py')
    rows = []
    for split in splits:
        evaluator = Evaluator(cfg, dataset, split, load_weights(checkpoint),
                              device, limit)
        rows += [evaluator.score(s) for s in settings]
    return rows


def evaluate_parallel(cfg: Config, dataset: AccuracyDataset,
                      checkpoint: str, settings: Sequence[Setting],
                      splits: Optional[Sequence[Split]] = None,
                      jobs: int = 1, device: str = 'cpu',
                      limit: Optional[int] = None, threads: int = 1,
                      log=print) -> List[Row]:
    """:func:`evaluate` with the settings spread over ``jobs`` processes of
    ``threads`` torch threads each (the figures do not depend on it); rows
    in the order of one process."""
    from ..models import load_weights
    from ..parallel import spread

    splits = list(splits or dataset.splits)
    everything = [VANILLA_SETTING] + list(settings)
    if jobs <= 1:
        return evaluate(cfg, dataset, load_weights(checkpoint), settings,
                        splits, device, limit, log)
    log(f'evaluating {len(everything)} settings x {len(splits)} splits in '
        f'{min(jobs, len(everything))} processes')
    rows = spread(everything, jobs, lambda chunk: (
        cfg.pretty_text, dataset, checkpoint, chunk, splits, device, limit,
        threads), _evaluate_job)
    order = {(s.name, s.prop_attn, s.keep): i
             for i, s in enumerate(everything)}
    split_order = {s.name: i for i, s in enumerate(splits)}
    rows.sort(key=lambda r: (split_order[r.split],
                             order[(r.setting, r.prop_attn, r.keep)]))
    return add_drops(rows)
