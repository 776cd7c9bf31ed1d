"""The accuracy benchmark, end to end: data, the vanilla model (trained with
mmengine's Runner and exported, or given), the evaluation grid, studies,
report, defaults, fine-tuning.

    python tools/accuracy_benchmark.py --dataset camvid \\
        --data-root ../shared/camvid --out-dir work_dirs/accuracy_camvid

Figures rank methods and settings on the dataset's vanilla model: the
synthetic proxy's, or CamVid's small ViT trained here. They are not ADE20K
numbers, and every output says which dataset it is.
"""
import dataclasses
import json
import os
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from ailurus_mm.ops import ClusterConfig
from ..models import build_with_weights, export_fp16, load_weights
from ..paths import file_id, write_json
from ..presets import Preset, default_preset, find_presets
from . import coverage, report
from .boundary import anchor_boundary_share
from .data import AccuracyDataset, Split, find_dataset, load_batches
from .finetune import default_setting, finetune_study, finetune_table
from ..common.settings import (Setting, check_common, grid_settings,
                               layer_settings)
from ..common.train import Recipe, set_schedule, train
from .grid import Row, evaluate_parallel
from .select import fastest_within

STUDIES = ('layers', 'boundary', 'coverage')
# The presets that run with prop_attn on only: variants of the default,
# studied as they were first measured (proportional attention on).
ON_ONLY = ('dpc_cover_detail', 'dpc_cover_window')


@dataclasses.dataclass(frozen=True)
class BenchmarkSpec:
    """Everything one run does (the CLI's flags).

    Attributes:
        dataset: ``'proxy'`` (generated) or ``'camvid'`` (``data_root``).
        out_dir: Where everything is written.
        data_root: CamVid's folder in mmseg's layout.
        checkpoint: Evaluate this vanilla model instead of training one.
        export: Where the trained fp16 model goes (default: ``out_dir``).
        iters: Training iterations (default: the config's).
        presets: Preset names (default: all).
        keeps: Keep ratios (default: the dataset's).
        prop_attn: ``prop_attn`` settings of the reducers.
        studies: Of :data:`STUDIES`.
        finetune: Run the fine-tuning study.
        finetune_only: Only the fine-tuning study.
        recipe: Its recipe.
        config: Another training config.
        cfg_options: Overrides of the config.
        num_train, num_val, size, seed: The proxy dataset.
        device: ``'cpu'`` or ``'cuda'``.
        jobs: Processes of the evaluation grid.
        threads: Torch threads per grid process.
        limit: Evaluate only the first ``limit`` validation images.
        splits: Evaluate only these splits (names; default: all).
    """
    dataset: str = 'proxy'
    out_dir: str = 'work_dirs/accuracy'
    data_root: Optional[str] = None
    checkpoint: Optional[str] = None
    export: Optional[str] = None
    iters: Optional[int] = None
    presets: Optional[Tuple[str, ...]] = None
    keeps: Optional[Tuple[float, ...]] = None
    prop_attn: Tuple[bool, ...] = (False, True)
    studies: Tuple[str, ...] = ()
    finetune: bool = True
    finetune_only: bool = False
    recipe: Recipe = Recipe()
    config: Optional[str] = None
    cfg_options: Optional[Dict[str, Any]] = None
    num_train: int = 2000
    num_val: int = 64
    size: int = 320
    seed: int = 0
    device: str = 'cpu'
    jobs: int = 1
    threads: int = 1
    limit: Optional[int] = None
    splits: Optional[Tuple[str, ...]] = None

    def validate(self) -> AccuracyDataset:
        """Every check that can fail, before any data is read or made."""
        dataset = find_dataset(self.dataset)
        if dataset.generated:
            if self.data_root is not None:
                raise ValueError(f'--data-root is for read datasets; '
                                 f'{self.dataset} is generated')
        elif self.data_root is None:
            raise ValueError(f'--dataset {self.dataset} needs --data-root '
                             f'(its folder in mmseg\'s layout)')
        else:
            dataset.check_data_root(self.data_root)
        if dataset.generated:
            check_proxy_data(osp.join(self.out_dir, 'data'), self)
        check_common(self)
        known = [s.name for s in dataset.splits]
        if self.splits is not None and (not self.splits or any(
                s not in known for s in self.splits)):
            raise ValueError(f'--splits must be some of {known}, got '
                             f'{list(self.splits)}')
        if self.finetune_only and not self.finetune:
            raise ValueError('--finetune-only and --no-finetune contradict '
                             'each other')
        unknown = sorted(set(self.studies) - set(STUDIES))
        if unknown:
            raise ValueError(f'unknown studies {unknown}; choose from '
                             f'{STUDIES}')
        return dataset


