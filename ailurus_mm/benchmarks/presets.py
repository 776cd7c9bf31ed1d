"""Named settings that the accuracy benchmark and the sweep compare: one
per registered reducer, named as it (``dpc_cover``, ours and the default;
``dpc_knn``, the paper's; the field's), plus a few variants
(``dpc_knn_plain``, ``dpc_cover_detail``, ``dpc_cover_window``). Presets are
changes to a :class:`~ailurus_mm.ops.ClusterConfig`; one is made for every
reducer of :data:`ailurus_mm.ops.REDUCERS`, so a new reducer is
benchmarked without an edit here.

Rows of earlier runs named AiluRus's clustering ``ailurus``
(:data:`LEGACY_NAMES` maps them when a CSV is read)."""
import dataclasses
from typing import Any, Dict, Optional, Sequence, Tuple

from ailurus_mm.ops import REDUCERS, ClusterConfig


@dataclasses.dataclass(frozen=True)
class Preset:
    """One named setting.

    Attributes:
        name: Label in tables, plots and CSV rows.
        changes: ``ClusterConfig`` knobs it sets (``reducer`` and its own
            knobs; the keep ratio and ``prop_attn`` are set per row).
        description: What it is, for reports.
    """
    name: str
    changes: Dict[str, Any] = dataclasses.field(default_factory=dict)
    description: str = ''

    def apply(self, base: ClusterConfig, **knobs: Any) -> ClusterConfig:
        """``base`` with this preset's changes and ``knobs`` (e.g.
        ``num_clusters``, ``prop_attn``), by
        :meth:`~ailurus_mm.ops.ClusterConfig.switch`."""
        return base.switch(**{**self.changes, **knobs})


# The density window of the ``dpc_cover_window`` preset (tokens).
WINDOW = 8


def _presets() -> Tuple[Preset, ...]:
    presets = []
    for name, spec in REDUCERS.items():
        presets.append(Preset(name, dict(reducer=name), spec.description))
        if name == 'dpc_knn':
            presets.append(Preset(
                'dpc_knn_plain', dict(reducer='dpc_knn', spatial_weight=0.0),
                'plain DPC-kNN (spatial_weight=0)'))
    presets += [
        Preset('dpc_cover_detail', dict(reducer='dpc_cover',
                                        recover_detail=True),
               'dpc_cover + per-token detail in the recovery'),
        Preset('dpc_cover_window', dict(reducer='dpc_cover', window=WINDOW),
               f'dpc_cover with the density in a {2 * WINDOW + 1}^2 window'),
    ]
    return tuple(presets)


PRESETS: Tuple[Preset, ...] = _presets()
PRESET_NAMES: Tuple[str, ...] = tuple(p.name for p in PRESETS)


# Setting names of earlier reports -> today's.
LEGACY_NAMES = {'ailurus': 'dpc_knn', 'ailurus_detail': 'dpc_knn_detail',
                'ailurus_adaptive': 'dpc_knn_adaptive'}


def current_name(name: str) -> str:
    """Today's name of a setting of an earlier report (``ailurus@layer3``
    -> ``dpc_knn@layer3``, ``ailurus_2stage@3`` -> ``dpc_knn_2stage@3``)."""
    head, at, tail = name.partition('@')
    if head == 'ailurus_2stage':
        return f'dpc_knn_2stage{at}{tail}'
    return LEGACY_NAMES.get(head, head) + at + tail


def default_preset() -> Preset:
    """The preset of ``AiluRusViT``'s default reducer."""
    return find_presets([ClusterConfig().reducer])[0]


def find_presets(names: Optional[Sequence[str]]) -> Tuple[Preset, ...]:
    """The presets named (all for ``None``), in :data:`PRESETS` order."""
    if names is None:
        return PRESETS
    unknown = [n for n in names if n not in PRESET_NAMES]
    if unknown:
        raise ValueError(f'unknown reducer presets {unknown}; choose from '
                         f'{PRESET_NAMES}')
    return tuple(p for p in PRESETS if p.name in names)
