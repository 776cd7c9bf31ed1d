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
            :data:`~ailurus_mm.ops.reducers.REDUCERS` (``'dpc_knn'`` is
            AiluRus; the others are the field's reducers, for comparison).
            Knobs a reducer does not take must keep their defaults.
        recover_detail: Recovery adds every token's deviation from its
            cluster mean at clustering time (beyond the paper).
        anchor_threshold: ``None`` (``num_clusters`` anchors in every image)
            or a finite number: a per-image count by content, the tokens
            whose DPC decision score is above it (at most ``num_clusters``;
            beyond the paper). ``dpc_knn`` with ``window=None`` only.
        second_stage: ``None``, or ``(layer, num_clusters)``: cluster the
            merged tokens again after that later layer, down to that count
            (an int, or a fraction of the original patch tokens), with the
            same reducer (beyond the paper). The merged tokens carry their
            sizes and centroid positions; recovery composes the two
            assignments. Not with ``window``, ``anchor_threshold``,
            ``recover_detail`` or the grid-based reducers.
    """
    cluster_layer: int = 1
    num_clusters: Count = 0.5
    k: int = 5
    spatial_weight: float = 1.0
    window: Optional[int] = None
    prop_attn: bool = True
    reducer: str = 'dpc_knn'
    recover_detail: bool = False
    anchor_threshold: Optional[float] = None
    second_stage: Optional[Tuple[int, Count]] = None

    def __post_init__(self) -> None:
        if self.second_stage is not None and isinstance(
                self.second_stage, list):
            object.__setattr__(self, 'second_stage',
                               tuple(self.second_stage))
        self._validate()
        if isinstance(self.spatial_weight, numbers.Integral):
            object.__setattr__(self, 'spatial_weight',
                               float(self.spatial_weight))
        if self.anchor_threshold is not None:
            object.__setattr__(self, 'anchor_threshold',
                               float(self.anchor_threshold))

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
        if self.anchor_threshold is not None:
            _check_real('anchor_threshold', self.anchor_threshold,
                        'None or a finite number (the DPC decision score '
                        'above which a token is an anchor)')
        if not isinstance(self.reducer, str) or \
                self.reducer not in REDUCERS:
            raise ValueError(f'reducer must be one of {tuple(REDUCERS)}, '
                             f'got {self.reducer!r}')
        self._check_reducer_knobs()
        if self.anchor_threshold is not None and self.window is not None:
            raise ValueError(
                f'anchor_threshold={self.anchor_threshold!r} needs the '
                'global clustering: leave window at None (got '
                f'window={self.window!r})')
        if self.second_stage is not None:
            self._check_second_stage()

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

    def _check_second_stage(self) -> None:
        stage = self.second_stage
        if not isinstance(stage, tuple) or len(stage) != 2:
            raise ValueError('second_stage must be None or (layer, '
                             f'num_clusters), got {stage!r}')
        layer, count = stage
        _check_int('second_stage layer', layer, self.cluster_layer + 1,
                   meaning=f' (a layer after cluster_layer='
                   f'{self.cluster_layer})')
        _check_count('second_stage num_clusters', count)
        for name, value, allowed in (
                ('window', self.window, None),
                ('anchor_threshold', self.anchor_threshold, None),
                ('recover_detail', self.recover_detail, False)):
            if value != allowed:
                raise ValueError(
                    f'second_stage={stage!r} does not combine with '
                    f'{name}={value!r}; leave it at {allowed!r}')
        if not REDUCERS[self.reducer].any_tokens:
            raise ValueError(
                f'second_stage={stage!r}: reducer={self.reducer!r} needs '
                'the token grid, which merged tokens no longer form; use '
                'one of '
                f'{tuple(n for n, r in REDUCERS.items() if r.any_tokens)}')

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
        if self.second_stage is not None:
            _check_int('second_stage layer', self.second_stage[0],
                       self.cluster_layer + 1, num_layers - 2,
                       f' (after cluster_layer={self.cluster_layer}, '
                       f'before the last of num_layers={num_layers})')
        if isinstance(out_indices, int):
            out_indices = [out_indices]
        bad = [i for i in out_indices if not -num_layers <= i < num_layers]
        if bad:
            raise ValueError(f'out_indices {bad} out of range for '
                             f'num_layers={num_layers}')
        return [i % num_layers for i in out_indices]

    # ----------------------------------------------------------- derived
    def stages(self) -> Tuple[Tuple[int, Count], ...]:
        """``((layer, num_clusters), ...)``: where the tokens are clustered
        and down to how many, in order."""
        first = ((self.cluster_layer, self.num_clusters), )
        return first + ((tuple(self.second_stage), )
                        if self.second_stage is not None else ())

    def mean_kept_fraction(self, num_layers: int,
                           num_tokens: int) -> float:
        """The mean over all ``num_layers`` layers of the fraction of
        patch tokens each layer runs on (without ``anchor_threshold``),
        for comparing settings at an equal mean token count."""
        kept, total = num_tokens, 0.0
        stages = dict(self.stages())
        for layer in range(num_layers):
            total += kept
            if layer in stages:
                kept = min(kept, resolve_num_clusters(stages[layer],
                                                      num_tokens))
        return total / (num_layers * num_tokens)
