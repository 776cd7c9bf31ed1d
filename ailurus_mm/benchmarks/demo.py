"""The main job: accelerate a Segmenter and show what changes.

Builds the vanilla and AiluRus versions of a config's model with the same
weights, times both in one process on one image, and prints images/s, the
token count before/after clustering and how many pixels the two predictions
agree on; then the accuracy of a trained model with and without AiluRus:
the shipped CamVid model on CamVid's validation images when CamVid is at
hand, else the shipped synthetic-proxy model on generated scenes.
"""
import dataclasses
import os.path as osp
import tempfile
from typing import Any, Dict, Optional

import torch

from ailurus_mm.ops import ClusterConfig, resolve_num_clusters
from ailurus_mm.zoo import load_config
from .accuracy.data import CAMVID, PROXY, AccuracyDataset
from .accuracy.grid import VANILLA_SETTING, Evaluator, Setting
from .models import load_weights
from .presets import default_preset
from .speed.inputs import default_shape, make_batch
from .speed.measure import describe_tokens
from .speed.run import time_predictions
from .variants import build_variants, config_variant

DEMO_CONFIG = 'segmenter_vitl_ailurus.py'


def shipped_checkpoint(dataset: AccuracyDataset) -> str:
    """The shipped model of a benchmark dataset
    (``ailurus_mm/checkpoints/<name>``)."""
    path = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))),
                    'checkpoints', dataset.checkpoint)
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'the shipped {dataset.name} model is missing: {path}; '
            'regenerate it with tools/accuracy_benchmark.py --dataset '
            f'{dataset.name} --export {path}')
    return path


@dataclasses.dataclass(frozen=True)
class DemoSpec:
    """The demo's settings (``tools/demo.py``'s flags)."""
    config: str = DEMO_CONFIG
    checkpoint: Optional[str] = None
    image: Optional[str] = None
    warmup: int = 1
    runs: int = 2
    device: str = 'cpu'
    cfg_options: Optional[Dict[str, Any]] = None
    accuracy_images: int = 8
    camvid_root: Optional[str] = None


def speed_part(spec: DemoSpec, log=print) -> Dict[str, Any]:
    """Time vanilla and AiluRus on one image, in this process."""
    cfg = load_config(spec.config, spec.cfg_options)
    shape = default_shape(cfg)
    device = torch.device(spec.device)
    weights = spec.checkpoint or 'random weights (no checkpoint given)'
    log(f'AiluRus demo: {osp.basename(cfg.filename)} at {shape[0]}x'
        f'{shape[1]}, {weights}')
    # The config's own AiluRus model (with merged decoding if it asks).
    ailurus = config_variant(cfg.model)
    models = build_variants(cfg, spec.checkpoint,
                            names=('vanilla', ailurus), device=device)
    models['ailurus'] = models.pop(ailurus)
    image = None
    if spec.image:
        import mmcv
        image = mmcv.imread(spec.image)
    inputs, samples = make_batch(cfg, models['vanilla'], shape, 1, device,
                                 image=image)
    log(f'timing both models in this process: batch 1, {spec.warmup} '
        f'warm-up + {spec.runs} interleaved runs each, '
        f'{torch.get_num_threads()} threads on {device} ...')
    timing = time_predictions(models, inputs, samples, spec.warmup,
                              spec.runs, device)
    tokens, preds = timing.tokens_per_layer, timing.predictions
    backbone = models['ailurus'].backbone
    extra = 1 if backbone.with_cls_token else 0
    patch_tokens = tokens['vanilla'][0] - extra
    clustering = backbone.clustering
    kept = resolve_num_clusters(clustering.num_clusters, patch_tokens)
    speed = {name: 1.0 / min(values)
             for name, values in timing.seconds.items()}
    agreement = (preds['vanilla'] == preds['ailurus']).float().mean().item()
    per_layer = {name: describe_tokens(t) for name, t in tokens.items()}
    log(f'tokens: {patch_tokens} patch tokens -> {kept} after layer '
        f'{clustering.cluster_layer} (num_clusters='
        f"{clustering.num_clusters}); per layer: vanilla "
        f"{per_layer['vanilla']}, AiluRus {per_layer['ailurus']} "
        f'(+{extra} cls)')
    log(f"vanilla: {speed['vanilla']:.4f} img/s, AiluRus: "
        f"{speed['ailurus']:.4f} img/s, speed-up "
        f"{speed['ailurus'] / speed['vanilla']:.2f}x (min of "
        f'{spec.runs} runs)')
    log(f'pixel agreement of the two predictions: {100 * agreement:.2f}%')
    return dict(
        images_per_second=speed,
        speedup=speed['ailurus'] / speed['vanilla'],
        patch_tokens=patch_tokens, kept_tokens=kept,
        tokens_per_layer={name: list(t) for name, t in tokens.items()},
        predictions=preds, pixel_agreement=agreement,
        threads=torch.get_num_threads())


def accuracy_line(dataset: AccuracyDataset, data_root: str,
                  num_images: int, split_name: str = '2x',
                  device: str = 'cpu') -> Dict[str, Any]:
    """Vanilla and AiluRus (``AiluRusViT``'s defaults) mIoU of a shipped
    benchmark model on the first ``num_images`` validation images."""
    cfg = dataset.load_config(data_root, data_root)
    split = dataset.split(split_name)
    state_dict = load_weights(shipped_checkpoint(dataset))
    evaluator = Evaluator(cfg, dataset, split, state_dict, device,
                          limit=num_images, log=lambda *a: None)
    vanilla = evaluator.score(VANILLA_SETTING)
    defaults = ClusterConfig()
    ailurus = evaluator.score(Setting(default_preset(),
                                      defaults.num_clusters,
                                      defaults.prop_attn))
    return dict(dataset=dataset.name, label=dataset.label,
                images=num_images, tokens=vanilla.tokens,
                kept=round(ailurus.kept_tokens), vanilla=vanilla.miou,
                ailurus=ailurus.miou)


def run_demo(spec: DemoSpec, log=print) -> Dict[str, Any]:
    """The speed part, then the accuracy line."""
    result = speed_part(spec, log)
    result['accuracy'] = None
    if spec.accuracy_images <= 0:
        return result
    if spec.camvid_root is not None:
        CAMVID.check_data_root(spec.camvid_root)
        accuracy = accuracy_line(CAMVID, spec.camvid_root,
                                 spec.accuracy_images, device=spec.device)
        where = f'{accuracy["images"]} CamVid validation images at 2x'
    else:
        from .common.scenes import make_proxy_ade20k
        with tempfile.TemporaryDirectory() as root:
            make_proxy_ade20k(root, num_train=0,
                              num_val=spec.accuracy_images)
            accuracy = accuracy_line(PROXY, root, spec.accuracy_images,
                                     device=spec.device)
        where = f'{accuracy["images"]} generated scenes at 640x640'
    log(f"accuracy ({accuracy['label']}): Segmenter ViT-T trained here, "
        f"{where}, {accuracy['tokens']} -> {accuracy['kept']} tokens with "
        f"AiluRusViT's defaults: vanilla mIoU {accuracy['vanilla']:.2f}, "
        f"AiluRus mIoU {accuracy['ailurus']:.2f}")
    result['accuracy'] = accuracy
    return result
