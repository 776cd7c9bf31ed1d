"""Choosing defaults from the grid: the fastest setting of our own
clustering (``dpc_cover``, or the paper's ``dpc_knn``) whose drops stay
within a budget on every split.

A setting qualifies on a split if ``drop - noise <= budget``: the part of
its drop beyond the noise estimate is within the budget. Fastest means the
smallest mean fraction of tokens per layer on the longest split; ties go
to the smaller drop on the shortest split, then on the longest.
"""
from typing import Dict, List, Optional, Sequence, Tuple

from .grid import Row

# The settings the defaults are chosen from.
CANDIDATES = ('dpc_cover', 'dpc_knn')


def _key(row: Row) -> Tuple:
    return (row.setting, row.prop_attn, row.keep)


def qualifies(row: Row, budget: float) -> bool:
    return row.drop - row.noise <= budget


def fastest_within(rows: Sequence[Row], rule: Dict[str, float],
                   candidates: Sequence[str] = CANDIDATES
                   ) -> Optional[Dict[str, Row]]:
    """The chosen setting's row on every split of ``rule`` (``None`` if no
    candidate qualifies everywhere)."""
    by_split: Dict[str, Dict[Tuple, Row]] = {}
    for row in rows:
        if not row.is_vanilla and row.setting in candidates:
            by_split.setdefault(row.split, {})[_key(row)] = row
    splits = [s for s in rule if s in by_split]
    if not splits:
        return None
    keys = set.intersection(*(set(by_split[s]) for s in splits))
    good: List[Tuple] = [k for k in keys if all(
        qualifies(by_split[s][k], rule[s]) for s in splits)]
    if not good:
        return None
    longest = max(splits, key=lambda s: next(iter(by_split[s].values()))
                  .tokens)
    shortest = min(splits, key=lambda s: next(iter(by_split[s].values()))
                   .tokens)
    best = min(good, key=lambda k: (
        round(by_split[longest][k].layer_fraction, 6),
        by_split[shortest][k].drop, by_split[longest][k].drop))
    return {s: by_split[s][best] for s in splits}
