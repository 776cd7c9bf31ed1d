"""What AiluRus does to an image: cluster map, resolution map, predictions.

Each image goes through the config's test pipeline (aspect ratio kept, as
``mmseg.apis.inference_model`` sees it) and the vanilla and the AiluRus
model with the same weights, in the config's inference mode (whole image or
slide windows). The PNG has four panels of the resized image, each under a
caption strip:

- the image with cluster boundaries (white) and anchors (red dots);
- the "resolution" map: how many patches each pixel's cluster merged
  (log scale, dark = full resolution, bright = coarse);
- the vanilla prediction and the AiluRus prediction, in the dataset palette.
"""
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


def check_images(images: Sequence[str]) -> None:
    """Raise naming every file that is missing or that OpenCV cannot
    decode (before any model is built)."""
    import mmcv

    problems = []
    for path in images:
        if not osp.isfile(path):
            problems.append(f'{path}: no such file')
            continue
        try:
            image = mmcv.imread(path)
        except Exception as error:  # mmcv's backends raise their own
            image, reason = None, f'{type(error).__name__}: {error}'
        else:
            reason = 'not an image OpenCV can decode (corrupt or truncated?)'
        if image is None or getattr(image, 'size', 0) == 0:
            problems.append(f'{path}: {reason}')
    if problems:
        raise ValueError('cannot read image(s): ' + '; '.join(problems))


def _test_data(cfg, path: str):
    """``path`` through the config's test pipeline without annotations
    (what ``mmseg.apis.inference_model`` does), collated as a batch."""
    from mmengine.dataset import Compose, pseudo_collate
    from mmengine.registry import DefaultScope

    pipeline = [t for t in cfg.test_dataloader.dataset.pipeline
                if t['type'] != 'LoadAnnotations']
    with DefaultScope.overwrite_default_scope('mmseg'):
        data = Compose(pipeline)(dict(img_path=path))
    return pseudo_collate([data])


Box = Tuple[int, int, int, int]


def _windows(model, height: int, width: int) -> List[Box]:
    """The ``(y1, y2, x1, x2)`` windows mmseg's inference runs, in order
    (its ``slide_inference`` arithmetic; one for ``whole``)."""
    if model.test_cfg.get('mode', 'whole') != 'slide':
        return [(0, height, 0, width)]
    h_stride, w_stride = model.test_cfg.stride
    h_crop, w_crop = model.test_cfg.crop_size
    h_grids = max(height - h_crop + h_stride - 1, 0) // h_stride + 1
    w_grids = max(width - w_crop + w_stride - 1, 0) // w_stride + 1
    boxes = []
    for h_idx in range(h_grids):
        for w_idx in range(w_grids):
            y2 = min(h_idx * h_stride + h_crop, height)
            x2 = min(w_idx * w_stride + w_crop, width)
            boxes.append((max(y2 - h_crop, 0), y2, max(x2 - w_crop, 0), x2))
    return boxes


def panel_paths(images: Sequence[str], out_dir: str) -> List[str]:
    """``<out_dir>/<image name>_ailurus.png`` for every image; images
    with the same name (from different folders) get ``-2``, ``-3``, ..."""
    paths, seen = [], {}
    for image in images:
        stem = osp.splitext(osp.basename(image))[0]
        seen[stem] = seen.get(stem, 0) + 1
        suffix = '' if seen[stem] == 1 else f'-{seen[stem]}'
        paths.append(osp.join(out_dir, f'{stem}{suffix}_ailurus.png'))
    return paths


def visualize_images(cfg,
                     checkpoint: str,
                     images: Sequence[str],
                     outputs: Sequence[str],
                     device: str = 'cpu') -> List[Dict]:
    """Write one panel per image, to ``outputs`` (e.g.
    :func:`panel_paths`; their folders must exist).

    Returns:
        One record per image: ``path``, ``panel_shape`` ``(H, W)`` (the
        resized image), ``windows``, ``patch_tokens`` and ``kept_tokens``
        (per window, summed), ``pixel_agreement``.
    """
    import cv2

    from .variants import build_variants, config_variant

    check_images(images)
    ailurus = config_variant(cfg.model)
    models = build_variants(cfg, checkpoint, names=('vanilla', ailurus),
                            device=device)
    models['ailurus'] = models.pop(ailurus)
    num_classes = cfg.model.decode_head.num_classes
    palette = _palette(cfg, num_classes)
    if len(outputs) != len(images):
        raise ValueError(f'{len(images)} images but {len(outputs)} output '
                         'paths')
    records = []
    for path, out_path in zip(images, outputs):
        data = _test_data(cfg, path)
        captured: List = []
        backbone = models['ailurus'].backbone
        hook = backbone.register_forward_hook(
            lambda module, args, out: captured.append(out))
        try:
            with torch.no_grad():
                preds = {
                    name: model.test_step(data)[0].pred_sem_seg.data[0]
                    for name, model in models.items()
                }
        finally:
            hook.remove()
        # The packed image: resized, BGR (as OpenCV draws), [H, W, 3].
        shown = data['inputs'][0].permute(1, 2, 0).numpy().copy()
        height, width = shown.shape[:2]
        overlay = shown.copy()
        resolution = np.zeros_like(shown)
        patch_tokens = kept = 0
        windows = _windows(models['ailurus'], height, width)
        for (y1, y2, x1, x2), outputs in zip(windows, captured):
            hw_shape = outputs.hw_shape
            tokens = hw_shape[0] * hw_shape[1]
            if outputs.assignment is None:
                index = np.arange(tokens)
                sizes = np.ones(tokens)
                anchors = index
            else:
                index = outputs.assignment.index[0].cpu().numpy()
                sizes = outputs.assignment.sizes[0].cpu().numpy()
                anchors = outputs.assignment.anchors[0].cpu().numpy()
                anchors = anchors[sizes > 0]
                sizes = np.maximum(sizes, 1)
            window_overlay, window_resolution = cluster_panels(
                shown[y1:y2, x1:x2], index, sizes, anchors, hw_shape)
            overlay[y1:y2, x1:x2] = window_overlay
            resolution[y1:y2, x1:x2] = window_resolution
            patch_tokens += tokens
            kept += len(anchors)
        # Predictions at the original size; shown at the resized one.
        pred_panels = {
            name: cv2.resize(palette[pred.cpu().numpy() % len(palette)],
                             (width, height),
                             interpolation=cv2.INTER_NEAREST)
            for name, pred in preds.items()
        }
        agreement = float(
            (preds['vanilla'] == preds['ailurus']).float().mean())
        where = f' in {len(windows)} windows' if len(windows) > 1 else ''
        top = np.concatenate([
            _caption(overlay, f'clusters: {patch_tokens} -> {kept} '
                     f'tokens{where}'),
            _caption(resolution, 'patches per cluster (log)')
        ], axis=1)
        bottom = np.concatenate([
            _caption(pred_panels['vanilla'], 'vanilla'),
            _caption(pred_panels['ailurus'],
                     f'AiluRus ({100 * agreement:.1f}% agree)')
        ], axis=1)
        if not cv2.imwrite(out_path, np.concatenate([top, bottom], axis=0)):
            raise OSError(f'could not write {out_path} (OpenCV returned '
                          'False: a full disk, a missing folder or an '
                          'unwritable one)')
        records.append(
            dict(path=out_path, panel_shape=(height, width),
                 windows=len(windows), patch_tokens=patch_tokens,
                 kept_tokens=kept, pixel_agreement=agreement))
    return records
