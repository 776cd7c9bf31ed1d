"""Synthetic COCO instance scenes for the detection accuracy benchmark.

The scenes are the segmentation proxy's
(:mod:`ailurus_mm.benchmarks.common.scenes`):
textured Voronoi "stuff" (background, not annotated), occluding objects,
unlabelled clutter, illumination gradients, pixel noise and JPEG artefacts,
drawn in normalised coordinates so that a scene renders at any resolution.
What a detector finds hard is made frequent:

- objects from one patch (16 px boxes at 320x320) up to a third of the
  image, the one on top occluding the others;
- crowds: 3-8 overlapping instances of one class (``car``, ``person`` or
  ``plant``), told apart by shade and texture phase only;
- thin objects: near-vertical poles 2-6 px wide at 320x320;
- ``car`` and ``person`` share a colour and differ only in texture
  (horizontal vs vertical stripes).

Every instance is what stays visible of its object after the later layers
are painted (clutter occludes but is not annotated); instances with fewer
than ``MIN_AREA`` visible pixels at the base size are dropped. Masks are
compressed COCO RLE (``iscrowd`` 0): exact for poles one or two pixels
wide, where outline polygons through the boundary pixels' centres would
rasterise to almost nothing. Boxes are those of the visible masks and
``area`` their pixel counts.

:func:`make_detection_proxy` writes mmdet's COCO layout: ``train2017/``
and ``val2017/`` at ``size``, ``val2017_2x/`` holding the same validation
scenes at ``2 * size`` with the same instances (and annotation ids), and
``annotations/instances_<split>.json``.
"""
import json
import os
import os.path as osp
from concurrent.futures import ProcessPoolExecutor
from typing import Dict, List, NamedTuple, Optional, Sequence, Set, Tuple, \
    Union

import numpy as np

from ..common.scenes import (OBJECTS, SHAPES, THIN, SceneCanvas, Shape,
                             class_shape, paint_stuff, random_object)

# The annotated classes (COCO category ids 1..7, in this order).
DET_CLASSES: Tuple[str, ...] = OBJECTS + THIN
CROWD_CLASSES = ('car', 'person', 'plant')
# Instances with fewer visible pixels at the base size are not annotated.
MIN_AREA = 8
# Annotation ids are image_id * ID_STRIDE + painting-order index + 1.
ID_STRIDE = 1000

TRAIN_SPLIT = 'train2017'
VAL_SPLIT = 'val2017'
VAL_2X_SPLIT = 'val2017_2x'


class Pole(NamedTuple):
    """A thin segment from ``start`` to ``end`` (``(x, y)`` normalised),
    ``half_width`` of the image side."""
    start: Tuple[float, float]
    end: Tuple[float, float]
    half_width: float


Layer = Union[Shape, Pole]


class Instance(NamedTuple):
    """An annotated object of a rendered scene.

    Attributes:
        index: Its layer's position in the painting order (the same at
            every resolution).
        label: 0-based index into :data:`DET_CLASSES`.
        mask: ``[H, W]`` bool, the visible part.
    """
    index: int
    label: int
    mask: np.ndarray


class CocoSplit(NamedTuple):
    """Where a split is, relative to the dataset root (mmdet's
    ``data_prefix=dict(img=img_prefix)`` and ``ann_file``)."""
    img_prefix: str
    ann_file: str


def _crowd(rng: np.random.Generator) -> List[Shape]:
    """3-8 overlapping objects of one of :data:`CROWD_CLASSES`: radii
    within 25% of a common one (1/30 to 1/10 of the side; plants 1/40 to
    1/20), centres scattered about 1.2 radii around the crowd's."""
    name = CROWD_CLASSES[int(rng.integers(len(CROWD_CLASSES)))]
    count = int(rng.integers(3, 9))
    if name == 'plant':
        radius = rng.uniform(0.025, 0.05)
    else:
        radius = float(np.exp(rng.uniform(np.log(0.03), np.log(0.1))))
    centre = rng.uniform(0.15, 0.85, 2)
    members = []
    for _ in range(count):
        kind = SHAPES[int(rng.integers(len(SHAPES)))]
        cx, cy = centre + rng.normal(0, 1.2 * radius, 2)
        members.append(class_shape(
            rng, name, kind, (float(cx), float(cy)),
            radius * float(np.exp(rng.uniform(-0.25, 0.25))),
            float(np.exp(rng.uniform(-0.6, 0.6))), rng.uniform(0, np.pi)))
    return members


def _pole(rng: np.random.Generator) -> Pole:
    """A near-vertical pole (within 0.2 rad), 0.2-0.7 of the side long,
    1/160 to 1/50 of the side wide."""
    x, top = rng.uniform(0.03, 0.97), rng.uniform(0.0, 0.6)
    length, tilt = rng.uniform(0.2, 0.7), rng.uniform(-0.2, 0.2)
    end = (x + length * np.sin(tilt), top + length * np.cos(tilt))
    return Pole((x, top), end, rng.uniform(1 / 320, 1 / 100))