def prepare_data(spec: BenchmarkSpec, dataset: AccuracyDataset,
                 log=print) -> str:
    """The data root: the proxy generated under ``out_dir/data``, or the
    given one."""
    if not dataset.generated:
        return spec.data_root
    from ..common.scenes import make_proxy_ade20k

    root = osp.join(spec.out_dir, 'data')
    check_proxy_data(root, spec)
    log(f'generating the proxy dataset in {root} ({spec.num_train} train, '
        f'{spec.num_val} val at {spec.size} and {2 * spec.size}) ...')
    make_proxy_ade20k(root, spec.num_train, spec.num_val, spec.size,
                      spec.seed)
    with open(osp.join(root, PROXY_STAMP), 'w') as f:
        json.dump(_proxy_settings(spec), f)
    return root


# What the generated proxy data was made with (in its folder).
PROXY_STAMP = 'ailurus_proxy.json'


def _proxy_settings(spec: 'BenchmarkSpec') -> Dict[str, int]:
    return dict(num_train=spec.num_train, num_val=spec.num_val,
                size=spec.size, seed=spec.seed)


def check_proxy_data(root: str, spec: 'BenchmarkSpec') -> None:
    """Raise ``ValueError`` if ``root`` holds proxy data made with other
    settings (the generator keeps existing files, so a run would mix them
    while its summary records its own)."""
    stamp = osp.join(root, PROXY_STAMP)
    if osp.isfile(stamp):
        with open(stamp) as f:
            made = json.load(f)
        wanted = _proxy_settings(spec)
        differ = {k: (made.get(k), v) for k, v in wanted.items()
                  if made.get(k) != v}
        if differ:
            raise ValueError(
                f'{root} holds proxy data made with ' + ', '.join(
                    f'--{k.replace("_", "-")} {a}' for k, (a, _) in
                    differ.items()) + ', not ' + ', '.join(
                    f'{b}' for _, (_, b) in differ.items()) +
                ': use another --out-dir, or the same settings')
    elif osp.isdir(osp.join(root, 'images')):
        raise ValueError(f'{root} holds proxy data of unknown settings (no '
                         f'{PROXY_STAMP}): use another --out-dir or remove '
                         'it')


def grid_of(spec: BenchmarkSpec, dataset: AccuracyDataset,
            num_layers: int) -> List[Setting]:
    """The settings of the run: every preset x prop_attn x keep (AiluRus
    variants with ``prop_attn`` on only), then the studies'."""
    keeps = spec.keeps or dataset.keeps
    presets: Sequence[Preset] = find_presets(spec.presets)
    settings = grid_settings([p for p in presets if p.name not in ON_ONLY],
                             keeps, spec.prop_attn)
    if True in spec.prop_attn:
        settings += grid_settings([p for p in presets if p.name in ON_ONLY],
                                  keeps, (True, ))
    if 'layers' in spec.studies:
        settings += layer_settings(keeps, num_layers)
    if 'coverage' in spec.studies:
        settings += coverage.coverage_settings(
            [k for k in keeps if k in coverage.KEEPS] or keeps)
    return settings


def write_report(rows: List[Row], dataset: AccuracyDataset,
                 out_dir: str) -> str:
    """``accuracy.csv``, ``accuracy.md`` and ``accuracy.png``; returns the
    markdown."""
    report.write_csv(rows, osp.join(out_dir, 'accuracy.csv'))
    splits = list(dict.fromkeys(r.split for r in rows))
    parts = [report.drop_table(rows, s, dataset.label) for s in splits]
    keep = 0.25 if any(r.keep == 0.25 for r in rows) else max(
        (r.keep for r in rows if not r.is_vanilla), default=None)
    if keep is not None:
        parts += [report.class_table(rows, s, keep) for s in splits]
    text = '\n\n'.join(p for p in parts if p) + '\n'
    with open(osp.join(out_dir, 'accuracy.md'), 'w') as f:
        f.write(text)
    main = [r for r in rows if '@' not in r.setting]
    report.plot(main, osp.join(out_dir, 'accuracy.png'),
                f'{dataset.label}: mIoU vs tokens kept, no fine-tuning')
    variants = [r for r in rows if r.setting in coverage.VARIANTS]
    if variants:
        report.plot(variants + [r for r in rows if r.is_vanilla or (
            r.setting == 'dpc_cover' and r.prop_attn)],
            osp.join(out_dir, 'coverage.png'),
            f'{dataset.label}: dpc_cover with one part changed')
    layer_rows = [r for r in rows if '@' in r.setting and
                  r.setting not in coverage.VARIANTS]
    if layer_rows:
        studies = layer_rows + [r for r in rows if r.is_vanilla or (
            r.setting == default_preset().name and r.prop_attn)]
        report.plot(studies, osp.join(out_dir, 'studies.png'),
                    f'{dataset.label}: cluster layer',
                    x='layer_fraction')
    return text


def choice(rows: List[Row], dataset: AccuracyDataset
           ) -> Tuple[Optional[Dict[str, Row]], Dict[str, Any]]:
    """The dataset's rule's choice (its row per split, or ``None``) and
    the summary's fields: the vanilla scores, the rule and the choice."""
    chosen = fastest_within(rows, dict(dataset.rule))
    return chosen, dict(
        vanilla={r.split: dict(miou=r.miou, class_iou=r.class_iou)
                 for r in rows if r.is_vanilla},
        rule=dict(dataset.rule),
        default_setting=None if chosen is None else {
            s: dataclasses.asdict(r) for s, r in chosen.items()})


