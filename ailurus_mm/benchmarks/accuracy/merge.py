"""One report from a grid run in parts (``--splits``, ``--reducers``,
``--studies`` in separate runs of the same model): the rows of every
``accuracy.csv``, a later file's row replacing an earlier one of the same
setting, written as one ``accuracy.csv/md/png`` and a ``summary.json`` with
the dataset's own choice by its rule.

    python -m ailurus_mm.benchmarks.accuracy.merge --dataset camvid \\
        --out-dir docs/accuracy/camvid A/accuracy.csv B/accuracy.csv
"""
import argparse
import os
from typing import List, Optional, Sequence

from ..common import merging
from ..paths import prepare_dir, write_json
from . import report
from .data import DATASETS, find_dataset
from .grid import Row
from .run import choice, write_report


def merge_rows(parts: Sequence[Sequence[Row]]) -> List[Row]:
    """:func:`~ailurus_mm.benchmarks.common.merging.merge_rows` of
    segmentation rows: the vanilla mIoU per split and the checkpoint of
    every row (reports older than the model column name none and are
    checked by the vanilla rows only)."""
    return merging.merge_rows(parts, lambda row: {'mIoU': row.miou},
                              lambda row: row.model)


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
    write_json(dict(dataset=dataset.name, label=dataset.label,
                    parts=list(args.csvs), left_out=list(args.leave_out),
                    **choice(rows, dataset)[1]),
               os.path.join(args.out_dir, 'summary.json'))
    print(text)
    return text


if __name__ == '__main__':
    main()
