"""Named AiluRus settings that the accuracy benchmark and the sweep
compare: AiluRus itself, every other registered reducer, and the variants
beyond the paper. Presets are changes to a
:class:`~ailurus_mm.ops.ClusterConfig`; one is made for every reducer of
:data:`ailurus_mm.ops.REDUCERS`, so a new reducer is benchmarked without
an edit here."""
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
        by_content: A per-image cluster count (``anchor_threshold``),
            calibrated on the evaluated images so that the mean count
            equals the keep ratio's: compared at an equal mean token count.
    """
    name: str
    changes: Dict[str, Any] = dataclasses.field(default_factory=dict)
    description: str = ''
    by_content: bool = False

    def apply(self, base: ClusterConfig, **knobs: Any) -> ClusterConfig:
        """``base`` with this preset's changes and ``knobs`` (e.g.
        ``num_clusters``, ``prop_attn``). Switching the reducer resets the
        knobs the new one does not take to their defaults."""
        changes = {**self.changes, **knobs}
        reducer = changes.get('reducer', base.reducer)
        if reducer != base.reducer:
            defaults = ClusterConfig.defaults()
            taken = REDUCERS[reducer].knobs
            for name in {n for r in REDUCERS.values() for n in r.knobs}:
                if name not in taken and name not in changes:
                    changes[name] = defaults[name]
        return base.replace(**changes)


def _presets() -> Tuple[Preset, ...]:
    presets = [Preset('ailurus', dict(reducer='dpc_knn'),
                      REDUCERS['dpc_knn'].description),
               Preset('dpc_knn_plain',
                      dict(reducer='dpc_knn', spatial_weight=0.0),
                      'plain DPC-kNN (spatial_weight=0)')]
    presets += [Preset(name, dict(reducer=name), spec.description)
                for name, spec in REDUCERS.items() if name != 'dpc_knn']
    presets += [
        Preset('ailurus_detail', dict(reducer='dpc_knn',
                                      recover_detail=True),
               'AiluRus + per-token detail in the recovery'),
        Preset('ailurus_adaptive', dict(reducer='dpc_knn'),
               'AiluRus with a per-image cluster count by content',
               by_content=True),
    ]
    return tuple(presets)


PRESETS: Tuple[Preset, ...] = _presets()
PRESET_NAMES: Tuple[str, ...] = tuple(p.name for p in PRESETS)


def find_presets(names: Optional[Sequence[str]]) -> Tuple[Preset, ...]:
    """The presets named (all for ``None``), in :data:`PRESETS` order."""
    if names is None:
        return PRESETS
    unknown = [n for n in names if n not in PRESET_NAMES]
    if unknown:
        raise ValueError(f'unknown reducer presets {unknown}; choose from '
                         f'{PRESET_NAMES}')
    return tuple(p for p in PRESETS if p.name in names)
