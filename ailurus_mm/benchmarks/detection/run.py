"""The detection accuracy benchmark, end to end: generate the synthetic COCO
proxy, train the vanilla ViT-T Mask R-CNN with mmengine's Runner (or take
``checkpoint``), evaluate every reducer with mmdet's ``CocoMetric`` at two
lengths, report, choose the Mask R-CNN defaults, fine-tune.

    python tools/accuracy_benchmark.py --task detection \\
        --out-dir work_dirs/accuracy_det --jobs 2

Figures come from a synthetic proxy: they rank settings, they are not COCO
numbers.
"""
import copy
import dataclasses
import glob
import json
import os
import os.path as osp
import re
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from ailurus_mm.convert import ailurus_model_config
from ailurus_mm.ops import ClusterConfig
from ..common.settings import (VANILLA_SETTING, Setting, check_common,
                               grid_settings, layer_settings)
from ..common.train import Recipe, set_schedule
from ..models import load_weights
from ..paths import strict_json
from ..presets import find_presets
from . import report
from .grid import SPLITS, DetEvaluator, DetSplit, evaluate_detection
from .instances import make_detection_proxy
from .train import detector_config, export_fp16, train_detector

KEEPS = (0.65, 0.5, 0.35, 0.25)
# The config whose AiluRus knobs a fine-tuning-only run studies (the ViT-L
# config has the same ones; tests/test_defaults.py ties both to the grid).
MASK_RCNN_CONFIG = osp.join(
    'mask_rcnn', 'ailurus_mask-rcnn_vit-b_simplefpn_8xb2-lsj-1x_coco-'
    '1024x1024.py')
SHIPPED = 'mask-rcnn_vit-t_simplefpn_1xb4-2k_ailurus-proxy-320x320.pth'
# A short fine-tuning run: an eighth of the vanilla schedule at 0.3x its
# learning rate (the segmentation recipe's factor), and the control.
DET_RECIPE = Recipe(fraction=0.125)


@dataclasses.dataclass(frozen=True)
class DetectionSpec:
    """Everything one run does (the CLI's flags with ``--task
    detection``)."""
    out_dir: str = 'work_dirs/accuracy_det'
    data_root: Optional[str] = None
    checkpoint: Optional[str] = None
    export: Optional[str] = None
    iters: Optional[int] = None
    presets: Optional[Tuple[str, ...]] = None
    keeps: Tuple[float, ...] = KEEPS
    prop_attn: Tuple[bool, ...] = (False, True)
    layers: Tuple[int, ...] = (3, 5)
    finetune: bool = True
    finetune_only: bool = False
    recipe: Recipe = DET_RECIPE
    config: Optional[str] = None
    cfg_options: Optional[Dict[str, Any]] = None
    num_train: int = 2000
    num_val: int = 100
    size: int = 320
    seed: int = 0
    device: str = 'cpu'
    jobs: int = 1
    threads: int = 1
    limit: Optional[int] = None
    splits: Tuple[str, ...] = tuple(s.name for s in SPLITS)

    def validate(self) -> None:
        """Every check that can fail, before any data is made."""
        check_common(self)
        known = [s.name for s in SPLITS]
        if not self.splits or any(s not in known for s in self.splits):
            raise ValueError(f'splits must be some of {known}, got '
                             f'{list(self.splits)}')
        for layer in self.layers:
            ClusterConfig(cluster_layer=layer).check_layers(12)
        if self.finetune_only and not self.finetune:
            raise ValueError('finetune_only and no finetune contradict '
                             'each other')
        if self.finetune_only and self.checkpoint is None:
            raise ValueError('the fine-tuning study alone needs the vanilla '
                             'detector to start from (--checkpoint)')


def grid(spec: DetectionSpec) -> List[Setting]:
    presets = find_presets(spec.presets)
    settings = grid_settings([p for p in presets
                              if p.name not in ('dpc_cover_detail', )],
                             spec.keeps, spec.prop_attn)
    if spec.layers:
        settings += layer_settings(spec.keeps, layers=spec.layers)
    return settings


