"""Accuracy vs speed over AiluRus settings, on the config's test dataset.

Every setting (``cluster_layer`` x ``num_clusters``) and the vanilla model are
evaluated with the config's own dataloader and evaluator (mmseg's
IoUMetric for the segmentation configs); the model time of each batch is
measured (synchronised on CUDA) and turned into images/s. Results go to a CSV
(one row per setting plus vanilla) and a PNG plot of mIoU vs images/s.
"""
import copy
import csv
import os
import os.path as osp
import time
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.config import Config

from .measure import synchronize

CSV_FIELDS = ('setting', 'reducer', 'prop_attn', 'cluster_layer',
              'num_clusters', 'mIoU', 'mAcc', 'aAcc', 'images',
              'images_per_second', 'speedup')


def evaluate_model(model, dataloader, evaluator, device: torch.device,
                   desc: str) -> Dict:
    """Run ``model`` over the dataloader; metrics plus model seconds."""
    from mmengine.utils import ProgressBar

    model.eval()
    seconds, images = 0.0, 0
    print(desc, flush=True)
    progress = ProgressBar(len(dataloader.dataset))
    for data in dataloader:
        synchronize(device)
        start = time.perf_counter()
        with torch.no_grad():
            outputs = model.test_step(data)
        synchronize(device)
        seconds += time.perf_counter() - start
        evaluator.process(data_samples=outputs, data_batch=data)
        images += len(outputs)
        for _ in outputs:
            progress.update()
    print(flush=True)
    metrics = evaluator.evaluate(len(dataloader.dataset))
    return dict(metrics=metrics, seconds=seconds, images=images)


def _metric(metrics: Dict, name: str) -> Optional[float]:
    for key, value in metrics.items():
        if key.split('/')[-1] == name:
            return float(value)
    return None


