"""The detection evaluation grid: the vanilla Mask R-CNN and every setting
on every split, scored with mmdet's own ``CocoMetric`` (boxes and masks),
without fine-tuning.

The noise of a drop is half the difference between the drops on the two
disjoint halves of the split (even and odd images), each scored by
``CocoMetric`` against an annotation file holding that half only.
"""
import copy
import dataclasses
import json
import os.path as osp
import tempfile
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.config import Config

from ailurus_mm.convert import ailurus_model_config
from ailurus_mm.ops import ClusterConfig
from ..common.settings import VANILLA, VANILLA_SETTING, Setting
from ..models import build_with_weights

# What the report shows (COCO AP in points), and the two the rule reads.
METRICS = ('bbox_mAP', 'segm_mAP', 'bbox_mAP_s', 'bbox_mAP_l',
           'segm_mAP_s', 'segm_mAP_l')
HEADLINE = ('bbox_mAP', 'segm_mAP')


@dataclasses.dataclass(frozen=True)
class DetSplit:
    """A validation split: its image folder and annotation file (relative
    to the data root)."""
    name: str
    folder: str
    ann_file: str


SPLITS = (DetSplit('1x', 'val2017', 'annotations/instances_val2017.json'),
          DetSplit('2x', 'val2017_2x',
                   'annotations/instances_val2017_2x.json'))


@dataclasses.dataclass
class DetRow:
    """One evaluated setting on one split.

    Attributes:
        scores: COCO AP (points) of :data:`METRICS`.
        halves: ``(even images, odd images)`` AP of :data:`HEADLINE`.
        knobs: Every knob of the model (``{}`` for the vanilla model).
        drops, noise: Per :data:`METRICS` / :data:`HEADLINE` metric,
            against the vanilla row of the split.
    """
    split: str
    tokens: int
    setting: str
    prop_attn: Optional[bool]
    keep: float
    layer_fraction: float
    scores: Dict[str, float]
    halves: Dict[str, Tuple[float, float]]
    knobs: Dict[str, Any] = dataclasses.field(default_factory=dict)
    drops: Dict[str, float] = dataclasses.field(default_factory=dict)
    noise: Dict[str, float] = dataclasses.field(default_factory=dict)

    @property
    def is_vanilla(self) -> bool:
        return self.setting == VANILLA


def _subset_ann(ann_file: str, image_ids: Sequence[int], dst: str) -> str:
    with open(ann_file) as f:
        coco = json.load(f)
    keep = set(image_ids)
    coco['images'] = [i for i in coco['images'] if i['id'] in keep]
    coco['annotations'] = [a for a in coco['annotations']
                           if a['image_id'] in keep]
    with open(dst, 'w') as f:
        json.dump(coco, f)
    return dst


