"""Small synthetic images and datasets in the real directory layouts.

No dataset can be downloaded where ailurus_mm is developed and tested, so the
tests, the demo and the tools' examples generate scenes of coloured shapes
with their label maps, and write them where mmseg's dataset classes expect
them.
"""
import os
import os.path as osp
from typing import Tuple

import numpy as np


def synthetic_scene(height: int,
                    width: int,
                    num_classes: int,
                    seed: int,
                    num_shapes: int = 6) -> Tuple[np.ndarray, np.ndarray]:
    """A scene of rectangles and ellipses over a background.

    Each class has its own colour and texture, so a model can learn it.

    Args:
        height: Image height in pixels.
        width: Image width in pixels.
        num_classes: Labels are drawn from ``[0, num_classes)``.
        seed: Random seed (same seed, same scene).
        num_shapes: Shapes drawn over the background.

    Returns:
        ``(image, label)``: a ``[H, W, 3]`` uint8 BGR image and a ``[H, W]``
        uint8 label map.
    """
    rng = np.random.default_rng(seed)
    palette = np.random.default_rng(1234).integers(
        30, 226, size=(num_classes, 3))
    label = np.full((height, width), rng.integers(num_classes), np.uint8)
    rows, cols = np.mgrid[0:height, 0:width]
    for _ in range(num_shapes):
        cls = rng.integers(num_classes)
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        ry = rng.uniform(0.1, 0.35) * height
        rx = rng.uniform(0.1, 0.35) * width
        if rng.random() < 0.5:
            mask = (np.abs(rows - cy) < ry) & (np.abs(cols - cx) < rx)
        else:
            mask = ((rows - cy) / ry)**2 + ((cols - cx) / rx)**2 < 1
        label[mask] = cls
    image = palette[label].astype(np.float32)
    stripes = np.sin((rows + cols * (label % 3)) * 0.5 * (1 + label % 4))
    image += 12 * stripes[..., None] + rng.normal(0, 6, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), label


def _write_pair(image_path: str, label_path: str, image: np.ndarray,
                label: np.ndarray) -> None:
    import cv2
    os.makedirs(osp.dirname(image_path), exist_ok=True)
    os.makedirs(osp.dirname(label_path), exist_ok=True)
    cv2.imwrite(image_path, image)
    cv2.imwrite(label_path, label)


def make_ade20k(root: str,
                num_train: int = 4,
                num_val: int = 2,
                size: Tuple[int, int] = (96, 128),
                num_classes: int = 6) -> str:
    """ADE20K layout: ``images/{training,validation}/*.jpg`` and
    ``annotations/{training,validation}/*.png`` with 0 = "other" (ignored by
    ``reduce_zero_label``) and classes from 1.

    Returns:
        ``root``.
    """
    for split, count, offset in (('training', num_train, 0),
                                 ('validation', num_val, 1000)):
        for i in range(count):
            image, label = synthetic_scene(*size, num_classes, seed=offset + i)
            name = f'ADE_{"train" if split == "training" else "val"}_' \
                f'{i + 1:08d}'
            _write_pair(
                osp.join(root, 'images', split, name + '.jpg'),
                osp.join(root, 'annotations', split, name + '.png'), image,
                label)
    return root


