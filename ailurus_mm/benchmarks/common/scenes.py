"""Synthetic street-and-room scenes for the accuracy benchmark.

A scene is drawn in normalised image coordinates and then rendered at any
resolution, so the validation split at twice the training resolution holds
the same scenes with twice as many pixels (and four times as many tokens).
Every scene has what makes token reduction hard on real data:

- textured "stuff" regions (a Voronoi partition of the image);
- objects from about one patch up to a third of the image, occluding one
  another;
- thin structures (poles, a few pixels wide);
- pairs of classes that differ only in texture (``wall``/``floor``,
  ``car``/``person``: same colours, different patterns);
- unlabelled clutter (ADE20K's "other", label 0, ignored with
  ``reduce_zero_label``), illumination gradients, pixel noise and JPEG
  artefacts.

Labels are ADE20K ids (``1 + the 0-based index of the class in mmseg's
ADE20KDataset``), so the dataset is read by mmseg's own ``ADE20KDataset``
with ``metainfo=dict(classes=PROXY_CLASSES)``: mmseg maps the ids to
``0..len(PROXY_CLASSES) - 1`` and everything else to 255.

The painting steps (:class:`SceneCanvas`, :func:`paint_stuff`,
:func:`random_object`, :func:`class_shape`) also draw the detection
benchmark's scenes (:mod:`ailurus_mm.benchmarks.detection.instances`);
:func:`render_scene` itself must not change (the segmentation benchmark's
shipped model was trained on its output; a test pins its hash).
"""
import os
import os.path as osp
from concurrent.futures import ProcessPoolExecutor
from typing import (Callable, Dict, NamedTuple, Optional, Sequence,
                    Tuple)

import numpy as np

# (name, 0-based ADE20K index, base colour BGR, texture). Classes sharing a
# colour differ only in texture.
_CLASSES = (
    ('wall', 0, (150, 170, 190), 'bricks'),
    ('floor', 3, (150, 170, 190), 'checker'),
    ('sky', 2, (220, 170, 120), 'smooth'),
    ('grass', 9, (60, 150, 70), 'noise'),
    ('road', 6, (120, 120, 120), 'diagonal'),
    ('building', 1, (60, 90, 140), 'windows'),
    ('tree', 4, (40, 100, 40), 'dots'),
    ('car', 20, (50, 50, 190), 'hstripes'),
    ('person', 12, (50, 50, 190), 'vstripes'),
    ('door', 14, (140, 80, 60), 'smooth'),
    ('pole', 93, (200, 200, 200), 'smooth'),
    ('plant', 17, (60, 200, 170), 'speckle'),
)
PROXY_CLASSES: Tuple[str, ...] = tuple(c[0] for c in _CLASSES)
STUFF = ('wall', 'floor', 'sky', 'grass', 'road')
OBJECTS = ('building', 'tree', 'car', 'person', 'door', 'plant')
THIN = ('pole', )
_BY_NAME = {c[0]: c for c in _CLASSES}


def ade20k_label(name: str) -> int:
    """The value a proxy class has in an ADE20K annotation file."""
    return _BY_NAME[name][1] + 1


def _texture(kind: str, u: np.ndarray, v: np.ndarray,
             rng: np.random.Generator,
             noise: Callable[[float], np.ndarray]) -> np.ndarray:
    """A pattern in ``[-1, 1]`` over normalised coordinates ``u`` (x) and
    ``v`` (y); periods are fixed in image units, so they scale with the
    resolution."""
    freq = rng.uniform(28, 40)
    phase = rng.uniform(0, 2 * np.pi)
    if kind == 'smooth':
        return 0.3 * np.sin(2 * np.pi * (u * 1.5 + v) + phase)
    if kind == 'noise':
        return noise(24.0)
    if kind == 'speckle':
        return noise(64.0)
    if kind == 'diagonal':
        return np.sign(np.sin(2 * np.pi * freq * (u + v) / 1.4 + phase))
    if kind == 'hstripes':
        return np.sign(np.sin(2 * np.pi * freq * v + phase))
    if kind == 'vstripes':
        return np.sign(np.sin(2 * np.pi * freq * u + phase))
    if kind == 'checker':
        return np.sign(np.sin(np.pi * freq * u + phase) *
                       np.sin(np.pi * freq * v + phase))
    if kind == 'dots':
        return np.where(
            np.sin(2 * np.pi * freq * u + phase) *
            np.sin(2 * np.pi * freq * v) > 0.5, 1.0, -0.4)
    if kind == 'bricks':
        rows = np.floor(v * freq / 2)
        shifted = u * freq / 4 + 0.5 * (rows % 2)
        mortar = (np.abs(v * freq / 2 - rows - 0.5) > 0.42) | \
            (np.abs(shifted - np.floor(shifted) - 0.5) > 0.45)
        return np.where(mortar, -1.0, 0.4)
    if kind == 'windows':
        cell_u = u * freq / 3 - np.floor(u * freq / 3)
        cell_v = v * freq / 3 - np.floor(v * freq / 3)
        return np.where((np.abs(cell_u - 0.5) < 0.25) &
                        (np.abs(cell_v - 0.5) < 0.3), 1.0, -0.3)
    raise ValueError(f'unknown texture {kind!r}')