class DetEvaluator:
    """Scores settings on one split (its images are read once)."""

    def __init__(self, cfg: Config, data_root: str, split: DetSplit,
                 state_dict: Dict[str, torch.Tensor], device: str = 'cpu',
                 limit: Optional[int] = None, log=print) -> None:
        from mmengine.registry import DefaultScope
        from mmengine.runner import Runner

        import ailurus_mm.models.det  # noqa: F401  (SimpleFPN)
        self.cfg, self.split, self.log = cfg, split, log
        self.state_dict = state_dict
        self.device = torch.device(device)
        loader_cfg = copy.deepcopy(cfg.test_dataloader)
        dataset = loader_cfg['dataset']
        dataset.update(data_root=data_root, ann_file=split.ann_file,
                       data_prefix=dict(img=f'{split.folder}/'),
                       serialize_data=False)
        if limit is not None:
            dataset['indices'] = limit
        loader_cfg.update(num_workers=0, persistent_workers=False)
        with DefaultScope.overwrite_default_scope('mmdet'):
            loader = Runner.build_dataloader(loader_cfg)
            self.batches = list(loader)
        self.metainfo = loader.dataset.metainfo
        image_ids = [b['data_samples'][0].img_id for b in self.batches]
        # The evaluated images' annotations, whole and in halves (removed
        # with the evaluator).
        self._tmp = tempfile.TemporaryDirectory(prefix='ailurus_det_')
        ann = osp.join(data_root, split.ann_file)
        self.ann_files = {
            which: _subset_ann(ann, ids, osp.join(self._tmp.name,
                                                  f'{which}.json'))
            for which, ids in (('all', image_ids), ('a', image_ids[0::2]),
                               ('b', image_ids[1::2]))}
        self.halves = (set(image_ids[0::2]), set(image_ids[1::2]))
        height, width = self.batches[0]['inputs'][0].shape[-2:]
        patch = cfg.model.backbone.get('patch_size', 16)
        self.tokens = -(-height // patch) * -(-width // patch)
        self.num_layers = cfg.model.backbone.get('num_layers', 12)

    def _metric(self, which: str):
        from mmdet.evaluation import CocoMetric

        metric = CocoMetric(ann_file=self.ann_files[which],
                            metric=['bbox', 'segm'])
        metric.dataset_meta = self.metainfo
        return metric

    def _scores(self, which: str, results: List) -> Dict[str, float]:
        metrics = self._metric(which).compute_metrics(results)
        return {k: 100 * float(v) for k, v in metrics.items()
                if k in METRICS}

    def predictions(self, model: torch.nn.Module) -> List:
        """``CocoMetric`` results (one per image) of ``model``."""
        metric = self._metric('all')
        with torch.no_grad():
            for batch in self.batches:
                outputs = model.test_step(batch)
                metric.process(batch,
                               [sample.to_dict() for sample in outputs])
        return metric.results

    def score(self, setting: Setting) -> DetRow:
        clustering: Optional[ClusterConfig] = None
        model_cfg = self.cfg.model
        if setting.preset is not None:
            clustering = setting.clustering()
            model_cfg = ailurus_model_config(model_cfg,
                                             **clustering.to_dict())
        model = build_with_weights(model_cfg, self.state_dict, self.device,
                                   scope='mmdet',
                                   source='the detection benchmark model')
        results = self.predictions(model)
        scores = self._scores('all', results)
        halves = {}
        parts = [self._scores(which, [r for r in results
                                      if r[0]['img_id'] in ids])
                 for which, ids in zip(('a', 'b'), self.halves)]
        for name in HEADLINE:
            halves[name] = (parts[0][name], parts[1][name])
        row = DetRow(
            split=self.split.name, tokens=self.tokens, setting=setting.name,
            prop_attn=setting.prop_attn, keep=setting.keep,
            layer_fraction=1.0 if clustering is None else
            clustering.mean_kept_fraction(self.num_layers, self.tokens),
            scores=scores, halves=halves,
            knobs={} if clustering is None else clustering.to_dict())
        self.log(f'[detection {self.split.name}, {self.tokens} tokens] '
                 f'{setting.name:<12} prop_attn={setting.prop_attn!s:<5} '
                 f'keep={setting.keep:<5} box AP {scores["bbox_mAP"]:.2f} '
                 f'mask AP {scores["segm_mAP"]:.2f}')
        return row


def add_drops(rows: List[DetRow]) -> List[DetRow]:
    """Every row's drops and noise against the vanilla row of its split."""
    vanilla = {r.split: r for r in rows if r.is_vanilla}
    for row in rows:
        base = vanilla.get(row.split)
        if base is None or row.is_vanilla:
            continue
        row.drops = {k: base.scores[k] - v for k, v in row.scores.items()}
        row.noise = {
            k: abs((base.halves[k][0] - row.halves[k][0]) -
                   (base.halves[k][1] - row.halves[k][1])) / 2
            for k in HEADLINE}
    return rows


def _evaluate_job(job: tuple) -> List[DetRow]:
    """One process of :func:`evaluate_detection` (spawned)."""
    from ..models import load_weights

    cfg_text, data_root, checkpoint, settings, splits, device, limit, \
        threads = job
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    cfg = Config.fromstring(cfg_text, '.py')
    rows = []
    for split in splits:
        evaluator = DetEvaluator(cfg, data_root, split,
                                 load_weights(checkpoint), device, limit)
        rows += [evaluator.score(s) for s in settings]
    return rows


def evaluate_detection(cfg: Config, data_root: str, checkpoint: str,
                       settings: Sequence[Setting],
                       splits: Sequence[DetSplit] = SPLITS, jobs: int = 1,
                       device: str = 'cpu', limit: Optional[int] = None,
                       threads: int = 1, log=print) -> List[DetRow]:
    """Vanilla (first) and every setting on every split, with drops, over
    ``jobs`` processes (rows in the order of one process)."""
    everything = [VANILLA_SETTING] + list(settings)
    if jobs <= 1:
        from ..models import load_weights
        state_dict = load_weights(checkpoint)
        rows = []
        for split in splits:
            evaluator = DetEvaluator(cfg, data_root, split, state_dict,
                                     device, limit, log)
            rows += [evaluator.score(s) for s in everything]
        return add_drops(rows)
    from ..parallel import spread

    log(f'evaluating {len(everything)} detection settings x {len(splits)} '
        f'splits in {min(jobs, len(everything))} processes')
    rows = spread(everything, jobs, lambda chunk: (
        cfg.pretty_text, data_root, checkpoint, chunk, list(splits), device,
        limit, threads), _evaluate_job)
    order = {(s.name, s.prop_attn, s.keep): i
             for i, s in enumerate(everything)}
    split_order = {s.name: i for i, s in enumerate(splits)}
    rows.sort(key=lambda r: (split_order[r.split],
                             order[(r.setting, r.prop_attn, r.keep)]))
    return add_drops(rows)
