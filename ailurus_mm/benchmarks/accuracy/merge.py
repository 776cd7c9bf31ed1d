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

from . import report
from .data import find_dataset
from .grid import Row


def _key(row: Row) -> Tuple:
    return (row.split, row.setting, row.prop_attn, row.keep,
            tuple(sorted((k, repr(v)) for k, v in row.knobs.items())))


def merge_rows(parts: Sequence[Sequence[Row]]) -> List[Row]:
    """The rows of ``parts`` in first-seen order, a later part's row
    replacing an earlier one with the same split, name and knobs.

    Raises:
        ValueError: Parts whose vanilla rows differ on a split (they come
            from different models or data, and their drops do not compare).
    """
    merged: Dict[Tuple, Row] = {}
    vanilla: Dict[str, float] = {}
    for index, rows in enumerate(parts):
        for row in rows:
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
                        choices=('proxy', 'camvid'))
    parser.add_argument('--out-dir', required=True)
    args = parser.parse_args(argv)
    missing = [p for p in args.csvs if not os.path.isfile(p)]
    if missing:
        parser.error(f'no such file: {", ".join(missing)}')
    from .run import write_report

    try:
        rows = merge_rows([report.read_csv(p) for p in args.csvs])
    except ValueError as error:
        parser.error(str(error))
    os.makedirs(args.out_dir, exist_ok=True)
    text = write_report(rows, find_dataset(args.dataset), args.out_dir)
    print(text)
    return text


if __name__ == '__main__':
    main()