def _shape_mask(kind: str, u: np.ndarray, v: np.ndarray, cx: float,
                cy: float, rx: float, ry: float,
                angle: float) -> np.ndarray:
    cos, sin = np.cos(angle), np.sin(angle)
    du, dv = u - cx, v - cy
    a = (du * cos + dv * sin) / rx
    b = (-du * sin + dv * cos) / ry
    if kind == 'ellipse':
        return a * a + b * b < 1
    if kind == 'rect':
        return (np.abs(a) < 1) & (np.abs(b) < 1)
    # triangle: apex up
    return (b < 1) & (b > -1) & (np.abs(a) < (1 + b) / 2)


SHAPES = ('ellipse', 'rect', 'triangle')
CLUTTER_TEXTURES = ('smooth', 'noise', 'hstripes', 'dots', 'checker')


class Shape(NamedTuple):
    """One object of a scene, in normalised image coordinates.

    Attributes:
        name: Its class, or ``None`` for unlabelled clutter.
        kind: One of :data:`SHAPES`.
        centre: ``(x, y)`` in ``[0, 1]``.
        radii: Half-extents ``(rx, ry)`` along the shape's own axes.
        angle: Rotation in radians.
        colour: Base colour (BGR).
        texture: A texture name (see ``_texture``).
    """
    name: Optional[str]
    kind: str
    centre: Tuple[float, float]
    radii: Tuple[float, float]
    angle: float
    colour: Tuple[float, ...]
    texture: str


