"""Check a dataset tree in mmseg's layout before any long pass over it.

``images/<split>/<name><img_suffix>`` and
``annotations/<split>/<name><seg_map_suffix>``, one uint8 class index per
pixel, void stored as 255. Every file is read once (seconds for CamVid or
Stanford Background), and every problem is named with its file and what
was expected: label values outside the classes (void stored as 11, as in
SegNet's raw CamVid PNGs, silently costs mIoU otherwise), RGB labels, label
and image sizes that differ, images without labels and labels without
images, empty splits, unexpected suffixes, empty or corrupt files.

    python -m ailurus_mm.datasets.check ../shared/camvid --dataset camvid

The accuracy benchmark runs it on ``--data-root`` before training or
evaluating anything; users of :class:`CamVidDataset` or
:class:`StanfordBackgroundDataset` run it once on their copy.
"""
import argparse
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np

from .camvid import CamVidDataset
from .stanford_bg import StanfordBackgroundDataset

IGNORE_INDEX = 255
# How many problems an error lists (the count says how many there are).
SHOWN = 10


class DatasetTreeError(ValueError):
    """The tree is not what the dataset class reads; the message lists
    every problem (the first :data:`SHOWN` of each kind)."""


def _listing(problems: List[str]) -> str:
    more = len(problems) - SHOWN
    return '\n  '.join(problems[:SHOWN] + (
        [f'... and {more} more'] if more > 0 else []))


def check_split(data_root: str, split: str, num_classes: int,
                img_suffix: str = '.jpg', seg_map_suffix: str = '.png',
                min_images: int = 1) -> List[str]:
    """The problems of one split (empty if none).

    Args:
        data_root: The tree's root.
        split: The folder under ``images/`` and ``annotations/``.
        num_classes: Label values must be in ``[0, num_classes)`` or 255.
        img_suffix: The images' suffix (exactly; ``.JPG`` is another).
        seg_map_suffix: The labels' suffix.
        min_images: The fewest image/label pairs the split must hold.
    """
    image_dir = osp.join(data_root, 'images', split)
    label_dir = osp.join(data_root, 'annotations', split)
    problems = [f'{d}: missing folder' for d in (image_dir, label_dir)
                if not osp.isdir(d)]
    if problems:
        return problems
    images = sorted(os.listdir(image_dir))
    labels = sorted(os.listdir(label_dir))
    problems += [f'{osp.join(image_dir, n)}: unexpected suffix (images end '
                 f'with {img_suffix!r})' for n in images
                 if not n.endswith(img_suffix)]
    problems += [f'{osp.join(label_dir, n)}: unexpected suffix (labels end '
                 f'with {seg_map_suffix!r})' for n in labels
                 if not n.endswith(seg_map_suffix)]
    image_names = {n[:-len(img_suffix)] for n in images
                   if n.endswith(img_suffix)}
    label_names = {n[:-len(seg_map_suffix)] for n in labels
                   if n.endswith(seg_map_suffix)}
    problems += [f'{osp.join(image_dir, n + img_suffix)}: no label '
                 f'{osp.join(label_dir, n + seg_map_suffix)}'
                 for n in sorted(image_names - label_names)]
    problems += [f'{osp.join(label_dir, n + seg_map_suffix)}: no image '
                 f'{osp.join(image_dir, n + img_suffix)}'
                 for n in sorted(label_names - image_names)]
    pairs = sorted(image_names & label_names)
    if len(pairs) < min_images:
        problems.append(f'{image_dir}: {len(pairs)} image/label pairs, at '
                        f'least {min_images} needed')
    allowed = np.zeros(256, dtype=bool)
    allowed[:num_classes] = True
    allowed[IGNORE_INDEX] = True
    for name in pairs:
        image_path = osp.join(image_dir, name + img_suffix)
        label_path = osp.join(label_dir, name + seg_map_suffix)
        image = _read(image_path, cv2.IMREAD_COLOR, problems)
        label = _read(label_path, cv2.IMREAD_UNCHANGED, problems)
        if label is None:
            continue
        if label.ndim != 2:
            problems.append(
                f'{label_path}: {label.shape[2]} channels, expected one '
                'class index per pixel (a colour-coded label must be '
                'converted to indices first)')
            continue
        if label.dtype != np.uint8:
            problems.append(f'{label_path}: {label.dtype} values, expected '
                            'uint8 class indices')
            continue
        if image is not None and image.shape[:2] != label.shape:
            problems.append(
                f'{label_path}: {label.shape[1]}x{label.shape[0]}, its '
                f'image {image.shape[1]}x{image.shape[0]}')
        values = np.unique(label)
        bad = values[~allowed[values]]
        if bad.size:
            problems.append(
                f'{label_path}: label values {bad.tolist()} outside the '
                f'{num_classes} classes (0-{num_classes - 1}) and void '
                f'({IGNORE_INDEX})')
    return problems


def _read(path: str, flags: int, problems: List[str]) -> Optional[
        np.ndarray]:
    if osp.getsize(path) == 0:
        problems.append(f'{path}: empty (0 bytes)')
        return None
    data = cv2.imread(path, flags)
    if data is None:
        problems.append(f'{path}: corrupt or not an image OpenCV can '
                        'decode')
    return data


def check_tree(data_root: str, splits: Sequence[str], num_classes: int,
               img_suffix: str = '.jpg', seg_map_suffix: str = '.png',
               min_images: Optional[Dict[str, int]] = None) -> None:
    """Check every split of a tree (:func:`check_split`).

    Raises:
        DatasetTreeError: Listing every problem found, by kind of file.
    """
    problems: List[str] = []
    for split in dict.fromkeys(splits):
        problems += check_split(data_root, split, num_classes, img_suffix,
                                seg_map_suffix,
                                (min_images or {}).get(split, 1))
    if problems:
        raise DatasetTreeError(
            f'{data_root} is not a dataset tree the dataset class can read '
            f'({len(problems)} problems):\n  ' + _listing(problems))


def dataset_classes() -> Dict[str, int]:
    """``{--dataset name: number of classes}`` of the datasets
    ailurus_mm ships."""
    return {'camvid': len(CamVidDataset.METAINFO['classes']),
            'stanford_bg': len(StanfordBackgroundDataset.METAINFO['classes'])}


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(
        description='Check a dataset tree in mmseg\'s layout (every image '
        'and label) before training or evaluating on it')
    parser.add_argument('data_root')
    parser.add_argument('--dataset', choices=tuple(dataset_classes()),
                        required=True)
    parser.add_argument('--splits', nargs='+', default=['train', 'val'])
    args = parser.parse_args(argv)
    try:
        check_tree(args.data_root, args.splits,
                   dataset_classes()[args.dataset])
    except DatasetTreeError as error:
        parser.exit(1, f'{error}\n')
    print(f'{args.data_root}: every image and label of '
          f'{", ".join(args.splits)} is readable and consistent')


if __name__ == '__main__':
    main()
