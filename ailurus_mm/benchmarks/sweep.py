"""Accuracy vs speed over AiluRus settings, on the config's test dataset.

Every setting (``cluster_layer`` x preset x ``prop_attn`` x
``num_clusters``) and the vanilla model are evaluated with the config's own
dataloader and evaluator (mmseg's IoUMetric for the segmentation configs);
the model time of each batch is measured (synchronised on CUDA) and turned
into images/s. Results go to a CSV (one row per setting plus vanilla, with
every knob of the model measured) and a PNG plot of mIoU vs images/s.

A knob the command line leaves unset is the config's (its backbone's
value, or ``AiluRusViT``'s default), so the default sweep measures the
configured model. Every setting is validated before any data is read.
"""
import copy
import csv
import dataclasses
import os
import os.path as osp
import time
from typing import Any, Dict, List, Optional, Tuple

import torch
from mmengine.config import Config

from ailurus_mm.convert import (ailurus_model_config, model_clustering,
                                vanilla_model_config)
from ailurus_mm.ops import ClusterConfig
from .models import build_with_weights, load_weights, scope_of
from .presets import Preset, find_presets
from .speed.measure import synchronize

CONFIG_PRESET = Preset('config', {}, "the config's own clustering")
SCORE_FIELDS = ('setting', 'preset', 'mIoU', 'mAcc', 'aAcc', 'images',
                'images_per_second', 'speedup')


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """The settings of one sweep.

    Attributes:
        num_clusters: Keep ratios (or counts).
        cluster_layers: Layers to cluster after (default: the config's).
        presets: Preset names (default: the config's own clustering).
        prop_attn: ``prop_attn`` settings (default: the config's).
        device: Where to run.
    """
    num_clusters: Tuple[Any, ...]
    cluster_layers: Optional[Tuple[int, ...]] = None
    presets: Optional[Tuple[str, ...]] = None
    prop_attn: Optional[Tuple[bool, ...]] = None
    device: str = 'cpu'

    def settings(self, cfg: Config) -> List[Tuple[Preset, ClusterConfig]]:
        """Every setting as ``(preset, knobs)``, validated against the
        config's model (raises before any data is read)."""
        if not self.num_clusters:
            raise ValueError('give at least one --num-clusters value')
        base = model_clustering(cfg.model)
        backbone = cfg.model.backbone
        layers = self.cluster_layers or (base.cluster_layer, )
        presets = (CONFIG_PRESET, ) if self.presets is None else \
            find_presets(self.presets)
        attns = self.prop_attn or (base.prop_attn, )
        settings = []
        for layer in layers:
            for preset in presets:
                for attn in attns:
                    for value in self.num_clusters:
                        knobs = preset.apply(base, cluster_layer=layer,
                                             prop_attn=attn,
                                             num_clusters=value)
                        knobs.check_layers(backbone.get('num_layers', 12),
                                           backbone.get('out_indices', -1))
                        settings.append((preset, knobs))
        device = torch.device(self.device)
        if device.type == 'cuda' and not torch.cuda.is_available():
            raise ValueError(f'--device {self.device}: CUDA is not '
                             'available here')
        return settings


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


def _name(preset: Preset, knobs: ClusterConfig) -> str:
    return (f'{preset.name} prop_attn={knobs.prop_attn} cluster_layer='
            f'{knobs.cluster_layer} num_clusters={knobs.num_clusters}')


def run_sweep(cfg: Config, checkpoint: str, spec: SweepSpec,
              out_dir: str = 'sweep') -> List[Dict]:
    """Evaluate vanilla and every setting of ``spec``; write ``sweep.csv``
    and ``sweep.png`` into ``out_dir``.

    Returns:
        The CSV rows (vanilla first).
    """
    from mmengine.evaluator import Evaluator
    from mmengine.registry import DefaultScope
    from mmengine.runner import Runner

    settings = spec.settings(cfg)
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint {checkpoint} does not exist')
    device = torch.device(spec.device)
    scope = scope_of(cfg)
    state_dict = load_weights(checkpoint)
    with DefaultScope.overwrite_default_scope(scope):
        dataloader = Runner.build_dataloader(cfg.test_dataloader)
    evaluator_cfg = cfg.test_evaluator
    if isinstance(evaluator_cfg, dict):
        evaluator_cfg = [evaluator_cfg]

    def build(model_cfg):
        return build_with_weights(model_cfg, state_dict, device, scope,
                                  source=checkpoint)

    def evaluate(model, desc):
        with DefaultScope.overwrite_default_scope(scope):
            evaluator = Evaluator(copy.deepcopy(evaluator_cfg))
        evaluator.dataset_meta = dataloader.dataset.metainfo
        return evaluate_model(model, dataloader, evaluator, device, desc)

    vanilla_cfg = vanilla_model_config(cfg.model)
    results = [('vanilla', None, None,
                evaluate(build(vanilla_cfg), 'vanilla'))]
    for preset, knobs in settings:
        model = build(ailurus_model_config(vanilla_cfg, **knobs.to_dict()))
        name = _name(preset, knobs)
        results.append((name, preset.name, knobs, evaluate(model, name)))

    base_speed = results[0][3]['images'] / results[0][3]['seconds']
    rows = []
    for name, preset, knobs, result in results:
        speed = result['images'] / result['seconds']
        row = dict(setting=name, preset=preset,
                   mIoU=_metric(result['metrics'], 'mIoU'),
                   mAcc=_metric(result['metrics'], 'mAcc'),
                   aAcc=_metric(result['metrics'], 'aAcc'),
                   images=result['images'], images_per_second=speed,
                   speedup=speed / base_speed)
        row.update({k: '' for k in ClusterConfig.names()} if knobs is None
                   else knobs.to_dict())
        rows.append(row)
    os.makedirs(out_dir, exist_ok=True)
    with open(osp.join(out_dir, 'sweep.csv'), 'w', newline='') as f:
        writer = csv.DictWriter(
            f, fieldnames=list(SCORE_FIELDS) + list(ClusterConfig.names()))
        writer.writeheader()
        writer.writerows(rows)
    plot_sweep(rows, osp.join(out_dir, 'sweep.png'))
    return rows


def plot_sweep(rows: List[Dict], path: str) -> None:
    """mIoU vs images/s, one line per preset x prop_attn x cluster_layer,
    vanilla marked (matplotlib's object API; no backend switch)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.8), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    vanilla, settings = rows[0], rows[1:]
    groups = dict.fromkeys((r['preset'], r['prop_attn'], r['cluster_layer'])
                           for r in settings)
    for preset, attn, layer in groups:
        points = [r for r in settings
                  if (r['preset'], r['prop_attn'], r['cluster_layer']) ==
                  (preset, attn, layer)]
        name = 'AiluRus' if preset == 'config' else preset
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
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
