"""The accuracy benchmark: token reducers side by side on a model we train.

No pretrained weights or real datasets can be downloaded where ailurus_mm is
built, so the project owns a proxy: a synthetic dataset in the ADE20K layout
(:mod:`ailurus_mm.testing.scenes`) and a vanilla Segmenter ViT-T/16 trained
on it from scratch with mmseg's own config and mmengine's Runner
(``configs/proxy/``). Every reducer then runs through ``AiluRusViT`` on that
one checkpoint (cluster after ``cluster_layer``, merge, later layers on the
short sequence, recover) without fine-tuning, at several keep ratios, with
and without proportional attention, and is scored with mmseg's
``IoUMetric`` at the training resolution and at twice it (1600 tokens).

The noise of a figure is estimated from the two disjoint halves of the
validation set (even and odd images): ``|drop_a - drop_b| / 2`` estimates the
standard error of the drop on the whole set.

Figures from this benchmark rank methods on a synthetic proxy; they are not
ADE20K numbers.
"""
import copy
import csv
import os
import os.path as osp
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.config import Config

PROXY_CONFIG = 'proxy/segmenter_vit-t_mask_1xb8-800_ailurus-proxy-320x320.py'
KEEPS = (0.65, 0.5, 0.35, 0.25)


@dataclass(frozen=True)
class Reducer:
    """One token reducer as ``AiluRusViT`` knobs.

    Attributes:
        name: Label in tables and plots.
        knobs: ``AiluRusViT`` arguments (``reducer`` and its own knobs).
        description: What it is, for the report.
        by_content: A per-image cluster count (``anchor_threshold``),
            calibrated on each split so that the mean count equals the keep
            ratio's: compared at an equal mean token count.
    """
    name: str
    knobs: Dict = field(default_factory=dict)
    description: str = ''
    by_content: bool = False


REDUCERS = (
    Reducer('ailurus', dict(reducer='dpc_knn'),
            'AiluRus: spatial-aware DPC-kNN'),
    Reducer('dpc_knn_plain', dict(reducer='dpc_knn', spatial_weight=0.0),
            'plain DPC-kNN (spatial_weight=0)'),
    Reducer('farthest', dict(reducer='farthest'),
            'farthest-point anchors from the density peak'),
    Reducer('kmeans', dict(reducer='kmeans'),
            'Expedite-style local k-means'),
    Reducer('tome', dict(reducer='tome'), 'ToMe-style bipartite matching'),
    Reducer('random', dict(reducer='random'), 'random anchors'),
    Reducer('grid', dict(reducer='grid'), 'grid pooling (low resolution)'),
    # Beyond the paper: AiluRus's clustering with a recovery that keeps
    # every token's deviation from its cluster mean.
    Reducer('ailurus_detail', dict(reducer='dpc_knn', recover_detail=True),
            'AiluRus + per-token detail in the recovery'),
    # Beyond the paper: as many clusters per image as its content asks
    # for, the same number on average.
    Reducer('ailurus_adaptive', dict(reducer='dpc_knn'),
            'AiluRus with a per-image cluster count by content',
            by_content=True),
)
REDUCER_NAMES = tuple(r.name for r in REDUCERS)


def find_reducers(names: Optional[Sequence[str]]) -> Tuple[Reducer, ...]:
    if names is None:
        return REDUCERS
    unknown = [n for n in names if n not in REDUCER_NAMES]
    if unknown:
        raise ValueError(f'unknown reducers {unknown}; choose from '
                         f'{REDUCER_NAMES}')
    return tuple(r for r in REDUCERS if r.name in names)


@dataclass(frozen=True)
class Split:
    """A validation split: its folder under ``images/``/``annotations/``
    and a label."""
    name: str
    folder: str


def splits() -> Tuple[Split, Split]:
    from ailurus_mm.testing.scenes import VAL_2X_SPLIT, VAL_SPLIT
    return (Split('1x', VAL_SPLIT), Split('2x', VAL_2X_SPLIT))


def proxy_config(data_root: str,
                 work_dir: str,
                 config: Optional[str] = None,
                 cfg_options: Optional[Dict] = None) -> Config:
    """The proxy training config with ``data_root`` and ``work_dir`` set."""
    from ailurus_mm.apis.config import load_config

    cfg = load_config(config or PROXY_CONFIG, cfg_options)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader]['dataset']['data_root'] = data_root
    cfg.work_dir = work_dir
    return cfg


def train_proxy(cfg: Config) -> str:
    """Train the vanilla model with mmengine's Runner; returns the path of
    the last checkpoint."""
    from mmengine.runner import Runner

    import ailurus_mm.models  # noqa: F401  (registration)
    runner = Runner.from_cfg(cfg)
    runner.train()
    return osp.join(cfg.work_dir, f'iter_{cfg.train_cfg.max_iters}.pth')


