"""One detection report from a grid run in parts (``--splits``,
``--presets`` in separate runs of the same detector): the rows of every
``accuracy.csv``, a later file's row replacing an earlier one of the same
setting, written as one ``accuracy.csv/md/png`` and a ``summary.json`` whose
``default_setting`` is chosen again by the detection rule.

    python -m ailurus_mm.benchmarks.detection.merge --out-dir docs/detection \\
        docs/detection/accuracy.csv work_dirs/det_cover/accuracy.csv
"""
import argparse
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

from ..common import merging
from ..paths import prepare_dir, strict_json
from . import report
from .grid import DetRow


def merge_rows(parts: Sequence[Sequence[DetRow]]) -> List[DetRow]:
    """:func:`~ailurus_mm.benchmarks.common.merging.merge_rows` of
    detection rows: the vanilla box and mask AP per split (the detection
    CSV records no checkpoint)."""
    return merging.merge_rows(
        parts, lambda row: {m: row.scores[m] for m in report.HEADLINE})


def write_merged(rows: Sequence[DetRow], out_dir: str,
                 sources: Sequence[str], keep: float = 0.5) -> Dict:
    """``accuracy.csv/md/png`` and ``summary.json`` of ``rows`` in
    ``out_dir``; returns the summary."""
    _, summary = report.choice(rows,
                               report.write_report(rows, out_dir, keep))
    summary['parts'] = list(sources)
    with open(osp.join(out_dir, 'summary.json'), 'w') as f:
        json.dump(strict_json(summary), f, indent=2, allow_nan=False)
    return summary


def main(argv: Optional[List[str]] = None) -> Dict:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('csvs', nargs='+', help='accuracy.csv files of the '
                        'detection benchmark, later ones replacing earlier '
                        'rows')
    parser.add_argument('--out-dir', required=True)
    args = parser.parse_args(argv)
    missing = [p for p in args.csvs if not os.path.isfile(p)]
    if missing:
        parser.error(f'no such file: {", ".join(missing)}')
    try:
        parts = [report.read_csv(p) for p in args.csvs]
        rows = merge_rows(parts)
        if not any(r.is_vanilla for r in rows):
            raise ValueError('no part has a vanilla row: drops cannot be '
                             'reported')
        prepare_dir(args.out_dir)
    except (ValueError, KeyError) as error:
        parser.error(f'{type(error).__name__}: {error}')
    summary = write_merged(rows, args.out_dir, args.csvs)
    print(summary['table'])
    print('default setting:', json.dumps(summary['default_setting']))
    return summary


if __name__ == '__main__':
    main()
