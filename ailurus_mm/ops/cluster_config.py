"""``ClusterConfig``: the AiluRus knobs, their defaults and their validation.

One frozen value type owns the knobs. ``AiluRusViT``, ``cluster_tokens``,
``ailurus_mm.apply``, the config conversions, the strict-loading hook, the
benchmark variants, the sweep and every report iterate over its fields, so
a knob is added in one place: a field here (with its check in
:meth:`ClusterConfig._validate`) and its use.

Every invalid value raises a ``ValueError`` (``TypeError`` for an unknown
knob name) that names the argument, the value and what is allowed.
"""
import dataclasses
import math
import numbers
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from .reducers import REDUCERS

Count = Union[int, float]

# Knobs of earlier versions, retired because no measurement favoured them
# (docs/method.md): named when a config or a call still sets them.
RETIRED = {
    'second_stage': 'a second clustering stage lost more than one stage at '
    'the same mean token count at every CamVid setting',
    'anchor_threshold': 'a per-image count by content was within the noise '
    'of a fixed count',
}


def resolve_num_clusters(num_clusters: Count, num_tokens: int) -> int:
    """Number of anchors for a sequence of ``num_tokens`` patch tokens.

    Args:
        num_clusters: An int count ``>= 1`` or a float fraction in ``(0, 1]``.
        num_tokens: ``N``.

    Returns:
        ``M`` in ``[1, N]``; ``M == N`` means nothing is merged.
    """
    num_tokens = int(num_tokens)  # a traced shape is a tensor
    _check_count('num_clusters', num_clusters)
    if isinstance(num_clusters, numbers.Integral):
        return min(int(num_clusters), num_tokens)
    return max(1, min(num_tokens, round(num_clusters * num_tokens)))


def _check_count(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f'{name} must be an int count or a float fraction, '
                        f'got {value!r}')
    if isinstance(value, numbers.Integral):
        if value < 1:
            raise ValueError(f'{name} must be >= 1 as a count, got {value}')
    elif not 0.0 < value <= 1.0:
        raise ValueError(f'{name} as a fraction must be in (0, 1], got '
                         f'{value}')


def _check_int(name: str, value: Any, low: int,
               high: Optional[int] = None, meaning: str = '') -> None:
    allowed = f'[{low}, {high}]' if high is not None else f'>= {low}'
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) \
            or value < low or (high is not None and value > high):
        raise ValueError(f'{name} must be an int {allowed}{meaning}, '
                         f'got {value!r}')


def _check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f'{name} must be True or False, got {value!r}')


def _check_real(name: str, value: Any, meaning: str,
                minimum: Optional[float] = None) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or \
            not math.isfinite(value) or (minimum is not None and
                                         value < minimum):
        raise ValueError(f'{name} must be {meaning}, got {value!r}')


