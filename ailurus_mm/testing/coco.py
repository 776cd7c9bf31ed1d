"""Small synthetic COCO-format instance datasets (no downloads needed).

The images are textured shapes over a textured background; every shape is
one instance with a polygon, the mask rasterised from that polygon and its
box, written in the COCO layout mmdet's ``CocoDataset`` and ``CocoMetric``
read (``annotations/instances_{train,val}2017.json``, ``train2017/``,
``val2017/``).
"""
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np


def _polygon(rng: np.random.Generator, height: int,
             width: int) -> np.ndarray:
    """A rectangle or an ellipse inside the image, ``[P, 2]`` (x, y)."""
    cy, cx = rng.uniform(0.2, 0.8) * height, rng.uniform(0.2, 0.8) * width
    ry = rng.uniform(0.08, 0.25) * height
    rx = rng.uniform(0.08, 0.25) * width
    if rng.random() < 0.5:
        points = [(cx - rx, cy - ry), (cx + rx, cy - ry), (cx + rx, cy + ry),
                  (cx - rx, cy + ry)]
    else:
        angles = np.linspace(0, 2 * np.pi, 16, endpoint=False)
        points = np.stack([cx + rx * np.cos(angles),
                           cy + ry * np.sin(angles)], axis=1)
    points = np.asarray(points, dtype=np.float64)
    points[:, 0] = points[:, 0].clip(0, width - 1)
    points[:, 1] = points[:, 1].clip(0, height - 1)
    return points


def synthetic_instances(height: int,
                        width: int,
                        num_classes: int,
                        seed: int,
                        num_objects: int = 3) -> Tuple[np.ndarray, List[Dict]]:
    """An image of ``num_objects`` shapes, each an instance.

    Later shapes are drawn over earlier ones; every instance's mask is what
    stays visible of it (an instance hidden entirely is dropped), and its
    polygons outline that mask, as COCO's do.

    Args:
        height: Image height in pixels.
        width: Image width in pixels.
        num_classes: Labels are drawn from ``[0, num_classes)``; each class
            has its own colour and texture.
        seed: Random seed (same seed, same image).
        num_objects: Shapes drawn.

    Returns:
        ``(image, instances)``: a ``[H, W, 3]`` uint8 BGR image and a list
        of dicts with ``label`` (int), ``mask`` (``[H, W]`` bool),
        ``polygons`` (a list of ``[P, 2]`` float x, y outlines, P >= 3) and
        ``bbox`` (x1, y1, x2, y2 of the mask, pixel edges).
    """
    import cv2

    rng = np.random.default_rng(seed)
    palette = np.random.default_rng(4321).integers(
        30, 226, size=(num_classes + 1, 3))
    owner = np.full((height, width), -1, np.int64)  # which shape is on top
    shapes = []
    for index in range(num_objects):
        polygon = _polygon(rng, height, width)
        filled = np.zeros((height, width), np.uint8)
        cv2.fillPoly(filled, [np.round(polygon).astype(np.int32)], 1)
        owner[filled > 0] = index
        shapes.append((int(rng.integers(num_classes)), polygon))

    rows, cols = np.mgrid[0:height, 0:width]
    colour_index = np.full((height, width), num_classes)  # background
    instances = []
    for index, (label, polygon) in enumerate(shapes):
        visible = (owner == index).astype(np.uint8)
        contours, _ = cv2.findContours(visible, cv2.RETR_EXTERNAL,
                                       cv2.CHAIN_APPROX_SIMPLE)
        polygons = [c.reshape(-1, 2).astype(np.float64) for c in contours
                    if len(c) >= 3]
        if not polygons:
            continue
        # The mask is the polygons rasterised, as mmdet decodes them.
        mask = np.zeros((height, width), np.uint8)
        cv2.fillPoly(mask, [p.astype(np.int32) for p in polygons], 1)
        mask = mask > 0
        colour_index[mask] = label
        ys, xs = np.nonzero(mask)
        instances.append(
            dict(label=label, mask=mask, polygons=polygons,
                 bbox=(float(xs.min()), float(ys.min()),
                       float(xs.max() + 1), float(ys.max() + 1))))
    image = palette[colour_index].astype(np.float32)
    stripes = np.sin((rows + cols * (colour_index % 3)) * 0.5 *
                     (1 + colour_index % 4))
    image += 12 * stripes[..., None] + rng.normal(0, 6, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), instances


def _coco_classes() -> Sequence[str]:
    from mmdet.datasets import CocoDataset
    return CocoDataset.METAINFO['classes']


def make_coco(root: str,
              num_train: int = 4,
              num_val: int = 2,
              size: Tuple[int, int] = (128, 128),
              num_classes: int = 3,
              num_objects: int = 3,
              classes: Optional[Sequence[str]] = None) -> str:
    """COCO instance-segmentation layout under ``root``.

    ``annotations/instances_{train,val}2017.json`` list every class of
    ``classes`` (default: the 80 COCO classes, so mmdet's ``CocoDataset``
    and ``CocoMetric`` work with their default metainfo and an 80-class
    head), with ids from 1; the instances use the first ``num_classes`` of
    them. Images go to ``train2017/`` and ``val2017/`` as JPEG.

    Returns:
        ``root``.
    """
    import cv2

    classes = list(classes) if classes is not None else list(_coco_classes())
    if not 1 <= num_classes <= len(classes):
        raise ValueError(f'num_classes must be in [1, {len(classes)}], got '
                         f'{num_classes}')
    categories = [dict(id=i + 1, name=name, supercategory='thing')
                  for i, name in enumerate(classes)]
    height, width = size
    annotation_id = 1
    for split, count, offset in (('train2017', num_train, 0),
                                 ('val2017', num_val, 1000)):
        os.makedirs(osp.join(root, split), exist_ok=True)
        images, annotations = [], []
        for i in range(count):
            image_id = offset + i + 1
            image, instances = synthetic_instances(
                height, width, num_classes, seed=offset + i,
                num_objects=num_objects)
            file_name = f'{image_id:012d}.jpg'
            cv2.imwrite(osp.join(root, split, file_name), image)
            images.append(dict(id=image_id, file_name=file_name,
                               height=height, width=width))
            for instance in instances:
                x1, y1, x2, y2 = instance['bbox']
                annotations.append(dict(
                    id=annotation_id,
                    image_id=image_id,
                    category_id=instance['label'] + 1,
                    segmentation=[[float(v) for v in polygon.reshape(-1)]
                                  for polygon in instance['polygons']],
                    area=float(instance['mask'].sum()),
                    bbox=[x1, y1, x2 - x1, y2 - y1],
                    iscrowd=0))
                annotation_id += 1
        os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
        with open(osp.join(root, 'annotations',
                           f'instances_{split}.json'), 'w') as f:
            json.dump(dict(images=images, annotations=annotations,
                           categories=categories), f)
    return root
