"""One report from a grid run in parts (``--splits``, ``--reducers``,
``--studies`` in separate runs of the same model): the rows of every
``accuracy.csv``, a later file's row replacing an earlier one of the same
setting, written as one ``accuracy.csv/md/png``.

    python -m ailurus_mm.benchmarks.accuracy.merge --dataset camvid \\
        --out-dir docs/accuracy/camvid A/accuracy.csv B/accuracy.csv
"""
import argparse
import os
from typing import Dict, List, Optional, Sequence, Tuple

from ..paths import prepare_dir
from . import report
from .data import DATASETS, find_dataset
from .grid import Row
from .run import write_report


def _key(row: Row) -> Tuple:
    return (row.split, row.setting, row.prop_attn, row.keep,
            tuple(sorted((k, repr(v)) for k, v in row.knobs.items())))


def merge_rows(parts: Sequence[Sequence[Row]]) -> List[Row]:
    """The rows of ``parts`` in first-seen order, a later part's row
    replacing an earlier one with the same split, name and knobs.

    Raises:
        ValueError: Parts of different models (their rows name different
            checkpoints, or their vanilla rows differ on a split: their
            drops do not compare). Rows of reports older than the model
            column name none and are checked by the vanilla rows only.
    """
    merged: Dict[Tuple, Row] = {}
    vanilla: Dict[str, float] = {}
    models: Dict[str, int] = {}
    for index, rows in enumerate(parts):
        for row in rows:
            if row.model:
                models.setdefault(row.model, index)
                if len(models) > 1:
                    raise ValueError(
                        f'part {index} evaluated the checkpoint {row.model}, '
                        f'part {min(models.values())} another '
                        f'({next(iter(models))}): not the same model')
            if row.is_vanilla:
                seen = vanilla.setdefault(row.split, row.miou)
                if abs(seen - row.miou) > 1e-3:
                    raise ValueError(
                        f'part {index} has vanilla mIoU {row.miou} on split '
                        f'{row.split}, an earlier part {seen}: not the same '
                        'model or data')
            merged[_key(row)] = row
    return list(merged.values())


def main(argv: Optional[List[str]] = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('csvs', nargs='+', help='accuracy.csv files, '
                        'later ones replacing earlier rows')
    parser.add_argument('--dataset', default='camvid',
                        choices=tuple(DATASETS))
    parser.add_argument('--out-dir', required=True)
    parser.add_argument('--leave-out', nargs='+', default=(),
                        metavar='SETTING', help='leave out the rows of '
                        'these settings (e.g. variants whose knobs are '
                        'retired; their parts keep them)')
    args = parser.parse_args(argv)
    missing = [p for p in args.csvs if not os.path.isfile(p)]
    if missing:
        parser.error(f'no such file: {", ".join(missing)}')
    dataset = find_dataset(args.dataset)
    splits = [s.name for s in dataset.splits]
    try:
        rows = merge_rows([report.read_csv(p, splits) for p in args.csvs])
        unknown = set(args.leave_out) - {r.setting for r in rows}
        if unknown:
            raise ValueError(f'--leave-out {sorted(unknown)}: no part has '
                             'rows of these settings')
        rows = [r for r in rows if r.setting not in args.leave_out]
        if not any(r.is_vanilla for r in rows):
            raise ValueError('no part has a vanilla row: drops cannot be '
                             'reported')
        prepare_dir(args.out_dir)
    except ValueError as error:
        parser.error(str(error))
    text = write_report(rows, dataset, args.out_dir)
    print(text)
    return text


if __name__ == '__main__':
    main()