class SceneCanvas:
    """A scene being painted: later layers occlude earlier ones.

    Every random draw comes from ``rng`` in call order, so a scene is a
    function of the seed and of the sequence of calls, not of the
    resolution (pixel noise aside).

    Args:
        rng: The scene's random generator (one value is drawn here: the
            seed of the value noise).
        height: Render height in pixels.
        width: Render width in pixels.

    Attributes:
        u, v: ``[H, W]`` float32 normalised x and y of the pixel centres.
        image: ``[H, W, 3]`` float32 BGR painted so far.
        label: ``[H, W]`` uint8 ADE20K ids painted so far (0 = unlabelled).
    """

    def __init__(self, rng: np.random.Generator, height: int,
                 width: int) -> None:
        self.rng = rng
        self.height, self.width = height, width
        v, u = np.mgrid[0:height, 0:width].astype(np.float32)
        self.u = (u + 0.5) / width
        self.v = (v + 0.5) / height
        self._noise_seed = int(rng.integers(2**31))
        self.image = np.zeros((height, width, 3), np.float32)
        self.label = np.zeros((height, width), np.uint8)

    def noise(self, cells: float) -> np.ndarray:
        """Value noise with ``cells`` cells per image side, ``[H, W]`` in
        ``[-1, 1]``."""
        import cv2

        grid_rng = np.random.default_rng(self._noise_seed + int(cells))
        size = int(cells) + 1
        grid = grid_rng.uniform(-1, 1, (size, size)).astype(np.float32)
        return cv2.resize(grid, (self.width, self.height),
                          interpolation=cv2.INTER_CUBIC).clip(-1, 1)

    def paint(self, mask: np.ndarray, name: Optional[str],
              colour: Sequence[float], texture: str,
              contrast: float) -> None:
        """Paint ``texture`` in ``colour`` over the ``[H, W]`` bool
        ``mask`` and label it ``name`` (``None``: unlabelled)."""
        tex = _texture(texture, self.u, self.v, self.rng, self.noise)
        shade = np.asarray(colour, np.float32) * self.rng.uniform(0.85, 1.15)
        values = shade[None, None] * (1 + contrast * tex[..., None])
        self.image[mask] = values[mask]
        self.label[mask] = 0 if name is None else ade20k_label(name)

    def paint_shape(self, shape: Shape, contrast: float = 0.3) -> np.ndarray:
        """Paint ``shape``; returns its ``[H, W]`` bool mask (before any
        later layer occludes it)."""
        mask = _shape_mask(shape.kind, self.u, self.v, *shape.centre,
                           *shape.radii, shape.angle)
        self.paint(mask, shape.name, shape.colour, shape.texture, contrast)
        return mask

    def paint_pole(self, start: Tuple[float, float], end: Tuple[float, float],
                   half_width: float) -> np.ndarray:
        """Paint a pole (a thin segment from ``start`` to ``end``, ``(x, y)``
        normalised, ``half_width`` of the side); returns its mask."""
        (x0, y0), (x1, y1) = start, end
        u, v = self.u, self.v
        du, dv = x1 - x0, y1 - y0
        length2 = du * du + dv * dv + 1e-9
        t = np.clip(((u - x0) * du + (v - y0) * dv) / length2, 0, 1)
        mask = (u - x0 - t * du)**2 + (v - y0 - t * dv)**2 < half_width**2
        _, _, colour, texture = _BY_NAME['pole']
        self.paint(mask, 'pole', colour, texture, 0.1)
        return mask

    def finish(self) -> np.ndarray:
        """Apply the illumination gradient and pixel noise (two draws from
        ``rng``); returns the ``[H, W, 3]`` uint8 BGR image."""
        rng, u, v = self.rng, self.u, self.v
        gx, gy = rng.uniform(-0.25, 0.25, 2)
        image = self.image.copy()  # float32 throughout, in place
        image *= (1 + gx * (u - 0.5) + gy * (v - 0.5))[..., None]
        image += rng.normal(0, 8, image.shape).astype(np.float32)
        return np.clip(image, 0, 255).astype(np.uint8)


def paint_stuff(canvas: SceneCanvas) -> None:
    """Paint the scene's "stuff": a Voronoi partition into 3-6 regions of
    :data:`STUFF` classes."""
    rng, u, v = canvas.rng, canvas.u, canvas.v
    num_regions = int(rng.integers(3, 7))
    centres = rng.uniform(0, 1, (num_regions, 2))
    dist = (u[None] - centres[:, 0, None, None])**2 + \
        (v[None] - centres[:, 1, None, None])**2
    region = dist.argmin(0)
    for i in range(num_regions):
        name = STUFF[int(rng.integers(len(STUFF)))]
        _, _, colour, texture = _BY_NAME[name]
        canvas.paint(region == i, name, colour, texture, 0.25)


def class_shape(rng: np.random.Generator, name: Optional[str], kind: str,
                centre: Tuple[float, float], radius: float, aspect: float,
                angle: float) -> Shape:
    """The :class:`Shape` of class ``name`` (``None``: clutter, whose
    colour and texture are drawn from ``rng``)."""
    if name is None:
        colour = tuple(rng.uniform(30, 230, 3))
        texture = CLUTTER_TEXTURES[int(rng.integers(len(CLUTTER_TEXTURES)))]
    else:
        _, _, colour, texture = _BY_NAME[name]
    return Shape(name, kind, centre, (radius * aspect, radius / aspect),
                 angle, colour, texture)


def random_object(rng: np.random.Generator,
                  clutter_rate: float = 0.2) -> Shape:
    """An object of the segmentation scenes: a class of :data:`OBJECTS`
    (or clutter, at ``clutter_rate``), radius log-uniform from 1/40 of the
    side (half a patch at 320x320) to 0.33 (a third of the image area;
    plants 0.025-0.06, one or two patches), anywhere, in any orientation."""
    clutter = rng.random() < clutter_rate
    name = None if clutter else OBJECTS[int(rng.integers(len(OBJECTS)))]
    radius = float(np.exp(rng.uniform(np.log(0.025), np.log(0.33))))
    if name == 'plant':
        radius = rng.uniform(0.025, 0.06)
    aspect = float(np.exp(rng.uniform(-0.6, 0.6)))
    kind = SHAPES[int(rng.integers(len(SHAPES)))]
    centre = (rng.uniform(0, 1), rng.uniform(0, 1))
    return class_shape(rng, name, kind, centre, radius, aspect,
                       rng.uniform(0, np.pi))