def scene_layers(rng: np.random.Generator) -> List[Layer]:
    """The layers of a detection scene in painting order: 3-10 objects of
    the segmentation scenes (a fifth of them clutter), 0-2 crowds and 0-3
    poles, in random order (a crowd's members stay together)."""
    groups: List[List[Layer]] = [
        [random_object(rng)] for _ in range(int(rng.integers(3, 11)))]
    groups += [_crowd(rng) for _ in range(int(rng.integers(0, 3)))]
    groups += [[_pole(rng)] for _ in range(int(rng.integers(0, 4)))]
    return [layer for i in rng.permutation(len(groups))
            for layer in groups[i]]


def render_instances(seed: int,
                     height: int,
                     width: int,
                     min_area: int = MIN_AREA,
                     keep: Optional[Set[int]] = None
                     ) -> Tuple[np.ndarray, List[Instance]]:
    """Render detection scene ``seed`` at ``height x width``.

    The scene depends only on ``seed`` (pixel noise aside); the resolution
    changes how finely it is sampled.

    Args:
        seed: The scene.
        height: Render height in pixels.
        width: Render width in pixels.
        min_area: Instances with fewer visible pixels are dropped.
        keep: If given, the painting-order indices to annotate instead
            (e.g. those kept at another resolution, so that both renders
            hold the same instances); ``min_area`` is then ignored, but an
            instance with no visible pixel is still dropped.

    Returns:
        ``(image, instances)``: the ``[H, W, 3]`` uint8 BGR image (before
        JPEG coding) and the annotated instances in painting order.
    """
    rng = np.random.default_rng(seed)
    canvas = SceneCanvas(rng, height, width)
    paint_stuff(canvas)
    layers = scene_layers(rng)
    owner = np.full((height, width), -1, np.int16)  # the layer on top
    for index, layer in enumerate(layers):
        if isinstance(layer, Pole):
            mask = canvas.paint_pole(*layer)
        else:
            mask = canvas.paint_shape(layer)
        owner[mask] = index
    image = canvas.finish()
    instances = []
    for index, layer in enumerate(layers):
        name = 'pole' if isinstance(layer, Pole) else layer.name
        if name is None:  # clutter
            continue
        mask = owner == index
        area = int(mask.sum())
        wanted = area >= min_area if keep is None else index in keep
        if wanted and area > 0:
            instances.append(Instance(index, DET_CLASSES.index(name), mask))
    return image, instances


def coco_annotation(instance: Instance, image_id: int) -> Dict:
    """The COCO annotation of ``instance``: compressed RLE ``segmentation``,
    ``bbox`` ``[x, y, w, h]`` of the mask (pixel edges), ``area`` its pixel
    count, ``category_id`` the label + 1, ``iscrowd`` 0, and ``id``
    ``image_id * ID_STRIDE + index + 1``."""
    from pycocotools import mask as mask_utils

    mask = instance.mask
    rle = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))
    ys, xs = np.nonzero(mask)
    x0, y0 = int(xs.min()), int(ys.min())
    return dict(
        id=image_id * ID_STRIDE + instance.index + 1,
        image_id=image_id,
        category_id=instance.label + 1,
        segmentation=dict(size=[int(s) for s in rle['size']],
                          counts=rle['counts'].decode('ascii')),
        area=float(mask.sum()),
        bbox=[float(x0), float(y0), float(xs.max() + 1 - x0),
              float(ys.max() + 1 - y0)],
        iscrowd=0)


def _jpeg_quality(seed: int) -> int:
    """The scene's JPEG quality, in [35, 90] (as the segmentation proxy)."""
    return int(np.random.default_rng(seed).integers(35, 91))


# (scene seed, image id, [(size, image path)])
_Job = Tuple[int, int, List[Tuple[int, str]]]


def _render_job(job: _Job) -> List[Tuple[Dict, List[Dict]]]:
    """Render one scene at each size (the first decides which instances
    are annotated), write the JPEGs; returns the COCO image entry and
    annotations per size."""
    import cv2

    seed, image_id, outputs = job
    keep = None
    results = []
    for size, path in outputs:
        image, instances = render_instances(seed, size, size, keep=keep)
        if keep is None:
            keep = {instance.index for instance in instances}
        os.makedirs(osp.dirname(path), exist_ok=True)
        cv2.imwrite(path, image,
                    [int(cv2.IMWRITE_JPEG_QUALITY), _jpeg_quality(seed)])
        entry = dict(id=image_id, file_name=osp.basename(path),
                     height=size, width=size)
        results.append(
            (entry, [coco_annotation(i, image_id) for i in instances]))
    return results


