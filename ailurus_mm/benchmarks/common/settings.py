"""What the segmentation and detection benchmarks share about settings: a
:class:`Setting` (a preset at a keep ratio, with ``prop_attn`` on or off),
the grid of them, the cluster-layer study, and the checks of a run's
common flags."""
import dataclasses
import os.path as osp
from typing import List, Optional, Sequence

import torch

from ailurus_mm.ops import ClusterConfig
from ..presets import Preset, default_preset, find_presets

VANILLA = 'vanilla'


@dataclasses.dataclass(frozen=True)
class Setting:
    """One AiluRus model of the grid (or the vanilla model).

    Attributes:
        preset: The preset (``None`` for the vanilla model).
        keep: The keep ratio (``num_clusters``).
        prop_attn: Proportional attention.
        base: The knobs the preset changes (default: the defaults).
        label: The row's name (default: the preset's).
    """
    preset: Optional[Preset]
    keep: float = 1.0
    prop_attn: Optional[bool] = None
    base: ClusterConfig = ClusterConfig()
    label: Optional[str] = None

    @property
    def name(self) -> str:
        if self.preset is None:
            return VANILLA
        return self.label or self.preset.name

    def clustering(self) -> ClusterConfig:
        """The knobs."""
        return self.preset.apply(self.base, num_clusters=self.keep,
                                 prop_attn=self.prop_attn)


VANILLA_SETTING = Setting(None)


def grid_settings(presets: Sequence[Preset], keeps: Sequence[float],
                  prop_attn: Sequence[bool],
                  base: ClusterConfig = ClusterConfig()) -> List[Setting]:
    """Every preset x ``prop_attn`` x keep, in that order."""
    return [Setting(p, k, a, base) for p in presets for a in prop_attn
            for k in keeps]


def layer_settings(keeps: Sequence[float], num_layers: int = 12,
                   layers: Sequence[int] = (0, 2, 3)) -> List[Setting]:
    """The default clustering (``prop_attn`` on) after other layers
    (those the network has)."""
    preset = default_preset()
    return [Setting(preset, keep, True, ClusterConfig(cluster_layer=layer),
                    label=f'{preset.name}@layer{layer}')
            for layer in layers if layer <= num_layers - 2
            for keep in keeps]


def check_common(spec) -> None:
    """The checks the segmentation and detection benchmarks share, on a
    spec's ``checkpoint``, ``presets``, ``keeps``, ``jobs``, ``threads``,
    ``num_val``, ``size``, ``iters``, ``limit`` and ``device``."""
    if spec.checkpoint is not None and not osp.isfile(spec.checkpoint):
        raise FileNotFoundError(
            f'--checkpoint {spec.checkpoint} does not exist')
    find_presets(spec.presets)
    for keep in spec.keeps or ():
        ClusterConfig(num_clusters=keep)
    for name in ('jobs', 'threads', 'num_val', 'size'):
        if getattr(spec, name) < 1:
            raise ValueError(f'--{name.replace("_", "-")} must be >= 1, '
                             f'got {getattr(spec, name)}')
    if spec.iters is not None and spec.iters < 1:
        raise ValueError(f'--iters must be >= 1, got {spec.iters}')
    if spec.limit is not None and spec.limit < 2:
        raise ValueError(f'--limit must be >= 2 (the noise of a drop needs '
                         f'two halves of the images), got {spec.limit}')
    if spec.device.startswith('cuda') and not torch.cuda.is_available():
        raise ValueError(f'--device {spec.device}: CUDA is not available '
                         'here')