def export_fp16(checkpoint: str, dst: str, cfg: Config) -> str:
    """Write the model weights of ``checkpoint`` as a clean fp16 state dict
    (``{'state_dict': ..., 'meta': {'dataset_meta': ...}}``): no optimizer,
    message hub or config pickles."""
    from ailurus_mm.apis.checkpoint import (checkpoint_state_dict,
                                            load_checkpoint_file)

    state_dict = checkpoint_state_dict(load_checkpoint_file(checkpoint))
    state_dict = {
        key: value.half() if value.is_floating_point() else value
        for key, value in state_dict.items()
    }
    classes = tuple(cfg.train_dataloader.dataset.metainfo['classes'])
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    torch.save(
        dict(state_dict=state_dict,
             meta=dict(dataset_meta=dict(classes=classes),
                       source='ailurus_mm accuracy benchmark proxy')), dst)
    return dst


def ailurus_model_cfg(model_cfg: Dict, **knobs) -> Dict:
    """The AiluRus version of a vanilla Segmenter model config."""
    model_cfg = copy.deepcopy(model_cfg)
    model_cfg['backbone'].update(type='AiluRusViT', **knobs)
    model_cfg['neck'] = dict(type='TokenRecover')
    return model_cfg


def build_segmentor(model_cfg: Dict, state_dict: Dict,
                    device: torch.device) -> torch.nn.Module:
    """Build in mmseg's scope and load ``state_dict`` strictly."""
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    import ailurus_mm.models  # noqa: F401  (registration)
    from ailurus_mm.apis.checkpoint import check_state_dict

    init_default_scope('mmseg')
    model = MODELS.build(copy.deepcopy(model_cfg))
    check_state_dict(model, state_dict, source='the proxy checkpoint')
    model.load_state_dict(state_dict, strict=True)
    return model.to(device).eval()


def load_batches(cfg: Config, split: Split, limit: Optional[int] = None
                 ) -> Tuple[List[Dict], Dict]:
    """Every batch of a validation split (read once, reused by every
    setting), and the dataset's metainfo."""
    from mmengine.runner import Runner

    loader_cfg = copy.deepcopy(cfg.test_dataloader)
    loader_cfg['dataset']['data_prefix'] = dict(
        img_path=f'images/{split.folder}',
        seg_map_path=f'annotations/{split.folder}')
    loader_cfg['num_workers'] = 0
    loader_cfg['persistent_workers'] = False
    if limit is not None:
        loader_cfg['dataset']['indices'] = limit
    loader = Runner.build_dataloader(loader_cfg)
    return list(loader), loader.dataset.metainfo


def per_image_areas(model: torch.nn.Module, batches: List[Dict],
                    metainfo: Dict) -> List[tuple]:
    """mmseg ``IoUMetric`` results (intersection, union, prediction and
    label areas per class) of every image."""
    from mmseg.evaluation import IoUMetric

    metric = IoUMetric(iou_metrics=['mIoU'])
    metric.dataset_meta = metainfo
    with torch.no_grad():
        for batch in batches:
            outputs = model.test_step(batch)
            # As mmengine's Evaluator: metrics take data samples as dicts.
            metric.process(batch, [sample.to_dict() for sample in outputs])
    return metric.results


def miou(results: Sequence[tuple]) -> float:
    """mIoU (%) of per-image areas, computed by mmseg's ``IoUMetric``."""
    from mmseg.evaluation import IoUMetric

    totals = [sum(r[i] for r in results) for i in range(4)]
    metrics = IoUMetric.total_area_to_metrics(*totals, metrics=['mIoU'])
    return float(np.nanmean(metrics['IoU'].numpy()
                            if torch.is_tensor(metrics['IoU'])
                            else metrics['IoU']) * 100)


@dataclass
class Row:
    """One evaluated setting on one split."""
    split: str
    tokens: int
    reducer: str
    prop_attn: Optional[bool]
    keep: float
    kept_tokens: int
    miou: float
    miou_a: float
    miou_b: float
    drop: float = 0.0
    drop_a: float = 0.0
    drop_b: float = 0.0
    noise: float = 0.0