def finetune_study(cfg, data_root: str, checkpoint: str, out_dir: str,
                   setting: Setting, recipe: Recipe, device: str,
                   limit: Optional[int], log=print,
                   splits: Sequence[DetSplit] = SPLITS) -> Dict[str, Any]:
    """Fine-tune at ``setting`` with clustering in the loop and train the
    vanilla control as long; AP of the start, both and the control with
    AiluRus applied, at both lengths; seconds per iteration."""
    clustering = setting.clustering()
    iters = max(1, round(cfg.train_cfg.max_iters * recipe.fraction))
    lr = cfg.optim_wrapper.optimizer.lr * recipe.lr_factor
    weights, per_iter = {}, {}
    for name, knobs in (('finetune', clustering), ('control', None)):
        run_cfg = copy.deepcopy(cfg)
        if knobs is not None:
            run_cfg.model = ailurus_model_config(run_cfg.model,
                                                 **knobs.to_dict())
        set_schedule(run_cfg, iters, lr=lr, warmup=False)
        run_cfg.load_from = checkpoint
        run_cfg.work_dir = osp.join(out_dir, name)
        log(f'detection fine-tuning ({name}): {iters} iterations at lr '
            f'{lr:g}')
        start = time.perf_counter()
        weights[name] = train_detector(run_cfg)
        per_iter[name] = round((time.perf_counter() - start) / iters, 3)
    result: Dict[str, Any] = dict(knobs=clustering.to_dict(), iters=iters,
                                  lr=lr, seconds_per_iter=per_iter)
    for split in splits:
        scores = {}
        for name, path in (('start', checkpoint),
                           ('tuned', weights['finetune']),
                           ('control', weights['control'])):
            evaluator = DetEvaluator(cfg, data_root, split,
                                     load_weights(path), device, limit)
            for label, s in (('vanilla', VANILLA_SETTING),
                             ('ailurus', setting)):
                row = evaluator.score(s)
                scores[f'{name}_{label}'] = {
                    m: row.scores[m] for m in ('bbox_mAP', 'segm_mAP')}
        result[split.name] = scores
        log(f'[{split.name}] detection fine-tuning: {scores}')
    return result


def finetune_table(study: Dict[str, Any]) -> str:
    per_iter = study['seconds_per_iter']
    lines = [
        f"{report.LABEL}: Mask R-CNN fine-tuned {study['iters']} iterations "
        f"at lr {study['lr']:g} with clustering in the loop "
        f"({per_iter['finetune']:.2f} s per iteration; vanilla control "
        f"{per_iter['control']:.2f} s); box / mask AP:", '',
        '| split | vanilla | AiluRus, no fine-tuning | AiluRus fine-tuned | '
        'vanilla control | control + AiluRus, no fine-tuning |',
        '| --- | --- | --- | --- | --- | --- |'
    ]
    for split in (s.name for s in SPLITS):
        r = study.get(split)
        if r is None:
            continue

        def cell(key: str) -> str:
            return f"{r[key]['bbox_mAP']:.2f} / {r[key]['segm_mAP']:.2f}"

        lines.append(
            f"| {split} | {cell('start_vanilla')} | {cell('start_ailurus')} "
            f"| {cell('tuned_ailurus')} | {cell('control_vanilla')} | "
            f"{cell('control_ailurus')} |")
    return '\n'.join(lines)


def check_tools(cfg, data_root: str, checkpoint: str, setting: Setting,
                out_dir: str, limit: Optional[int] = None,
                log=print) -> Dict[str, Dict[str, float]]:
    """The chosen setting evaluated two more ways on the 2x split, with the
    same weights: ``tools/test.py --no-finetune`` on the AiluRus config of
    the detector (mmdet's own test script through our tool, in this
    process), and ``ailurus_mm.apply`` on the built vanilla detector. Both
    must give the grid's AP."""

    import ailurus_mm
    from ailurus_mm.convert import to_ailurus_config, to_vanilla_config
    from ailurus_mm.launch import run
    from ..models import build_with_weights

    split = SPLITS[-1]
    knobs = setting.clustering().to_dict()
    evaluator = DetEvaluator(cfg, data_root, split, load_weights(checkpoint),
                             limit=limit, log=log)
    model = build_with_weights(to_vanilla_config(cfg).model,
                               evaluator.state_dict, torch.device('cpu'),
                               scope='mmdet')
    ailurus_mm.apply(model, **knobs)
    applied = evaluator._scores('all', evaluator.predictions(model))
    # The same images and annotations as the grid's: a config for them.
    test_cfg = to_ailurus_config(cfg, **knobs)
    dataset = test_cfg.test_dataloader.dataset
    dataset.update(data_root=data_root, ann_file=osp.relpath(
        evaluator.ann_files['all'], data_root),
        data_prefix=dict(img=f'{split.folder}/'))
    if limit is not None:
        dataset.indices = limit
    test_cfg.test_evaluator.ann_file = evaluator.ann_files['all']
    work_dir = osp.join(out_dir, 'check_tools')
    path = osp.join(work_dir, 'ailurus_detector.py')
    os.makedirs(work_dir, exist_ok=True)
    test_cfg.dump(path)
    run('test', [path, checkpoint, '--no-finetune', '--work-dir', work_dir])
    logs = sorted(glob.glob(osp.join(work_dir, '*', '*.log')))
    with open(logs[-1]) as f:
        text = f.read()
    tested = {m: 100 * float(re.findall(rf'coco/{m}: ([0-9.]+)', text)[-1])
              for m in ('bbox_mAP', 'segm_mAP')}
    log(f'check: tools/test.py --no-finetune {tested}, ailurus_mm.apply '
        f'{ {m: applied[m] for m in tested} }')
    return dict(test_py=tested, apply={m: applied[m] for m in tested})