@dataclasses.dataclass(frozen=True)
class ClusterConfig:
    """The knobs of AiluRus (``docs/method.md`` explains each).

    Attributes:
        cluster_layer: 0-based index of the layer whose output is clustered,
            as in ``out_indices`` (the paper's "after the 2nd layer" is 1);
            in ``[0, num_layers - 2]``.
        num_clusters: Tokens kept: an int count ``>= 1`` or a float fraction
            of the patch tokens in ``(0, 1]``. ``>= N`` (or 1.0) is exactly
            the vanilla model.
        k: Neighbours of the kNN density, ``>= 1`` (at most ``N - 1`` used).
        spatial_weight: Weight ``lambda >= 0`` of the spatial term of the
            distance; 0 gives plain DPC-kNN.
        window: ``None`` (global) or a radius ``>= 1``: density, distance
            indicator and assignment look at a ``(2w + 1)^2`` neighbourhood
            only (an approximation without ``O(N^2)`` steps). Clipped to the
            grid at run time; never costs more than ``None``.
        prop_attn: Add ``log(cluster size)`` of the key token to the
            attention logits of the layers after clustering.
        reducer: How tokens are grouped: a name of
            :data:`~ailurus_mm.ops.reducers.REDUCERS` (``'dpc_cover'``,
            density peaks that cover the image, is ours; ``'dpc_knn'`` is
            the paper's; the others are the field's reducers, for
            comparison). Knobs a reducer does not take must keep their
            defaults.
        recover_detail: Recovery adds every token's deviation from its
            cluster mean at clustering time (beyond the paper).
    """
    cluster_layer: int = 1
    num_clusters: Count = 0.25
    k: int = 5
    spatial_weight: float = 1.0
    window: Optional[int] = None
    prop_attn: bool = False
    reducer: str = 'dpc_cover'
    recover_detail: bool = False

    def __post_init__(self) -> None:
        self._validate()
        if isinstance(self.spatial_weight, numbers.Integral):
            object.__setattr__(self, 'spatial_weight',
                               float(self.spatial_weight))

    # ------------------------------------------------------------ fields
    @classmethod
    def names(cls) -> Tuple[str, ...]:
        """The knob names, in declaration order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def defaults(cls) -> Dict[str, Any]:
        """``{name: default}`` of every knob."""
        return {f.name: f.default for f in dataclasses.fields(cls)}

    @classmethod
    def check_names(cls, names: Sequence[str]) -> None:
        """Raise ``TypeError`` naming the unknown knobs among ``names``."""
        unknown = sorted(set(names) - set(cls.names()))
        retired = [n for n in unknown if n in RETIRED]
        if retired:
            raise TypeError(
                f'the AiluRus knob {retired[0]!r} was retired: '
                f'{RETIRED[retired[0]]} (docs/method.md); remove it')
        if unknown:
            raise TypeError(f'unknown AiluRus knob(s) {unknown}; the knobs '
                            f'are {list(cls.names())}')

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> 'ClusterConfig':
        """The knobs found in ``mapping`` (e.g. a backbone config, which
        holds other keys too), the others at their defaults."""
        return cls(**{name: mapping[name] for name in cls.names()
                      if name in mapping})

    def replace(self, **changes: Any) -> 'ClusterConfig':
        """A copy with ``changes`` (validated); unknown names raise
        ``TypeError``."""
        self.check_names(list(changes))
        return dataclasses.replace(self, **changes)

    def switch(self, **changes: Any) -> 'ClusterConfig':
        """A copy with ``changes``; if they change the reducer, the knobs
        the new reducer does not take go back to their defaults (unless
        ``changes`` sets them), so any setting can switch reducers."""
        self.check_names(list(changes))
        reducer = changes.get('reducer', self.reducer)
        if reducer != self.reducer and reducer in REDUCERS:
            defaults = self.defaults()
            taken = REDUCERS[reducer].knobs
            for name in {n for r in REDUCERS.values() for n in r.knobs}:
                if name not in taken and name not in changes:
                    changes[name] = defaults[name]
        return dataclasses.replace(self, **changes)

    def nothing_merged(self) -> 'ClusterConfig':
        """The same knobs with every patch token kept: exactly the
        vanilla model's outputs, through the AiluRus code path."""
        return self.replace(num_clusters=1.0)

    def to_dict(self) -> Dict[str, Any]:
        """Every knob, ``{name: value}`` (JSON-friendly)."""
        return {name: getattr(self, name) for name in self.names()}

    def changed(self) -> Dict[str, Any]:
        """The knobs that differ from their defaults."""
        defaults = self.defaults()
        return {name: value for name, value in self.to_dict().items()
                if value != defaults[name]}

    def describe(self) -> str:
        """``cluster_layer=1, num_clusters=0.5, ...``: every knob."""
        return ', '.join(f'{name}={value!r}'
                         for name, value in self.to_dict().items())

    # -------------------------------------------------------- validation
    def _validate(self) -> None:
        _check_int('cluster_layer', self.cluster_layer, 0, meaning=' (0-'
                   'based index of the layer whose output is clustered)')
        _check_count('num_clusters', self.num_clusters)
        _check_int('k', self.k, 1, meaning=' (neighbours of the kNN '
                   'density)')
        _check_real('spatial_weight', self.spatial_weight,
                    'a finite number >= 0 (0 = plain DPC-kNN)', 0.0)
        if self.window is not None:
            _check_int('window', self.window, 1, meaning=' or None (radius '
                       'of the density window in tokens)')
        _check_bool('prop_attn', self.prop_attn)
        _check_bool('recover_detail', self.recover_detail)
        if not isinstance(self.reducer, str) or \
                self.reducer not in REDUCERS:
            raise ValueError(f'reducer must be one of {tuple(REDUCERS)}, '
                             f'got {self.reducer!r}')
        self._check_reducer_knobs()

    def _check_reducer_knobs(self) -> None:
        taken = REDUCERS[self.reducer].knobs
        defaults = self.defaults()
        for name in sorted({n for r in REDUCERS.values() for n in r.knobs}):
            value = getattr(self, name)
            if name not in taken and value != defaults[name]:
                users = tuple(r for r, spec in REDUCERS.items()
                              if name in spec.knobs)
                raise ValueError(
                    f'{name}={value!r} is not used by reducer='
                    f'{self.reducer!r} (it takes: '
                    f'{", ".join(taken) or "no knobs"}); {name} applies to '
                    f'the reducers {users}. Leave it at its default '
                    f'({defaults[name]!r}).')

    def check_layers(self, num_layers: int,
                     out_indices: Union[int, Sequence[int]] = -1
                     ) -> List[int]:
        """Validate the layer knobs for a ViT of ``num_layers`` layers.

        Returns:
            ``out_indices`` as a list of non-negative indices.
        """
        _check_int('cluster_layer', self.cluster_layer, 0, num_layers - 2,
                   f' (0-based index of the layer whose output is '
                   f'clustered; the model has num_layers={num_layers} and '
                   'the last layer cannot be clustered)')
        if isinstance(out_indices, int):
            out_indices = [out_indices]
        bad = [i for i in out_indices if not -num_layers <= i < num_layers]
        if bad:
            raise ValueError(f'out_indices {bad} out of range for '
                             f'num_layers={num_layers}')
        return [i % num_layers for i in out_indices]

    # ----------------------------------------------------------- derived
    def num_anchors(self, num_tokens: int) -> Optional[int]:
        """``M`` for ``num_tokens`` patch tokens, or ``None`` when nothing
        is merged (``M >= N``): the one place that decides it."""
        num_anchors = resolve_num_clusters(self.num_clusters, num_tokens)
        return None if num_anchors >= int(num_tokens) else num_anchors

    def mean_kept_fraction(self, num_layers: int,
                           num_tokens: int) -> float:
        """The mean over all ``num_layers`` layers of the fraction of
        patch tokens each layer runs on, for comparing settings at an
        equal mean token count."""
        kept = resolve_num_clusters(self.num_clusters, num_tokens)
        layers_after = num_layers - 1 - self.cluster_layer
        return ((num_layers - layers_after) * num_tokens +
                layers_after * kept) / (num_layers * num_tokens)