def run_sweep(cfg: Config,
              checkpoint: str,
              num_clusters: Sequence[float],
              cluster_layers: Optional[Sequence[int]] = None,
              out_dir: str = 'sweep',
              device: str = 'cpu',
              threads: Optional[int] = None,
              reducers: Optional[Sequence[str]] = None,
              prop_attn: Optional[Sequence[bool]] = None) -> List[Dict]:
    """Evaluate vanilla and every setting (``cluster_layers`` x
    ``reducers`` x ``prop_attn`` x ``num_clusters``); write ``sweep.csv``
    and ``sweep.png`` into ``out_dir``.

    Args:
        reducers: Reducer names of the accuracy benchmark (``ailurus``,
            ``farthest``, ``tome``, ...; see
            :data:`ailurus_mm.analysis.accuracy.REDUCERS`); default: the
            config's own clustering.
        prop_attn: Proportional attention settings; default: the config's.

    Returns:
        The CSV rows (vanilla first).
    """
    from mmengine.evaluator import Evaluator
    from mmengine.runner import Runner

    from ailurus_mm.ops import calibrate_anchor_threshold

    from .accuracy import cluster_layer_scores, find_reducers
    from .variants import (build_model, build_variants, config_variant,
                           variant_model_cfgs)

    if threads is not None:
        torch.set_num_threads(threads)
    if not num_clusters:
        raise ValueError('give at least one --num-clusters value')
    device_t = torch.device(device)
    if cluster_layers is None:
        cluster_layers = [cfg.model.backbone.get('cluster_layer', 1)]
    reducer_knobs = [('config', {}, False)] if reducers is None else [
        (r.name, r.knobs, r.by_content) for r in find_reducers(reducers)]
    if prop_attn is None:
        prop_attn = [cfg.model.backbone.get('prop_attn', False)]
    models = build_variants(cfg, checkpoint, names=('vanilla', ),
                            device=device)
    state_dict = models['vanilla'].state_dict()
    dataloader = Runner.build_dataloader(cfg.test_dataloader)
    evaluator_cfg = cfg.test_evaluator
    if isinstance(evaluator_cfg, dict):
        evaluator_cfg = [evaluator_cfg]

    def evaluate(model, desc):
        evaluator = Evaluator(copy.deepcopy(evaluator_cfg))
        evaluator.dataset_meta = dataloader.dataset.metainfo
        return evaluate_model(model, dataloader, evaluator, device_t, desc)

    results = [(dict(setting='vanilla', reducer=None, prop_attn=None,
                     cluster_layer=None, num_clusters=None),
                evaluate(models['vanilla'], 'vanilla'))]
    del models
    ailurus = config_variant(cfg.model)
    ailurus_cfg = variant_model_cfgs(cfg.model, (ailurus, ))[ailurus]

    def setting_cfg(layer, knobs, **more):
        model_cfg = copy.deepcopy(ailurus_cfg)
        if reducers is not None:  # the reducer's own knobs
            for knob in ('reducer', 'k', 'spatial_weight', 'window',
                         'recover_detail', 'anchor_threshold'):
                model_cfg.backbone.pop(knob, None)
        model_cfg.backbone.update(cluster_layer=layer, **knobs, **more)
        return model_cfg

    def scores_of(layer, knobs):
        # The decision scores over the test set, for a per-image count
        # whose mean is each num_clusters value (see accuracy.py).
        model = build_model(setting_cfg(layer, knobs, num_clusters=1.0),
                            cfg)
        model.load_state_dict(state_dict, strict=True)
        return cluster_layer_scores(model.to(device_t).eval(), dataloader)

    for layer in cluster_layers:
        for reducer, knobs, by_content in reducer_knobs:
            scores = scores_of(layer, knobs) if by_content else None
            for attn in prop_attn:
                for value in num_clusters:
                    count = dict(num_clusters=value)
                    if by_content:
                        count = dict(num_clusters=1.0,
                                     anchor_threshold=(
                                         calibrate_anchor_threshold(
                                             scores, value)))
                    model_cfg = setting_cfg(layer, knobs, prop_attn=attn,
                                            **count)
                    model = build_model(model_cfg, cfg)
                    model.load_state_dict(state_dict, strict=True)
                    model.to(device_t)
                    name = (f'{reducer} prop_attn={attn} cluster_layer='
                            f'{layer} num_clusters={value}')
                    results.append((dict(
                        setting=name, reducer=reducer, prop_attn=attn,
                        cluster_layer=layer, num_clusters=value),
                        evaluate(model, name)))

    base_speed = results[0][1]['images'] / results[0][1]['seconds']
    rows = []
    for setting, result in results:
        speed = result['images'] / result['seconds']
        rows.append(
            dict(**setting,
                 mIoU=_metric(result['metrics'], 'mIoU'),
                 mAcc=_metric(result['metrics'], 'mAcc'),
                 aAcc=_metric(result['metrics'], 'aAcc'),
                 images=result['images'], images_per_second=speed,
                 speedup=speed / base_speed))
    os.makedirs(out_dir, exist_ok=True)
    with open(osp.join(out_dir, 'sweep.csv'), 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    plot_sweep(rows, osp.join(out_dir, 'sweep.png'))
    return rows


def plot_sweep(rows: List[Dict], path: str) -> None:
    """mIoU vs images/s, one point per setting, vanilla marked."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=100)
    vanilla, settings = rows[0], rows[1:]
    groups = dict.fromkeys((r['reducer'], r['prop_attn'], r['cluster_layer'])
                           for r in settings)
    for reducer, attn, layer in groups:
        points = [r for r in settings
                  if (r['reducer'], r['prop_attn'], r['cluster_layer']) ==
                  (reducer, attn, layer)]
        name = 'AiluRus' if reducer == 'config' else reducer
        ax.plot([p['images_per_second'] for p in points],
                [p['mIoU'] for p in points], 'o-' if attn else 'o--',
                label=f'{name}, prop_attn={attn}, cluster_layer={layer}')
        for p in points:
            ax.annotate(f"{p['num_clusters']}",
                        (p['images_per_second'], p['mIoU']),
                        textcoords='offset points', xytext=(4, 4),
                        fontsize=8)
    ax.plot([vanilla['images_per_second']], [vanilla['mIoU']], 'k*',
            markersize=12, label='vanilla')
    ax.set_xlabel('images / s (model time)')
    ax.set_ylabel('mIoU')
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