def cluster_layer_scores(model: torch.nn.Module,
                         batches) -> List[torch.Tensor]:
    """The DPC decision scores (:func:`ailurus_mm.ops.anchor_scores`) of
    the tokens at ``cluster_layer`` in every backbone call of ``model``'s
    ``test_step`` (an ``AiluRusViT`` segmentor or detector; one entry per
    image, or per window with slide inference), for
    :func:`ailurus_mm.ops.calibrate_anchor_threshold`.

    Build ``model`` with ``num_clusters=1.0`` (nothing merged) for the
    cost of one vanilla pass.
    """
    from ailurus_mm.ops import anchor_scores

    backbone = model.backbone
    scores, seen = [], {}

    def hook(module, args, output):
        tokens = output[:, 1:] if backbone.with_cls_token else output
        hw_shape = seen['hw_shape']
        scores.append(anchor_scores(tokens, hw_shape, backbone.k,
                                    backbone.spatial_weight).cpu())

    def grid_hook(module, args, output):
        seen['hw_shape'] = output[1]

    handles = [
        backbone.patch_embed.register_forward_hook(grid_hook),
        backbone.layers[backbone.cluster_layer].register_forward_hook(hook)
    ]
    try:
        with torch.no_grad():
            for batch in batches:
                model.test_step(batch)
    finally:
        for handle in handles:
            handle.remove()
    return scores