def _split_info(split: str, count: int, size: int, seed: int) -> Dict:
    return dict(description='ailurus_mm detection proxy', version=1,
                split=split, num_images=count, size=size, seed=seed,
                min_area=MIN_AREA)


def _is_complete(root: str, split: CocoSplit, info: Dict) -> bool:
    """Whether ``split`` was written with ``info`` and all its images are
    there."""
    path = osp.join(root, split.ann_file)
    if not osp.isfile(path):
        return False
    with open(path) as f:
        data = json.load(f)
    return data.get('info') == info and all(
        osp.isfile(osp.join(root, split.img_prefix, image['file_name']))
        for image in data['images'])


def _write_json(path: str, info: Dict, images: List[Dict],
                annotations: List[Dict],
                classes: Sequence[str] = DET_CLASSES) -> None:
    categories = [dict(id=i + 1, name=name, supercategory='thing')
                  for i, name in enumerate(classes)]
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path + '.tmp', 'w') as f:
        json.dump(dict(info=info, images=images, annotations=annotations,
                       categories=categories), f)
    os.replace(path + '.tmp', path)  # a complete file or none


def coco_split(name: str) -> CocoSplit:
    """The image folder and annotation file of split ``name``."""
    return CocoSplit(f'{name}/', f'annotations/instances_{name}.json')


def make_detection_proxy(root: str,
                         num_train: int = 2000,
                         num_val: int = 100,
                         size: int = 320,
                         seed: int = 0,
                         workers: Optional[int] = None
                         ) -> Dict[str, CocoSplit]:
    """Write the detection proxy dataset in mmdet's COCO layout.

    ``train2017/`` (``num_train`` scenes at ``size x size``), ``val2017/``
    (``num_val`` other scenes at ``size``) and ``val2017_2x/`` (the same
    validation scenes and instances at ``2 * size``), JPEG-coded at a
    per-scene quality in ``[35, 90]``, with
    ``annotations/instances_<split>.json``. Everything is a function of the
    arguments (not of ``workers``). A split whose annotation file was
    written with the same arguments and whose images all exist is kept, so
    a second call costs nothing; any other split is written again.

    Args:
        root: The dataset root (mmdet's ``data_root``).
        num_train: Training scenes.
        num_val: Validation scenes.
        size: Side of the training and ``val2017`` images.
        seed: Dataset seed: scene ``i`` of the training split is
            ``seed * 1_000_003 + i``, of the validation splits
            ``seed * 1_000_003 + 500_000 + i``.
        workers: Processes rendering in parallel (default: the CPU count,
            at most 4).

    Returns:
        ``{split name: CocoSplit}`` for the three splits, relative to
        ``root``.
    """
    splits = {name: coco_split(name)
              for name in (TRAIN_SPLIT, VAL_SPLIT, VAL_2X_SPLIT)}
    infos = {
        TRAIN_SPLIT: _split_info(TRAIN_SPLIT, num_train, size, seed),
        VAL_SPLIT: _split_info(VAL_SPLIT, num_val, size, seed),
        VAL_2X_SPLIT: _split_info(VAL_2X_SPLIT, num_val, 2 * size, seed),
    }
    todo = [name for name in splits
            if not _is_complete(root, splits[name], infos[name])]
    if not todo:
        return splits
    # Training scenes alone; validation scenes at both sizes together (the
    # 1x render decides the instances of both).
    groups = []
    if TRAIN_SPLIT in todo:
        groups.append(((TRAIN_SPLIT, ), num_train, seed * 1_000_003,
                       (size, )))
    if VAL_SPLIT in todo or VAL_2X_SPLIT in todo:
        groups.append(((VAL_SPLIT, VAL_2X_SPLIT), num_val,
                       seed * 1_000_003 + 500_000, (size, 2 * size)))
    for names, count, offset, sizes in groups:
        jobs = [(offset + i, i + 1,
                 [(s, osp.join(root, splits[n].img_prefix,
                               f'{i + 1:012d}.jpg'))
                  for n, s in zip(names, sizes)])
                for i in range(count)]
        results = _map(_render_job, jobs, workers)
        for k, name in enumerate(names):
            images = [scene[k][0] for scene in results]
            annotations = [a for scene in results for a in scene[k][1]]
            _write_json(osp.join(root, splits[name].ann_file), infos[name],
                        images, annotations)
    return splits


def _map(function, jobs: List, workers: Optional[int]) -> List:
    """``[function(job) for job in jobs]``, in ``workers`` processes."""
    workers = workers or min(4, os.cpu_count() or 1)
    if workers > 1 and len(jobs) > 8:
        with ProcessPoolExecutor(workers) as pool:
            return list(pool.map(function, jobs, chunksize=16))
    return [function(job) for job in jobs]
