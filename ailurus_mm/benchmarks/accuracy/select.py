"""Choosing defaults from the grid: the fastest setting of our own
clustering (``dpc_cover``, or the paper's ``dpc_knn``) whose drops stay
within a budget on every split.

A setting qualifies on a split if ``drop - noise <= budget``: the part of
its drop beyond the noise estimate is within the budget. Fastest means the
smallest mean fraction of tokens per layer on the longest split; ties go
to the smaller drop on the shortest split, then on the longest.
"""
import argparse
import dataclasses
import json
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

from ..paths import write_json
from .data import find_dataset
from .grid import Row
from .report import read_csv

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


def fastest_on_all(rows_by_dataset: Dict[str, Sequence[Row]],
                   rules: Dict[str, Dict[str, float]],
                   candidates: Sequence[str] = CANDIDATES
                   ) -> Optional[Dict[str, Row]]:
    """:func:`fastest_within` over several datasets at once: the fastest
    setting that qualifies on every split of every dataset.

    Args:
        rows_by_dataset: ``{dataset: rows}``.
        rules: ``{dataset: {split: budget}}``.

    Returns:
        ``{'<dataset>:<split>': row}`` of the chosen setting, or ``None``.
    """
    relabelled: List[Row] = []
    rule: Dict[str, float] = {}
    for name, rows in rows_by_dataset.items():
        for split, budget in rules[name].items():
            rule[f'{name}:{split}'] = budget
        for row in rows:
            relabelled.append(dataclasses.replace(
                row, split=f'{name}:{row.split}'))
    return fastest_within(relabelled, rule, candidates)


def main(argv: Optional[List[str]] = None) -> Dict:
    """Choose AiluRusViT's defaults on the real-image witnesses together:
    ``python -m ailurus_mm.benchmarks.accuracy.select --out
    docs/accuracy/defaults.json camvid=docs/accuracy/camvid
    stanford_bg=docs/accuracy/stanford_bg`` (each folder's
    ``accuracy.csv``, each dataset's rule)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument('reports', nargs='+', metavar='DATASET=FOLDER')
    parser.add_argument('--out', required=True)
    args = parser.parse_args(argv)
    rows, rules = {}, {}
    for item in args.reports:
        name, _, folder = item.partition('=')
        dataset = find_dataset(name)
        rows[name] = read_csv(osp.join(folder, 'accuracy.csv'),
                              [s.name for s in dataset.splits])
        rules[name] = dict(dataset.rule)
    chosen = fastest_on_all(rows, rules)
    if chosen is None:
        parser.exit(1, 'no setting qualifies on every dataset\n')
    row = next(iter(chosen.values()))
    result = dict(
        rules=rules, setting=dict(reducer=row.knobs['reducer'],
                                  keep=row.keep, prop_attn=row.prop_attn),
        rows={k: dict(setting=r.setting, keep=r.keep,
                      prop_attn=r.prop_attn, drop=round(r.drop, 4),
                      noise=round(r.noise, 4), tokens=r.tokens)
              for k, r in chosen.items()},
        binding={name: (fastest_within(rows[name], rules[name]) or {})
                 for name in rows})
    result['binding'] = {
        name: None if not picked else dict(
            keep=next(iter(picked.values())).keep,
            prop_attn=next(iter(picked.values())).prop_attn,
            setting=next(iter(picked.values())).setting)
        for name, picked in result['binding'].items()}
    write_json(result, args.out)
    print(json.dumps(result, indent=2))
    return result


if __name__ == '__main__':
    main()