def evaluate_settings(cfg: Config,
                      state_dict: Dict,
                      reducers: Sequence[Reducer] = REDUCERS,
                      keeps: Sequence[float] = KEEPS,
                      prop_attn: Sequence[bool] = (False, True),
                      split_list: Optional[Sequence[Split]] = None,
                      extra_knobs: Optional[Dict] = None,
                      device: str = 'cpu',
                      limit: Optional[int] = None,
                      log=print) -> List[Row]:
    """Evaluate vanilla and every reducer x keep x ``prop_attn`` setting,
    without fine-tuning, on every split.

    Args:
        cfg: The proxy config (model and test dataloader).
        state_dict: Weights of the vanilla model.
        extra_knobs: More ``AiluRusViT`` knobs for every setting (e.g.
            ``cluster_layer``).
        limit: Use only the first ``limit`` validation images.

    Returns:
        The rows, vanilla first on each split, with drops relative to it.
    """
    from ailurus_mm.ops import calibrate_anchor_threshold, resolve_num_clusters

    device = torch.device(device)
    rows = []
    extra_knobs = dict(extra_knobs or {})
    for split in split_list or splits():
        batches, metainfo = load_batches(cfg, split, limit)
        height, width = batches[0]['inputs'][0].shape[-2:]
        patch = cfg.model.backbone.get('patch_size', 16)
        tokens = (height // patch) * (width // patch)

        def score(model_cfg, reducer, attn, keep):
            model = build_segmentor(model_cfg, state_dict, device)
            results = per_image_areas(model, batches, metainfo)
            row = Row(split.name, tokens, reducer, attn, keep,
                      resolve_num_clusters(keep, tokens), miou(results),
                      miou(results[0::2]), miou(results[1::2]))
            log(f'[{split.name}, {tokens} tokens] {reducer:<14} prop_attn='
                f'{attn!s:<5} keep={keep:<5} mIoU {row.miou:.2f}')
            return row

        vanilla = score(cfg.model, 'vanilla', None, 1.0)
        rows.append(vanilla)
        scores = {}
        for reducer in reducers:
            for attn in prop_attn:
                for keep in keeps:
                    knobs = dict(num_clusters=keep, prop_attn=attn,
                                 **reducer.knobs, **extra_knobs)
                    if reducer.by_content:
                        key = tuple(sorted(reducer.knobs.items()))
                        if key not in scores:
                            scores[key] = cluster_layer_scores(
                                build_segmentor(ailurus_model_cfg(
                                    cfg.model, num_clusters=1.0,
                                    **reducer.knobs, **extra_knobs),
                                    state_dict, device), batches)
                        # No cap; the mean count over the split is keep's.
                        knobs.update(
                            num_clusters=1.0,
                            anchor_threshold=calibrate_anchor_threshold(
                                scores[key], keep))
                    model_cfg = ailurus_model_cfg(cfg.model, **knobs)
                    row = score(model_cfg, reducer.name, attn, keep)
                    row.drop = vanilla.miou - row.miou
                    row.drop_a = vanilla.miou_a - row.miou_a
                    row.drop_b = vanilla.miou_b - row.miou_b
                    row.noise = abs(row.drop_a - row.drop_b) / 2
                    rows.append(row)
    return rows


CSV_FIELDS = tuple(Row.__dataclass_fields__)


def write_csv(rows: Sequence[Row], path: str) -> None:
    with open(path, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow({
                k: round(v, 4) if isinstance(v, float) else v
                for k, v in asdict(row).items()
            })


def read_csv(path: str) -> List[Row]:
    rows = []
    with open(path) as f:
        for record in csv.DictReader(f):
            attn = record['prop_attn']
            rows.append(Row(
                split=record['split'], tokens=int(record['tokens']),
                reducer=record['reducer'],
                prop_attn=None if attn == '' else attn == 'True',
                keep=float(record['keep']),
                kept_tokens=int(record['kept_tokens']),
                **{k: float(record[k]) for k in CSV_FIELDS[6:]}))
    return rows


def plot_drops(rows: Sequence[Row], path: str, title: str = '') -> None:
    """mIoU drop vs tokens kept, one panel per split, one line per reducer
    (solid: proportional attention, dashed: without)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    split_names = list(dict.fromkeys(r.split for r in rows))
    fig, axes = plt.subplots(1, len(split_names), figsize=(
        6.0 * len(split_names), 4.6), dpi=100, squeeze=False)
    colours = dict(zip(REDUCER_NAMES, plt.get_cmap('tab10').colors))
    for ax, split in zip(axes[0], split_names):
        split_rows = [r for r in rows if r.split == split and
                      r.reducer != 'vanilla']
        for name in dict.fromkeys(r.reducer for r in split_rows):
            for attn, style in ((True, '-'), (False, '--')):
                points = sorted((r.keep, r.drop, r.noise) for r in split_rows
                                if r.reducer == name and r.prop_attn == attn)
                if not points:
                    continue
                keep, drop, noise = zip(*points)
                ax.errorbar(keep, drop, yerr=noise, fmt='o' + style,
                            color=colours.get(name), markersize=3,
                            capsize=2,
                            label=name if attn else f'{name} (no prop)')
        tokens = next(r.tokens for r in rows if r.split == split)
        ax.axhline(0, color='k', linewidth=0.8)
        # Linear within one point (where the good reducers are), log above.
        ax.set_yscale('symlog', linthresh=1.0)
        ax.set_xlabel('fraction of tokens kept')
        ax.set_ylabel('mIoU drop vs vanilla (points, symlog)')
        ax.set_title(f'{split}: {tokens} tokens')
        ax.invert_xaxis()
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, ncol=2)
    fig.suptitle(title or 'Synthetic proxy (not ADE20K), no fine-tuning')
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def markdown_table(rows: Sequence[Row], split: str) -> str:
    """Drops (with noise) of every reducer x prop_attn at every keep."""
    split_rows = [r for r in rows if r.split == split]
    vanilla = next(r for r in split_rows if r.reducer == 'vanilla')
    keeps = sorted({r.keep for r in split_rows if r.reducer != 'vanilla'},
                   reverse=True)
    lines = [
        f'Split {split} ({vanilla.tokens} tokens), vanilla mIoU '
        f'{vanilla.miou:.2f}; mIoU drop (+- noise) at each keep ratio:', '',
        '| reducer | prop_attn | ' + ' | '.join(
            f'keep {k}' for k in keeps) + ' |',
        '| --- | --- | ' + ' | '.join('---' for _ in keeps) + ' |'
    ]
    for name in dict.fromkeys(r.reducer for r in split_rows
                              if r.reducer != 'vanilla'):
        for attn in (False, True):
            cells = []
            for keep in keeps:
                match = [r for r in split_rows if r.reducer == name and
                         r.prop_attn == attn and r.keep == keep]
                cells.append(f'{match[0].drop:.2f} +- {match[0].noise:.2f}'
                             if match else '-')
            if any(c != '-' for c in cells):
                lines.append(f'| {name} | {attn} | ' + ' | '.join(cells) +
                             ' |')
    return '\n'.join(lines)


def fastest_within(rows: Sequence[Row], split: str, budget: float = 0.3,
                   reducers: Optional[Sequence[str]] = None,
                   tie_split: Optional[str] = None) -> Optional[Row]:
    """The setting with the fewest tokens kept whose drop on ``split`` is at
    most ``budget`` mIoU points. Ties: the smaller drop on ``tie_split``
    (e.g. the shorter sequences), then on ``split``."""
    candidates = [
        r for r in rows if r.split == split and r.reducer != 'vanilla'
        and r.drop <= budget and (reducers is None or r.reducer in reducers)
    ]
    if not candidates:
        return None
    fewest = min(r.kept_tokens for r in candidates)

    def other_drop(row: Row) -> float:
        for r in rows:
            if (r.split, r.reducer, r.prop_attn, r.keep) == (
                    tie_split, row.reducer, row.prop_attn, row.keep):
                return r.drop
        return 0.0

    return min((r for r in candidates if r.kept_tokens == fewest),
               key=lambda r: (other_drop(r), r.drop))


# The settings the defaults are chosen from: AiluRus's own clustering, with
# and without proportional attention, at every keep ratio.
DEFAULT_CANDIDATES = ('ailurus', )


def _evaluate_job(args) -> List[Row]:
    cfg_text, checkpoint, names, keeps, prop_attn, device = args
    torch.set_num_threads(1)
    cfg = Config.fromstring(cfg_text, '.py')
    return evaluate_settings(cfg, load_weights(checkpoint),
                             find_reducers(names), keeps, prop_attn,
                             device=device)


def evaluate_in_parallel(cfg: Config, checkpoint: str,
                         reducers: Sequence[Reducer], keeps: Sequence[float],
                         prop_attn: Sequence[bool], jobs: int = 1,
                         device: str = 'cpu', log=print) -> List[Row]:
    """:func:`evaluate_settings` with the reducers spread over ``jobs``
    processes; the rows come back in the order of one process."""
    if jobs <= 1 or len(reducers) <= 1:
        return evaluate_settings(cfg, load_weights(checkpoint), reducers,
                                 keeps, prop_attn, device=device, log=log)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    names = [r.name for r in reducers]
    chunks = [names[i::jobs] for i in range(jobs)]
    work = [(cfg.pretty_text, checkpoint, chunk, list(keeps),
             list(prop_attn), device) for chunk in chunks if chunk]
    log(f'evaluating {len(names)} reducers in {len(work)} processes')
    with ProcessPoolExecutor(
            len(work), mp_context=multiprocessing.get_context('spawn')) as ex:
        parts = list(ex.map(_evaluate_job, work))
    order = {name: i for i, name in enumerate(['vanilla'] + names)}
    rows = {}
    for part in parts:
        for row in part:  # every part has the vanilla rows: keep one
            rows.setdefault((row.split, row.reducer, row.prop_attn,
                             row.keep), row)
    split_order = {s.name: i for i, s in enumerate(splits())}
    return sorted(rows.values(), key=lambda r: (
        split_order.get(r.split, 0), order[r.reducer],
        r.prop_attn is True, -r.keep))


def set_schedule(cfg: Config, iters: int, lr: Optional[float] = None,
                 warmup: bool = True) -> Config:
    """Set a proxy config's schedule to ``iters`` iterations (warm-up over
    the first fifth, at most 200, then a linear or poly decay)."""
    cfg.train_cfg.max_iters = iters
    cfg.train_cfg.val_interval = iters
    cfg.default_hooks.checkpoint.interval = iters
    if lr is not None:
        cfg.optim_wrapper.optimizer.lr = lr
    warm = min(200, max(1, iters // 5)) if warmup else 0
    schedule = [dict(type='PolyLR', power=1.0 if warmup else 0.9,
                     eta_min=0.0 if warmup else 1e-6, begin=warm, end=iters,
                     by_epoch=False)]
    if warm:
        schedule.insert(0, dict(type='LinearLR', start_factor=0.01, begin=0,
                                end=warm, by_epoch=False))
    cfg.param_scheduler = schedule
    return cfg


def load_weights(checkpoint: str) -> Dict:
    """Model weights of a checkpoint (e.g. the fp16 export), as fp32."""
    from ailurus_mm.apis.checkpoint import (checkpoint_state_dict,
                                            load_checkpoint_file)

    state_dict = checkpoint_state_dict(load_checkpoint_file(checkpoint))
    return {k: v.float() if v.is_floating_point() else v
            for k, v in state_dict.items()}


# The ``ailurus-ft_`` recipe, relative to the vanilla training: a quarter
# of the schedule at 0.3x the learning rate, poly decay, no warm-up (a tenth
# at a tenth did not close the gap on the proxy; README, Accuracy).
FT_SCHEDULE_FRACTION = 0.25
FT_LR_FACTOR = 0.3


def finetune_proxy(cfg: Config, checkpoint: str, work_dir: str,
                   knobs: Optional[Dict], iters: int, lr: float) -> str:
    """Fine-tune the proxy model as the ``ailurus-ft_`` configs do (poly
    decay, no warm-up; ``iters`` and ``lr`` from
    :data:`FT_SCHEDULE_FRACTION` and :data:`FT_LR_FACTOR`), with clustering
    in the loop (``knobs``) or, with ``knobs=None``, as the vanilla model
    (the control: the same extra training)."""
    cfg = copy.deepcopy(cfg)
    if knobs is not None:
        cfg.model = ailurus_model_cfg(cfg.model, **knobs)
    set_schedule(cfg, iters, lr=lr, warmup=False)
    cfg.load_from = checkpoint
    cfg.work_dir = work_dir
    return train_proxy(cfg)


def run_accuracy_benchmark(out_dir: str,
                           checkpoint: Optional[str] = None,
                           num_train: int = 2000,
                           num_val: int = 64,
                           size: int = 320,
                           seed: int = 0,
                           iters: Optional[int] = None,
                           export: Optional[str] = None,
                           reducers: Optional[Sequence[str]] = None,
                           keeps: Sequence[float] = KEEPS,
                           prop_attn: Sequence[bool] = (False, True),
                           finetune: bool = True,
                           finetune_keep: float = 0.25,
                           finetune_only: bool = False,
                           ft_fraction: float = FT_SCHEDULE_FRACTION,
                           ft_lr_factor: float = FT_LR_FACTOR,
                           ft_train_keep: Optional[float] = None,
                           config: Optional[str] = None,
                           cfg_options: Optional[Dict] = None,
                           device: str = 'cpu',
                           jobs: int = 1,
                           log=print) -> Dict:
    """Generate, train (unless ``checkpoint``), evaluate, fine-tune, report.

    ``jobs > 1`` evaluates the reducers in that many processes of one
    torch thread each (the figures do not depend on it).

    ``finetune_only`` skips the evaluation of the reducers and fine-tunes
    at ``AiluRusViT``'s default setting (keep ``finetune_keep``); the
    ``ft_*`` arguments change the fine-tuning recipe (fraction of the
    schedule, learning-rate factor, and a keep ratio for training only).

    Writes into ``out_dir``: ``data/`` (the dataset), ``train/`` (Runner
    work dir), ``accuracy.csv``, ``accuracy.png``, ``accuracy.md`` and
    ``summary.json``.

    Returns:
        The summary (also in ``summary.json``).
    """
    import json

    from ailurus_mm.testing.scenes import make_proxy_ade20k

    torch.manual_seed(seed)
    os.makedirs(out_dir, exist_ok=True)
    data_root = osp.join(out_dir, 'data')
    log(f'generating the proxy dataset in {data_root} ({num_train} train, '
        f'{num_val} val at {size} and {2 * size}) ...')
    make_proxy_ade20k(data_root, num_train, num_val, size, seed)
    cfg = proxy_config(data_root, osp.join(out_dir, 'train'), config,
                       cfg_options)
    if iters is not None:
        set_schedule(cfg, iters)
    train_iters = cfg.train_cfg.max_iters
    if checkpoint is None:
        log(f'training the vanilla proxy model for {train_iters} iterations')
        trained = train_proxy(cfg)
        checkpoint = export_fp16(
            trained, export or osp.join(out_dir, 'proxy_fp16.pth'), cfg)
        log(f'exported {checkpoint} '
            f'({osp.getsize(checkpoint) / 2**20:.1f} MB)')
    state_dict = load_weights(checkpoint)
    summary = dict(
        checkpoint=checkpoint,
        num_train=num_train, num_val=num_val, size=size, seed=seed,
        train_iters=train_iters)
    if finetune_only:
        summary['finetune'] = _finetune_study(
            cfg, checkpoint, state_dict, out_dir, finetune_keep, None,
            train_iters, device, log, ft_fraction, ft_lr_factor,
            ft_train_keep)
        with open(osp.join(out_dir, 'summary.json'), 'w') as f:
            json.dump(summary, f, indent=2)
        return summary
    rows = evaluate_in_parallel(cfg, checkpoint, find_reducers(reducers),
                                keeps, prop_attn, jobs, device, log)
    write_csv(rows, osp.join(out_dir, 'accuracy.csv'))
    plot_drops(rows, osp.join(out_dir, 'accuracy.png'))
    split_names = list(dict.fromkeys(r.split for r in rows))
    with open(osp.join(out_dir, 'accuracy.md'), 'w') as f:
        f.write('\n\n'.join(markdown_table(rows, s) for s in split_names))
        f.write('\n')
    large = split_names[-1]
    best = fastest_within(rows, large, 0.3, DEFAULT_CANDIDATES,
                          tie_split=split_names[0])
    summary.update(
        vanilla={r.split: r.miou for r in rows if r.reducer == 'vanilla'},
        default_setting=None if best is None else asdict(best))
    if finetune:
        summary['finetune'] = _finetune_study(
            cfg, checkpoint, state_dict, out_dir, finetune_keep,
            best, train_iters, device, log, ft_fraction, ft_lr_factor,
            ft_train_keep)
    with open(osp.join(out_dir, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    return summary


def _finetune_study(cfg, checkpoint, state_dict, out_dir, keep, best,
                    train_iters, device, log,
                    fraction: float = FT_SCHEDULE_FRACTION,
                    lr_factor: float = FT_LR_FACTOR,
                    train_keep: Optional[float] = None) -> Dict:
    """Fine-tune with clustering in the loop (at ``train_keep``, default
    ``keep``; evaluated at ``keep``) for ``fraction`` of the vanilla
    schedule at ``lr_factor`` times its learning rate, and the vanilla
    control for as long; evaluate both against the starting model: the
    control vanilla and with AiluRus applied without fine-tuning."""
    import time

    reducer = best.reducer if best is not None else 'ailurus'
    attn = best.prop_attn if best is not None else True
    knobs = dict(num_clusters=keep, prop_attn=attn,
                 **find_reducers([reducer])[0].knobs)
    train_knobs = dict(knobs, num_clusters=train_keep or keep)
    iters = max(1, round(train_iters * fraction))
    lr = cfg.optim_wrapper.optimizer.lr * lr_factor
    log(f'fine-tuning {iters} iterations at lr {lr:g} with {train_knobs}, '
        'and the vanilla control')
    seconds = {}
    start = time.perf_counter()
    tuned = finetune_proxy(cfg, checkpoint, osp.join(out_dir, 'finetune'),
                           train_knobs, iters, lr)
    seconds['finetune'] = time.perf_counter() - start
    start = time.perf_counter()
    control = finetune_proxy(cfg, checkpoint,
                             osp.join(out_dir, 'finetune_vanilla'), None,
                             iters, lr)
    seconds['control'] = time.perf_counter() - start
    result = dict(knobs=knobs, train_keep=train_knobs['num_clusters'],
                  iters=iters, lr=lr,
                  train_seconds={k: round(v, 1) for k, v in seconds.items()})
    setting = dict(reducers=find_reducers([reducer]), keeps=[keep],
                   prop_attn=[attn], device=device, log=log)
    for split in splits():
        before = evaluate_settings(cfg, state_dict, split_list=[split],
                                   **setting)
        after = evaluate_settings(cfg, load_weights(tuned),
                                  split_list=[split], **setting)
        ctrl = evaluate_settings(cfg, load_weights(control),
                                 split_list=[split], **setting)
        vanilla, no_ft, tuned_miou = before[0].miou, before[1].miou, \
            after[1].miou
        gap = vanilla - no_ft
        result[split.name] = dict(
            vanilla=vanilla,
            no_finetune=no_ft,
            finetuned=tuned_miou,
            finetuned_vanilla_control=ctrl[0].miou,
            vanilla_control_no_finetune=ctrl[1].miou,
            drop_before=gap,
            drop_after=vanilla - tuned_miou,
            drop_after_vs_control=ctrl[0].miou - tuned_miou,
            gap_closed=None if gap <= 0 else (vanilla - no_ft - (
                vanilla - tuned_miou)) / gap)
        log(f'[{split.name}] fine-tuning: {result[split.name]}')
    return result


def finetune_table(study: Dict) -> str:
    """The fine-tuning study (:func:`_finetune_study`) as markdown."""
    keep = study['knobs']['num_clusters']
    lines = [
        f"Fine-tuning {study['iters']} iterations at lr {study['lr']:g}, "
        f"clustering at keep {study.get('train_keep', keep)} in the loop, "
        f"evaluated "
        f"at keep {keep} (training "
        f"{study['train_seconds']['finetune']:.0f} s; vanilla control "
        f"{study['train_seconds']['control']:.0f} s):", '',
        '| split | vanilla | AiluRus, no fine-tuning | AiluRus fine-tuned '
        '| vanilla control | control + AiluRus, no fine-tuning | gap '
        'closed |', '| --- | --- | --- | --- | --- | --- | --- |'
    ]
    for split in (s.name for s in splits()):
        r = study.get(split)
        if r is None:
            continue
        closed = '-' if r['gap_closed'] is None else \
            f"{100 * r['gap_closed']:.0f} %"
        lines.append(
            f"| {split} | {r['vanilla']:.2f} | {r['no_finetune']:.2f} | "
            f"{r['finetuned']:.2f} | {r['finetuned_vanilla_control']:.2f} "
            f"| {r['vanilla_control_no_finetune']:.2f} | {closed} |")
    return '\n'.join(lines)


def accuracy_parser():
    import argparse

    from mmengine.config import DictAction

    parser = argparse.ArgumentParser(
        description='The accuracy benchmark: generate the synthetic proxy '
        'dataset, train a vanilla Segmenter ViT-T on it (or take '
        '--checkpoint), evaluate every token reducer without fine-tuning, '
        'fine-tune at keep 0.25; writes accuracy.csv/png/md and '
        'summary.json. Synthetic proxy figures, not ADE20K.')
    parser.add_argument('--out-dir', default='work_dirs/accuracy')
    parser.add_argument('--checkpoint', help='evaluate this model instead '
                        'of training one (e.g. the shipped proxy model)')
    parser.add_argument('--export', help='where to write the trained fp16 '
                        'model (default: OUT_DIR/proxy_fp16.pth)')
    parser.add_argument('--num-train', type=int, default=2000)
    parser.add_argument('--num-val', type=int, default=64)
    parser.add_argument('--size', type=int, default=320,
                        help='training resolution; validation at it and 2x')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--iters', type=int,
                        help="training iterations (default: the config's)")
    parser.add_argument('--reducers', nargs='+', choices=REDUCER_NAMES)
    parser.add_argument('--keeps', type=float, nargs='+', default=KEEPS)
    parser.add_argument('--prop-attn', nargs='+', default=['off', 'on'],
                        choices=['off', 'on'])
    parser.add_argument('--no-finetune', action='store_true',
                        help='skip the fine-tuning study')
    parser.add_argument('--finetune-only', action='store_true',
                        help='only the fine-tuning study, at the default '
                        'setting (keep 0.25, prop_attn on)')
    parser.add_argument('--ft-fraction', type=float,
                        default=FT_SCHEDULE_FRACTION,
                        help='fine-tuning iterations as a fraction of the '
                        "vanilla training's (the ailurus-ft_ recipe: "
                        '%(default)s)')
    parser.add_argument('--ft-lr-factor', type=float, default=FT_LR_FACTOR,
                        help='fine-tuning learning rate as a factor of the '
                        "vanilla one (the ailurus-ft_ recipe: %(default)s)")
    parser.add_argument('--ft-train-keep', type=float,
                        help='keep ratio while fine-tuning (default: the '
                        'evaluated one, 0.25)')
    parser.add_argument('--config', help='another proxy training config')
    parser.add_argument('--threads', type=int)
    parser.add_argument('--jobs', type=int, default=1,
                        help='evaluate the reducers in this many processes '
                        '(one torch thread each)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser


def accuracy_main(argv=None) -> Dict:
    args = accuracy_parser().parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    summary = run_accuracy_benchmark(
        args.out_dir, checkpoint=args.checkpoint, num_train=args.num_train,
        num_val=args.num_val, size=args.size, seed=args.seed,
        iters=args.iters, export=args.export, reducers=args.reducers,
        keeps=args.keeps,
        prop_attn=[p == 'on' for p in dict.fromkeys(args.prop_attn)],
        finetune=not args.no_finetune, finetune_only=args.finetune_only,
        ft_fraction=args.ft_fraction, ft_lr_factor=args.ft_lr_factor,
        ft_train_keep=args.ft_train_keep, config=args.config,
        cfg_options=args.cfg_options, device=args.device, jobs=args.jobs)
    if 'finetune' in summary:
        print(finetune_table(summary['finetune']))
    if args.finetune_only:
        print(f'wrote {args.out_dir}/summary.json')
        return summary
    print(open(osp.join(args.out_dir, 'accuracy.md')).read())
    best = summary['default_setting']
    if best:
        print(f"fastest AiluRus setting within 0.3 mIoU at {best['tokens']} "
              f"tokens (ties: smaller drop on the short sequences): "
              f"{best['reducer']} prop_attn={best['prop_attn']} keep "
              f"{best['keep']} (drop {best['drop']:.2f})")
    print(f'wrote {args.out_dir}/accuracy.csv, accuracy.png, accuracy.md, '
          'summary.json')
    return summary


# The benchmark's trained model, shipped with the package (the demo's
# default model). Regenerate with
#   python tools/accuracy_benchmark.py --out-dir work_dirs/accuracy \
#       --export ailurus_mm/checkpoints/<SHIPPED_CHECKPOINT>
SHIPPED_CHECKPOINT = 'segmenter_vit-t_mask_ailurus-proxy-320x320_fp16.pth'


def shipped_checkpoint() -> str:
    """Path of the shipped proxy model."""
    path = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))),
                    'checkpoints', SHIPPED_CHECKPOINT)
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'the shipped proxy model is missing: {path}; regenerate it with '
            'python tools/accuracy_benchmark.py --export ' + path)
    return path


def proxy_accuracy(checkpoint: Optional[str] = None,
                   num_images: int = 8,
                   knobs: Optional[Dict] = None,
                   device: str = 'cpu') -> Dict[str, float]:
    """Vanilla and AiluRus mIoU of the proxy model on the first
    ``num_images`` validation scenes at 640x640 (1600 tokens), generated
    on the fly.

    Args:
        checkpoint: The proxy model (default: the shipped one).
        knobs: ``AiluRusViT`` knobs (default: its defaults).

    Returns:
        ``{'vanilla': mIoU, 'ailurus': mIoU, 'tokens': N, 'kept': M}``.
    """
    import tempfile

    from ailurus_mm.testing.scenes import make_proxy_ade20k

    state_dict = load_weights(checkpoint or shipped_checkpoint())
    knobs = dict(knobs or {})
    with tempfile.TemporaryDirectory() as root:
        make_proxy_ade20k(root, num_train=0, num_val=num_images)
        cfg = proxy_config(root, root)
        split = splits()[1]
        batches, metainfo = load_batches(cfg, split)
        results = {}
        for name, model_cfg in (('vanilla', cfg.model),
                                ('ailurus', ailurus_model_cfg(cfg.model,
                                                              **knobs))):
            model = build_segmentor(model_cfg, state_dict,
                                    torch.device(device))
            results[name] = miou(per_image_areas(model, batches, metainfo))
    from ailurus_mm.ops import resolve_num_clusters
    backbone = model.backbone
    height, width = batches[0]['inputs'][0].shape[-2:]
    tokens = (height // backbone.patch_size) * (width // backbone.patch_size)
    results.update(tokens=tokens, kept=resolve_num_clusters(
        backbone.num_clusters, tokens), images=num_images)
    return results
