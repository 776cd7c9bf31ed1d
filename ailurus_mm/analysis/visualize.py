"""What AiluRus does to an image: cluster map, resolution map, predictions.

Each image is resized to the model's crop size (one inference window) and run
through the vanilla and the AiluRus model with the same weights. The PNG has
four panels of the crop size, each under a caption strip:

- the image with cluster boundaries (white) and anchors (red dots);
- the "resolution" map: how many patches each pixel's cluster merged
  (log scale, dark = full resolution, bright = coarse);
- the vanilla prediction and the AiluRus prediction, in the dataset palette.
"""
import os
import os.path as osp
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch

CAPTION = 28  # pixels of the caption strip above each panel


def boundary_mask(labels: np.ndarray) -> np.ndarray:
    """Pixels whose right or lower neighbour has another label."""
    edges = np.zeros(labels.shape, bool)
    edges[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    edges[:-1, :] |= labels[:-1, :] != labels[1:, :]
    return edges


def _upsample(grid: np.ndarray, shape: Tuple[int, int]) -> np.ndarray:
    """Nearest upsampling of a patch grid to ``shape`` (patches cover the
    top-left of a padded image; the rest repeats the last patch)."""
    rows = np.minimum(
        np.arange(shape[0]) * grid.shape[0] // shape[0], grid.shape[0] - 1)
    cols = np.minimum(
        np.arange(shape[1]) * grid.shape[1] // shape[1], grid.shape[1] - 1)
    return grid[rows][:, cols]


def _colorize(values: np.ndarray) -> np.ndarray:
    """``[0, 1]`` values to a BGR colour map (OpenCV's viridis)."""
    import cv2
    gray = np.clip(values * 255, 0, 255).astype(np.uint8)
    return cv2.applyColorMap(gray, cv2.COLORMAP_VIRIDIS)


def _caption(panel: np.ndarray, text: str) -> np.ndarray:
    import cv2
    strip = np.full((CAPTION, panel.shape[1], 3), 255, np.uint8)
    cv2.putText(strip, text, (4, CAPTION - 9), cv2.FONT_HERSHEY_SIMPLEX,
                0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([strip, panel], axis=0)


def cluster_panels(image: np.ndarray, index: np.ndarray, sizes: np.ndarray,
                   anchors: np.ndarray,
                   hw_shape: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray]:
    """The boundary/anchor overlay and the resolution map of one image.

    Args:
        image: ``[H, W, 3]`` BGR uint8 (the model input before padding).
        index: Cluster id per patch ``[N]``.
        sizes: Patches per cluster ``[M]``.
        anchors: Patch index of every anchor ``[M]``.
        hw_shape: Patch grid ``(h, w)``.

    Returns:
        ``(overlay, resolution)``, both ``[H, W, 3]`` uint8.
    """
    import cv2
    height, width = image.shape[:2]
    clusters = _upsample(index.reshape(hw_shape), (height, width))
    overlay = image.copy()
    overlay[boundary_mask(clusters)] = (255, 255, 255)
    patch_h, patch_w = height / hw_shape[0], width / hw_shape[1]
    for anchor in anchors:
        row, col = divmod(int(anchor), hw_shape[1])
        center = (int((col + 0.5) * patch_w), int((row + 0.5) * patch_h))
        cv2.circle(overlay, center, max(2, int(min(patch_h, patch_w) / 5)),
                   (0, 0, 255), -1, cv2.LINE_AA)
    patch_sizes = sizes[index].reshape(hw_shape)
    scaled = np.log2(patch_sizes) / max(1.0, np.log2(sizes.max()))
    resolution = _colorize(_upsample(scaled, (height, width)))
    return overlay, resolution


def _palette(cfg, num_classes: int) -> np.ndarray:
    from mmseg.registry import DATASETS
    try:
        dataset_cls = DATASETS.get(cfg.test_dataloader.dataset.type)
        palette = np.array(dataset_cls.METAINFO['palette'], np.uint8)
    except Exception:  # no dataset in the config, or no palette
        palette = np.random.default_rng(0).integers(
            0, 255, (num_classes, 3)).astype(np.uint8)
    return palette[:, ::-1]  # RGB -> BGR


def visualize_images(cfg,
                     checkpoint: str,
                     images: Sequence[str],
                     out_dir: str,
                     device: str = 'cpu') -> List[Dict]:
    """Write ``<out_dir>/<image name>.png`` for every image.

    Returns:
        One record per image: ``path``, ``panel_shape`` ``(H, W)``,
        ``patch_tokens``, ``kept_tokens``, ``pixel_agreement``.
    """
    import cv2
    import mmcv

    from .inputs import default_shape, make_batch
    from .variants import build_variants, config_variant

    missing = [path for path in images if not osp.isfile(path)]
    if missing:
        raise FileNotFoundError(f'cannot read image(s): {missing}')
    shape = default_shape(cfg)
    ailurus = config_variant(cfg.model)
    models = build_variants(cfg, checkpoint, names=('vanilla', ailurus),
                            device=device)
    models['ailurus'] = models.pop(ailurus)
    num_classes = cfg.model.decode_head.num_classes
    palette = _palette(cfg, num_classes)
    os.makedirs(out_dir, exist_ok=True)
    records = []
    for path in images:
        image = mmcv.imread(path)
        inputs, samples = make_batch(cfg, models['vanilla'], shape, 1,
                                     torch.device(device), image=image)
        captured = {}
        backbone = models['ailurus'].backbone
        hook = backbone.register_forward_hook(
            lambda module, args, out: captured.setdefault('out', out))
        try:
            with torch.no_grad():
                preds = {
                    name: model(inputs, samples,
                                mode='predict')[0].pred_sem_seg.data[0]
                    for name, model in models.items()
                }
        finally:
            hook.remove()
        outputs = captured['out']
        shown = cv2.resize(image, (shape[1], shape[0]))
        hw_shape = outputs.hw_shape
        patch_tokens = hw_shape[0] * hw_shape[1]
        if outputs.assignment is None:
            index = np.arange(patch_tokens)
            sizes = np.ones(patch_tokens)
            anchors = index
        else:
            index = outputs.assignment.index[0].cpu().numpy()
            sizes = outputs.assignment.sizes[0].cpu().numpy()
            anchors = outputs.assignment.anchors[0].cpu().numpy()
        overlay, resolution = cluster_panels(shown, index, sizes, anchors,
                                             hw_shape)
        pred_panels = {
            name: palette[pred.cpu().numpy() % len(palette)]
            for name, pred in preds.items()
        }
        agreement = float(
            (preds['vanilla'] == preds['ailurus']).float().mean())
        kept = len(sizes)
        top = np.concatenate([
            _caption(overlay, f'clusters: {patch_tokens} -> {kept} tokens'),
            _caption(resolution, 'patches per cluster (log)')
        ], axis=1)
        bottom = np.concatenate([
            _caption(pred_panels['vanilla'], 'vanilla'),
            _caption(pred_panels['ailurus'],
                     f'AiluRus ({100 * agreement:.1f}% agree)')
        ], axis=1)
        name = osp.splitext(osp.basename(path))[0] + '.png'
        out_path = osp.join(out_dir, name)
        cv2.imwrite(out_path, np.concatenate([top, bottom], axis=0))
        records.append(
            dict(path=out_path, panel_shape=tuple(shape),
                 patch_tokens=patch_tokens, kept_tokens=kept,
                 pixel_agreement=agreement))
    return records
