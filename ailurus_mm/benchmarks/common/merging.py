"""Merging a grid run in parts, for either benchmark's rows: a later
part's row replaces an earlier one of the same split, setting and knobs;
parts whose vanilla rows (or checkpoints) differ are refused."""
from typing import Callable, Dict, Hashable, List, Sequence, Tuple, TypeVar

R = TypeVar('R')


def row_key(row) -> Tuple:
    """What makes two rows the same measurement: split, setting,
    ``prop_attn``, keep and every knob."""
    return (row.split, row.setting, row.prop_attn, row.keep,
            tuple(sorted((k, repr(v)) for k, v in row.knobs.items())))


def merge_rows(parts: Sequence[Sequence[R]],
               vanilla_scores: Callable[[R], Dict[str, float]],
               model: Callable[[R], str] = lambda row: '') -> List[R]:
    """The rows of ``parts`` in first-seen order, a later part's row
    replacing an earlier one with the same :func:`row_key`.

    Args:
        vanilla_scores: A vanilla row's headline scores (``{name: value}``),
            compared across parts per split.
        model: A row's checkpoint identity (``''`` where the report does not
            record one).

    Raises:
        ValueError: Parts of different models: their rows name different
            checkpoints, or their vanilla rows differ on a split (their
            drops do not compare).
    """
    merged: Dict[Hashable, R] = {}
    vanilla: Dict[str, Dict[str, float]] = {}
    models: Dict[str, int] = {}
    for index, rows in enumerate(parts):
        for row in rows:
            if model(row):
                models.setdefault(model(row), index)
                if len(models) > 1:
                    raise ValueError(
                        f'part {index} evaluated the checkpoint {model(row)}, '
                        f'part {min(models.values())} another '
                        f'({next(iter(models))}): not the same model')
            if row.is_vanilla:
                scores = vanilla_scores(row)
                seen = vanilla.setdefault(row.split, scores)
                if any(abs(seen[k] - scores[k]) > 1e-3 for k in seen):
                    raise ValueError(
                        f'part {index} has vanilla {_text(scores)} on split '
                        f'{row.split}, an earlier part {_text(seen)}: not the '
                        'same model or data')
            merged[row_key(row)] = row
    return list(merged.values())


def _text(scores: Dict[str, float]) -> str:
    return ', '.join(f'{k} {v}' for k, v in scores.items())