def render_scene(seed: int, height: int,
                 width: int) -> Tuple[np.ndarray, np.ndarray]:
    """Render scene ``seed`` at ``height x width``.

    The scene (regions, objects, colours, textures, clutter) depends only on
    ``seed``; the resolution changes how finely it is sampled, not what it
    shows. Pixel noise is drawn at the render resolution.

    Returns:
        ``(image, label)``: ``[H, W, 3]`` uint8 BGR (before JPEG coding) and
        ``[H, W]`` uint8 ADE20K ids (0 = unlabelled).
    """
    rng = np.random.default_rng(seed)
    canvas = SceneCanvas(rng, height, width)
    paint_stuff(canvas)
    # Objects (and clutter) in painting order: later ones occlude.
    for _ in range(int(rng.integers(4, 12))):
        canvas.paint_shape(random_object(rng))
    # Thin structures: poles and wires, 1/160 to 1/50 of the side wide.
    for _ in range(int(rng.integers(1, 5))):
        x0, y0, x1, y1 = rng.uniform(0, 1, 4)
        canvas.paint_pole((x0, y0), (x1, y1),
                          rng.uniform(1 / 320, 1 / 100))
    return canvas.finish(), canvas.label


def _write(image_path: str, label_path: str, image: np.ndarray,
           label: np.ndarray, jpeg_quality: int) -> None:
    import cv2
    os.makedirs(osp.dirname(image_path), exist_ok=True)
    os.makedirs(osp.dirname(label_path), exist_ok=True)
    cv2.imwrite(image_path, image,
                [int(cv2.IMWRITE_JPEG_QUALITY), int(jpeg_quality)])
    cv2.imwrite(label_path, label)


# Split folder names (ADE20K layout: images/<split>, annotations/<split>).
TRAIN_SPLIT = 'training'
VAL_SPLIT = 'validation'
VAL_2X_SPLIT = 'validation_2x'


def _render_and_write(job: Tuple[str, str, int, int]) -> None:
    image_path, label_path, scene_seed, resolution = job
    image, label = render_scene(scene_seed, resolution, resolution)
    quality = np.random.default_rng(scene_seed).integers(35, 91)
    _write(image_path, label_path, image, label, int(quality))


def make_proxy_ade20k(root: str,
                      num_train: int = 2000,
                      num_val: int = 100,
                      size: int = 320,
                      seed: int = 0,
                      workers: Optional[int] = None) -> Dict[str, str]:
    """Write the proxy dataset in the ADE20K layout.

    ``images/training`` (``num_train`` scenes at ``size x size``),
    ``images/validation`` (``num_val`` other scenes at ``size``) and
    ``images/validation_2x`` (the same validation scenes at ``2 * size``),
    JPEG-coded at a per-scene quality in ``[35, 90]``; ``annotations/<split>``
    holds the PNG label maps (ADE20K ids). Existing files are kept, so a
    second call with the same arguments costs nothing. ``workers``
    processes render in parallel (default: the CPU count, at most 4); the
    files do not depend on it.

    Returns:
        ``{split: folder name}`` for the three splits.
    """
    splits = ((TRAIN_SPLIT, num_train, seed * 1_000_003, size),
              (VAL_SPLIT, num_val, seed * 1_000_003 + 500_000, size),
              (VAL_2X_SPLIT, num_val, seed * 1_000_003 + 500_000, 2 * size))
    jobs = []
    for split, count, offset, resolution in splits:
        for i in range(count):
            name = f'ADE_{split}_{i + 1:08d}'
            image_path = osp.join(root, 'images', split, name + '.jpg')
            label_path = osp.join(root, 'annotations', split, name + '.png')
            if not (osp.exists(image_path) and osp.exists(label_path)):
                jobs.append((image_path, label_path, offset + i, resolution))
    workers = workers or min(4, os.cpu_count() or 1)
    if workers > 1 and len(jobs) > 8:
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(_render_and_write, jobs, chunksize=16))
    else:
        for job in jobs:
            _render_and_write(job)
    return {name: name for name in (TRAIN_SPLIT, VAL_SPLIT, VAL_2X_SPLIT)}