def run_accuracy_benchmark(spec: BenchmarkSpec, log=print) -> Dict[str, Any]:
    """Run the benchmark (see the module docstring); returns the summary
    (also written to ``summary.json``)."""
    dataset = spec.validate()
    os.makedirs(spec.out_dir, exist_ok=True)
    data_root = prepare_data(spec, dataset, log)
    cfg = dataset.load_config(data_root, osp.join(spec.out_dir, 'train'),
                              spec.config, spec.cfg_options)
    if spec.iters is not None:
        set_schedule(cfg, spec.iters)
    checkpoint = spec.checkpoint
    if checkpoint is None:
        log(f'training the vanilla {dataset.name} model for '
            f'{cfg.train_cfg.max_iters} iterations')
        trained = train(cfg)
        checkpoint = export_fp16(
            trained, spec.export or osp.join(spec.out_dir,
                                             dataset.checkpoint),
            cfg.train_dataloader.dataset.get('metainfo', {}).get(
                'classes') or _classes(cfg), f'ailurus_mm accuracy '
            f'benchmark, {dataset.name}')
        log(f'exported {checkpoint} '
            f'({osp.getsize(checkpoint) / 2**20:.1f} MB)')
    summary: Dict[str, Any] = dict(
        dataset=dataset.name, label=dataset.label, checkpoint=checkpoint,
        train_iters=cfg.train_cfg.max_iters,
        spec={k: v for k, v in dataclasses.asdict(spec).items()
              if k != 'cfg_options'})
    setting = default_setting()
    if not spec.finetune_only:
        num_layers = cfg.model.backbone.get('num_layers', 12)
        with coverage.registered():  # the study's reducers, if any
            rows = evaluate_parallel(
                cfg, dataset, checkpoint,
                grid_of(spec, dataset, num_layers),
                splits=_splits(spec, dataset), jobs=spec.jobs,
                device=spec.device, limit=spec.limit, threads=spec.threads,
                log=log)
        model = file_id(checkpoint)
        for row in rows:
            row.model = model
        summary['table'] = write_report(rows, dataset, spec.out_dir)
        chosen, fields = choice(rows, dataset)
        summary.update(fields)
        if chosen is not None:
            row = next(iter(chosen.values()))
            setting = default_setting(row.keep, row.prop_attn)
        if 'boundary' in spec.studies:
            # at the chosen setting (the run's own rows pick it)
            summary['boundary_setting'] = dict(keep=setting.keep,
                                               prop_attn=setting.prop_attn)
            summary['boundary'] = boundary_study(
                cfg, dataset, checkpoint, setting.clustering(), spec, log)
    if spec.finetune or spec.finetune_only:
        study = finetune_study(cfg, dataset, checkpoint, spec.out_dir,
                               setting, spec.recipe, spec.device, log)
        summary['finetune'] = study
        summary['finetune_table'] = finetune_table(
            study, [s.name for s in _splits(spec, dataset)], dataset.label)
    write_json(summary, osp.join(spec.out_dir, 'summary.json'))
    return summary


def boundary_study(cfg, dataset: AccuracyDataset, checkpoint: str,
                   clustering: ClusterConfig, spec: BenchmarkSpec,
                   log=print) -> Dict[str, Any]:
    """Anchors on class boundaries at ``clustering``, every split; also
    for every other reducer at the same count."""
    from ailurus_mm.convert import ailurus_model_config
    from ailurus_mm.ops import REDUCERS
    state_dict = load_weights(checkpoint)
    result: Dict[str, Any] = {}
    patch = cfg.model.backbone.get('patch_size', 16)
    for split in _splits(spec, dataset):
        batches, _ = load_batches(cfg, split, spec.limit)
        result[split.name] = {}
        for reducer in REDUCERS:
            knobs = find_presets([reducer])[0].apply(clustering)
            model = build_with_weights(
                ailurus_model_config(cfg.model, **knobs.to_dict()),
                state_dict, torch.device(spec.device))
            shares = anchor_boundary_share(model, batches, patch)
            result[split.name][reducer] = shares
            log(f'[{split.name}] {reducer}: {100 * shares["anchors"]:.1f}% '
                f'of kept tokens on class boundaries (uniform grid '
                f'{100 * shares["uniform"]:.1f}%)')
    return result


def _splits(spec: BenchmarkSpec, dataset: AccuracyDataset) -> List[Split]:
    """The dataset's splits the run evaluates."""
    return [s for s in dataset.splits
            if spec.splits is None or s.name in spec.splits]


def _classes(cfg) -> Tuple[str, ...]:
    from mmengine.registry import DefaultScope
    from mmseg.registry import DATASETS

    import ailurus_mm.datasets  # noqa: F401
    with DefaultScope.overwrite_default_scope('mmseg'):
        dataset_cls = DATASETS.get(cfg.train_dataloader.dataset.type)
    return tuple(dataset_cls.METAINFO['classes'])