def make_cityscapes(root: str,
                    num_train: int = 4,
                    num_val: int = 2,
                    size: Tuple[int, int] = (64, 128),
                    num_classes: int = 19) -> str:
    """Cityscapes layout as mmseg reads it after its
    ``tools/dataset_converters/cityscapes.py``:
    ``leftImg8bit/{train,val}/<city>/<name>_leftImg8bit.png`` and
    ``gtFine/{train,val}/<city>/<name>_gtFine_labelTrainIds.png``.

    Labels are train ids in ``[0, num_classes)``; the bottom rows (the "ego
    vehicle" of the real images) are 255, which mmseg ignores. There is no
    ``reduce_zero_label``. Images alternate between two cities per split, as
    the real data is spread over city folders.

    Returns:
        ``root``.
    """
    cities = {'train': ('aachen', 'bochum'), 'val': ('frankfurt', 'lindau')}
    for split, count, offset in (('train', num_train, 2000),
                                 ('val', num_val, 3000)):
        for i in range(count):
            image, label = synthetic_scene(*size, num_classes, seed=offset + i)
            label[-max(1, size[0] // 8):] = 255
            city = cities[split][i % 2]
            name = f'{city}_{i:06d}_000019'
            _write_pair(
                osp.join(root, 'leftImg8bit', split, city,
                         name + '_leftImg8bit.png'),
                osp.join(root, 'gtFine', split, city,
                         name + '_gtFine_labelTrainIds.png'), image, label)
    return root


def make_pascal_context(root: str,
                        num_train: int = 4,
                        num_val: int = 2,
                        num_unlisted: int = 1,
                        size: Tuple[int, int] = (96, 128),
                        num_classes: int = 8) -> str:
    """Pascal Context layout (``VOCdevkit/VOC2010`` as mmseg's converter
    leaves it): ``JPEGImages/<name>.jpg``, ``SegmentationClassContext/
    <name>.png`` and the split files ``ImageSets/SegmentationContext/
    {train,val}.txt`` (one name per line, no suffix).

    Labels are in ``[0, num_classes)`` with 0 = background: the 60-class
    setting (``PascalContextDataset``) keeps it as a class, the 59-class one
    (``PascalContextDataset59``, ``reduce_zero_label=True``) ignores it.
    ``num_unlisted`` more images (with labels) are in ``JPEGImages`` but in
    no split, as VOC2010 holds more images than Pascal Context annotates:
    only the split files decide what is loaded.

    Returns:
        ``root``.
    """
    splits = {'train': [], 'val': [], None: []}
    for split, count, offset in (('train', num_train, 4000),
                                 ('val', num_val, 5000),
                                 (None, num_unlisted, 6000)):
        for i in range(count):
            image, label = synthetic_scene(*size, num_classes, seed=offset + i)
            name = f'{2008 + offset // 1000 - 4}_{i:06d}'
            _write_pair(
                osp.join(root, 'JPEGImages', name + '.jpg'),
                osp.join(root, 'SegmentationClassContext', name + '.png'),
                image, label)
            splits[split].append(name)
    split_dir = osp.join(root, 'ImageSets', 'SegmentationContext')
    os.makedirs(split_dir, exist_ok=True)
    for split in ('train', 'val'):
        with open(osp.join(split_dir, split + '.txt'), 'w') as f:
            f.write(''.join(name + '\n' for name in splits[split]))
    return root


def make_camvid(root: str,
                num_train: int = 4,
                num_val: int = 2,
                size: Tuple[int, int] = (48, 64)) -> str:
    """CamVid layout as :class:`~ailurus_mm.datasets.CamVidDataset` reads
    it: ``images/{train,val}/*.jpg`` and ``annotations/{train,val}/*.png``
    with the 11 classes as 0-10 and void as 255 (a band on the left edge,
    as CamVid's unlabelled image borders). File names follow CamVid's
    sequences (``0001TP_006690``).

    Returns:
        ``root``.
    """
    for split, count, offset in (('train', num_train, 4000),
                                 ('val', num_val, 5000)):
        for i in range(count):
            image, label = synthetic_scene(*size, 11, seed=offset + i)
            label[:, :max(1, size[1] // 16)] = 255
            name = f'{("0001TP", "0016E5")[i % 2]}_{offset + 30 * i:06d}'
            _write_pair(
                osp.join(root, 'images', split, name + '.jpg'),
                osp.join(root, 'annotations', split, name + '.png'), image,
                label)
    return root


def make_stanford_bg(root: str,
                     num_train: int = 4,
                     num_val: int = 2,
                     size: Tuple[int, int] = (48, 64)) -> str:
    """Stanford Background's layout as
    :class:`~ailurus_mm.datasets.StanfordBackgroundDataset` reads it:
    ``images/{train,val}/*.jpg`` and ``annotations/{train,val}/*.png`` with
    the 8 classes as 0-7 and unknown as 255 (a patch in a corner). Every
    third image is portrait (``size`` transposed), as a few of the real
    ones are; names are 7 digits, as theirs.

    Returns:
        ``root``.
    """
    for split, count, offset in (('train', num_train, 6000),
                                 ('val', num_val, 7000)):
        for i in range(count):
            shape = size[::-1] if i % 3 == 2 else size
            image, label = synthetic_scene(*shape, 8, seed=offset + i)
            label[:4, :4] = 255
            name = f'{offset + 7 * i:07d}'
            _write_pair(
                osp.join(root, 'images', split, name + '.jpg'),
                osp.join(root, 'annotations', split, name + '.png'), image,
                label)
    return root
