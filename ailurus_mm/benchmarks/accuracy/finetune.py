"""The fine-tuning study: the benchmark model fine-tuned with clustering in
the loop by the ``ailurus-ft_`` recipe, against a vanilla control trained
as long; both evaluated against the starting model.

The recipe, relative to the vanilla training: a fraction of its schedule
(:data:`FT_SCHEDULE_FRACTION`) at a factor of its learning rate
(:data:`FT_LR_FACTOR`), poly decay, no warm-up. The fine-tuning configs of
the zoo follow it (their tests read these constants).
"""
import copy
import os.path as osp
import time
from typing import Any, Dict, List, Optional

from mmengine.config import Config

from ailurus_mm.convert import ailurus_model_config
from ailurus_mm.ops import ClusterConfig
from ..common.settings import VANILLA_SETTING, Setting
from ..common.train import Recipe, set_schedule, train
from ..models import load_weights
from ..presets import default_preset
from .data import AccuracyDataset
from .grid import Evaluator


def finetune(cfg: Config, checkpoint: str, work_dir: str,
             clustering: Optional[ClusterConfig], iters: int,
             lr: float) -> str:
    """Fine-tune from ``checkpoint`` as the ``ailurus-ft_`` configs do,
    with clustering in the loop, or as the vanilla model with
    ``clustering=None`` (the control: the same extra training)."""
    cfg = copy.deepcopy(cfg)
    if clustering is not None:
        cfg.model = ailurus_model_config(cfg.model, **clustering.to_dict())
    set_schedule(cfg, iters, lr=lr, warmup=False)
    cfg.load_from = checkpoint
    cfg.work_dir = work_dir
    return train(cfg)


def finetune_study(cfg: Config, dataset: AccuracyDataset, checkpoint: str,
                   out_dir: str, setting: Setting,
                   recipe: Recipe = Recipe(), device: str = 'cpu',
                   log=print) -> Dict[str, Any]:
    """Fine-tune at ``setting`` (trained at ``recipe.train_keep`` if set)
    and train the vanilla control as long; evaluate the start, the
    fine-tuned model and the control (also with AiluRus applied without
    fine-tuning) on every split."""
    clustering = setting.clustering()
    train_clustering = clustering if recipe.train_keep is None else \
        clustering.replace(num_clusters=recipe.train_keep)
    iters = max(1, round(cfg.train_cfg.max_iters * recipe.fraction))
    lr = cfg.optim_wrapper.optimizer.lr * recipe.lr_factor
    log(f'fine-tuning {iters} iterations at lr {lr:g} with '
        f'{train_clustering.describe()}, and the vanilla control')
    seconds = {}
    start = time.perf_counter()
    tuned = finetune(cfg, checkpoint, osp.join(out_dir, 'finetune'),
                     train_clustering, iters, lr)
    seconds['finetune'] = time.perf_counter() - start
    start = time.perf_counter()
    control = finetune(cfg, checkpoint, osp.join(out_dir,
                                                 'finetune_vanilla'),
                       None, iters, lr)
    seconds['control'] = time.perf_counter() - start
    result: Dict[str, Any] = dict(
        knobs=clustering.to_dict(), train_keep=train_clustering.num_clusters,
        iters=iters, lr=lr, seconds_per_iter={
            k: round(v / iters, 3) for k, v in seconds.items()},
        train_seconds={k: round(v, 1) for k, v in seconds.items()})
    for split in dataset.splits:
        scores: Dict[str, float] = {}
        for name, weights in (('start', checkpoint), ('tuned', tuned),
                              ('control', control)):
            evaluator = Evaluator(cfg, dataset, split, load_weights(weights),
                                  device)
            scores[f'{name}_vanilla'] = evaluator.score(VANILLA_SETTING).miou
            scores[f'{name}_ailurus'] = evaluator.score(setting).miou
        gap = scores['start_vanilla'] - scores['start_ailurus']
        result[split.name] = dict(
            vanilla=scores['start_vanilla'],
            no_finetune=scores['start_ailurus'],
            finetuned=scores['tuned_ailurus'],
            finetuned_vanilla_control=scores['control_vanilla'],
            vanilla_control_no_finetune=scores['control_ailurus'],
            drop_before=gap,
            drop_after=scores['start_vanilla'] - scores['tuned_ailurus'],
            gap_closed=None if gap <= 0 else (
                scores['tuned_ailurus'] - scores['start_ailurus']) / gap)
        log(f'[{split.name}] fine-tuning: {result[split.name]}')
    return result


def default_setting(keep: Optional[float] = None,
                    prop_attn: Optional[bool] = None) -> Setting:
    """The setting the study fine-tunes at: the default clustering,
    ``keep`` and ``prop_attn`` at ``AiluRusViT``'s defaults unless given."""
    defaults = ClusterConfig()
    return Setting(default_preset(),
                   defaults.num_clusters if keep is None else keep,
                   defaults.prop_attn if prop_attn is None else prop_attn)


def finetune_table(study: Dict[str, Any], splits: List[str],
                   label: str) -> str:
    """The study as markdown."""
    keep = study['knobs']['num_clusters']
    per_iter = study['seconds_per_iter']
    lines = [
        f"{label}: fine-tuning {study['iters']} iterations at lr "
        f"{study['lr']:g} with clustering at keep {study['train_keep']} in "
        f"the loop, evaluated at keep {keep} ({per_iter['finetune']:.2f} s "
        f"per iteration; vanilla control {per_iter['control']:.2f} s):",
        '', '| split | vanilla | AiluRus, no fine-tuning | AiluRus '
        'fine-tuned | vanilla control | control + AiluRus, no fine-tuning | '
        'gap closed |', '| --- | --- | --- | --- | --- | --- | --- |'
    ]
    for split in splits:
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