def run_detection_benchmark(spec: DetectionSpec, log=print
                            ) -> Dict[str, Any]:
    """Run the detection benchmark (see the module docstring); returns the
    summary (also in ``summary.json``)."""
    spec.validate()
    os.makedirs(spec.out_dir, exist_ok=True)
    data_root = spec.data_root or osp.join(spec.out_dir, 'data')
    log(f'generating the detection proxy in {data_root} ({spec.num_train} '
        f'train, {spec.num_val} val at {spec.size} and {2 * spec.size})')
    make_detection_proxy(data_root, spec.num_train, spec.num_val, spec.size,
                         spec.seed)
    cfg = detector_config(data_root, osp.join(spec.out_dir, 'train'),
                          spec.config, spec.cfg_options)
    if spec.iters is not None:
        set_schedule(cfg, spec.iters)
    checkpoint = spec.checkpoint
    if checkpoint is None:
        trained = train_detector(cfg)
        checkpoint = export_fp16(trained, spec.export or osp.join(
            spec.out_dir, SHIPPED), cfg)
        log(f'exported {checkpoint} '
            f'({osp.getsize(checkpoint) / 2**20:.1f} MB)')
    splits = [s for s in SPLITS if s.name in spec.splits]
    if spec.finetune_only:
        setting = config_setting()
        log(f'fine-tuning study alone, at the Mask R-CNN configs\' '
            f'setting: {setting.clustering().describe()}')
        study = finetune_study(cfg, data_root, checkpoint, spec.out_dir,
                               setting, spec.recipe, spec.device,
                               spec.limit, log, splits)
        summary = dict(label=report.LABEL, checkpoint=checkpoint,
                       finetune=study, finetune_table=finetune_table(study))
        with open(osp.join(spec.out_dir, 'summary.json'), 'w') as f:
            json.dump(strict_json(summary), f, indent=2, allow_nan=False)
        return summary
    rows = evaluate_detection(cfg, data_root, checkpoint, grid(spec),
                              splits=splits, jobs=spec.jobs,
                              device=spec.device, limit=spec.limit,
                              threads=spec.threads, log=log)
    keep = 0.5 if 0.5 in spec.keeps else spec.keeps[0]
    chosen, summary = report.choice(
        rows, report.write_report(rows, spec.out_dir, keep))
    summary.update(checkpoint=checkpoint,
                   train_iters=cfg.train_cfg.max_iters)
    if chosen is not None:
        summary['check_tools'] = dict(
            grid={m: chosen.scores[m] for m in ('bbox_mAP', 'segm_mAP')},
            **check_tools(cfg, data_root, checkpoint, _setting_of(chosen),
                          spec.out_dir, spec.limit, log))
    if spec.finetune and chosen is not None:
        setting = _setting_of(chosen)
        study = finetune_study(cfg, data_root, checkpoint, spec.out_dir,
                               setting, spec.recipe, spec.device,
                               spec.limit, log, splits)
        summary['finetune'] = study
        summary['finetune_table'] = finetune_table(study)
    with open(osp.join(spec.out_dir, 'summary.json'), 'w') as f:
        json.dump(strict_json(summary), f, indent=2, allow_nan=False)
    return summary


def config_setting(config: str = MASK_RCNN_CONFIG) -> Setting:
    """The AiluRus setting of one of our Mask R-CNN configs (its
    backbone's knobs, the rest at the defaults)."""
    from mmengine.config import Config

    from ailurus_mm.zoo import config_dir

    backbone = Config.fromfile(osp.join(config_dir(), config)).model.backbone
    base = ClusterConfig(**{k: v for k, v in backbone.items()
                            if k in ClusterConfig.names()})
    return Setting(find_presets([base.reducer])[0], base.num_clusters,
                   base.prop_attn, base,
                   label=f'{base.reducer}@layer{base.cluster_layer}')


def _setting_of(row) -> Setting:
    preset = find_presets([row.knobs['reducer']])[0]
    base = ClusterConfig(cluster_layer=row.knobs['cluster_layer'])
    return Setting(preset, row.keep, row.prop_attn, base, label=row.setting)
