"""The accuracy grid's report: CSV (every knob of every row), markdown
tables and one plot (mIoU against the tokens kept)."""
import csv
from typing import Any, Dict, List, Optional, Sequence

from ailurus_mm.ops import REDUCERS, ClusterConfig
from ..common.cells import parse_cell
from ..presets import current_name
from .grid import Row

BASE_FIELDS = ('split', 'tokens', 'setting', 'prop_attn', 'keep',
               'kept_tokens', 'layer_fraction', 'miou', 'miou_a', 'miou_b',
               'drop', 'drop_a', 'drop_b', 'noise')
# The knobs besides the base columns (prop_attn is one of them).
KNOB_FIELDS = tuple(n for n in ClusterConfig.names() if n not in BASE_FIELDS)


def _cell(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


def write_csv(rows: Sequence[Row], path: str) -> None:
    """One line per row: the scores, every ``ClusterConfig`` knob (empty
    for the vanilla model), and ``iou.<class>`` / ``drop.<class>`` of the
    focus classes."""
    classes = list(dict.fromkeys(c for r in rows for c in r.class_iou))
    fields = list(BASE_FIELDS) + list(KNOB_FIELDS) + ['model'] + \
        [f'iou.{c}' for c in classes] + [f'drop.{c}' for c in classes]
    with open(path, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            record = {k: _cell(getattr(row, k)) for k in BASE_FIELDS}
            record.update({k: row.knobs.get(k, '') for k in KNOB_FIELDS})
            record['model'] = row.model
            record.update({f'iou.{c}': _cell(v)
                           for c, v in row.class_iou.items()})
            record.update({f'drop.{c}': _cell(v)
                           for c, v in row.class_drop.items()})
            writer.writerow(record)


class ReportReadError(ValueError):
    """A CSV that is not a report this module wrote; names the file, the
    line and what is wrong."""


NUMBERS = ('tokens', 'keep', 'kept_tokens', 'layer_fraction', 'miou',
           'miou_a', 'miou_b', 'drop', 'drop_a', 'drop_b', 'noise')


def _number(path: str, line: int, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ReportReadError(f'{path}, line {line}: {name}={value!r} is '
                              'not a number')
    return value


def _row_of(path: str, line: int, record: Dict[str, str],
            splits: Optional[Sequence[str]]) -> Row:
    if None in record or None in record.values():
        raise ReportReadError(f'{path}, line {line}: {len(record)} cells '
                              'do not match the header (a truncated file?)')
    values = {k: parse_cell(record[k]) for k in BASE_FIELDS}
    for name in NUMBERS:
        _number(path, line, name, values[name])
    setting = current_name(record['setting'])
    if not setting:
        raise ReportReadError(f'{path}, line {line}: no setting')
    split = record['split']
    if splits is not None and split not in splits:
        raise ReportReadError(f'{path}, line {line}: split {split!r} is '
                              f'not one of the dataset\'s {list(splits)}')
    if values['prop_attn'] not in (None, True, False):
        raise ReportReadError(f'{path}, line {line}: prop_attn='
                              f'{values["prop_attn"]!r} is not True, False '
                              'or empty')
    # Every knob column, retired ones of earlier reports included
    # (prop_attn is a base column).
    knobs = {k: parse_cell(v) for k, v in record.items()
             if k not in BASE_FIELDS and '.' not in k and k != 'model'}
    if setting == 'vanilla':
        knobs = {}
    else:
        knobs['prop_attn'] = values['prop_attn']
        current = {k: v for k, v in knobs.items()
                   if k in ClusterConfig.names() and v is not None}
        if current.get('reducer') in REDUCERS or 'reducer' not in current:
            try:
                ClusterConfig(**current)
            except (TypeError, ValueError) as error:
                raise ReportReadError(f'{path}, line {line}: {error}') \
                    from error
    row = Row(split=split, tokens=int(values['tokens']), setting=setting,
              prop_attn=values['prop_attn'], keep=values['keep'],
              kept_tokens=values['kept_tokens'],
              layer_fraction=values['layer_fraction'], miou=values['miou'],
              miou_a=values['miou_a'], miou_b=values['miou_b'], knobs=knobs,
              model=record.get('model') or '')
    row.drop, row.drop_a, row.drop_b, row.noise = (
        values[k] for k in ('drop', 'drop_a', 'drop_b', 'noise'))
    for prefix, target in (('iou.', row.class_iou),
                           ('drop.', row.class_drop)):
        for key, value in record.items():
            if key.startswith(prefix) and value != '':
                target[key[len(prefix):]] = float(_number(
                    path, line, key, parse_cell(value)))
    return row


def read_csv(path: str, splits: Optional[Sequence[str]] = None
             ) -> List[Row]:
    """The rows of :func:`write_csv`, every cell checked.

    Args:
        path: The CSV.
        splits: The split names allowed (default: any).

    Raises:
        ReportReadError: The file is empty, has no header or rows, lacks a
            column, or a cell is invalid (a number that is not one, a knob
            value ``ClusterConfig`` refuses, a split the dataset does not
            have, a line cut short), naming the line.
    """
    with open(path, newline='') as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames
        if not header:
            raise ReportReadError(f'{path} is empty: not an accuracy report')
        missing = [k for k in BASE_FIELDS if k not in header]
        if missing:
            raise ReportReadError(f'{path} lacks the columns {missing}: not '
                                  'an accuracy report')
        rows = [_row_of(path, reader.line_num, record, splits)
                for record in reader]
    if not rows:
        raise ReportReadError(f'{path} has a header but no rows')
    return rows


def _vanilla(rows: Sequence[Row], split: str) -> Row:
    return next(r for r in rows if r.split == split and r.is_vanilla)


def drop_table(rows: Sequence[Row], split: str, label: str = '') -> str:
    """Drops (with noise) of every setting x ``prop_attn`` at every keep."""
    split_rows = [r for r in rows if r.split == split and not r.is_vanilla]
    vanilla = _vanilla(rows, split)
    # a two-stage setting sits under the keep it is compared at
    column = {id(r): _column(r, split_rows) for r in split_rows}
    keeps = sorted({column[id(r)] for r in split_rows}, reverse=True)
    lines = [
        f'{label + ": " if label else ""}split {split} ({vanilla.tokens} '
        f'tokens), vanilla mIoU {vanilla.miou:.2f}; mIoU drop (+- noise) '
        'at each keep ratio (two-stage settings: at the same mean token '
        'count), no fine-tuning:', '',
        '| setting | prop_attn | ' + ' | '.join(
            f'keep {k}' for k in keeps) + ' |',
        '| --- | --- | ' + ' | '.join('---' for _ in keeps) + ' |'
    ]
    for name in dict.fromkeys(r.setting for r in split_rows):
        for attn in (False, True):
            cells = []
            for keep in keeps:
                match = [r for r in split_rows if r.setting == name and
                         r.prop_attn == attn and column[id(r)] == keep]
                cells.append(f'{match[0].drop:.2f} +- {match[0].noise:.2f}'
                             if match else '-')
            if any(c != '-' for c in cells):
                lines.append(f'| {name} | {attn} | ' + ' | '.join(cells) +
                             ' |')
    return '\n'.join(lines)


def _column(row: Row, rows: Sequence[Row]) -> float:
    """The keep column of ``row``: its keep, or for a two-stage setting
    of an earlier report (retired) the keep of the single-stage ``dpc_knn``
    row with the same mean fraction of tokens per layer (the count it is
    compared at)."""
    if row.knobs.get('second_stage') is None:
        return row.keep
    same = [r.keep for r in rows if r.setting == 'dpc_knn' and
            r.knobs.get('second_stage') is None and
            abs(r.layer_fraction - row.layer_fraction) < 0.01]
    return same[0] if same else row.keep


def class_table(rows: Sequence[Row], split: str, keep: float) -> str:
    """Per-class IoU drops of the focus classes at ``keep``."""
    split_rows = [r for r in rows if r.split == split and not r.is_vanilla
                  and r.keep == keep]
    vanilla = _vanilla(rows, split)
    classes = list(vanilla.class_iou)
    if not classes or not split_rows:
        return ''
    lines = [
        f'Split {split}: IoU drop of the small and thin classes at keep '
        f'{keep} (vanilla IoU: ' + ', '.join(
            f'{c} {v:.1f}' for c, v in vanilla.class_iou.items()) + '):',
        '', '| setting | prop_attn | ' + ' | '.join(classes) + ' |',
        '| --- | --- | ' + ' | '.join('---' for _ in classes) + ' |'
    ]
    for row in split_rows:
        lines.append(f'| {row.setting} | {row.prop_attn} | ' + ' | '.join(
            f'{row.class_drop.get(c, float("nan")):.2f}' for c in classes)
            + ' |')
    return '\n'.join(lines)


# the least gap (mIoU) that ranks two rows: the half-split noise is one
# sample, and can come out 0.00 by chance
RANK_NOISE_FLOOR = 0.1


def off_changes_ranking(rows: Sequence[Row], name: str) -> bool:
    """Whether ``name`` without ``prop_attn`` swaps places, beyond the
    noise, with another reducer's ``prop_attn`` line at some keep: one
    that ``name`` with it clearly beats clearly beats it without, or the
    other way round. "Clearly" is a gap larger than the larger noise of the
    two rows (at least ``RANK_NOISE_FLOOR``), so swaps inside the noise do
    not count."""
    def order(a: Row, b: Row) -> int:
        gap = a.miou - b.miou
        return 0 if abs(gap) <= max(a.noise, b.noise, RANK_NOISE_FLOOR) else (
            1 if gap > 0 else -1)

    for keep in {r.keep for r in rows}:
        at = {r.setting: r for r in rows if r.keep == keep and r.prop_attn}
        off = [r for r in rows if r.keep == keep and r.setting == name and
               r.prop_attn is False]
        if name not in at or not off:
            continue
        for other, row in at.items():
            if other != name and order(at[name], row) * order(off[0],
                                                              row) < 0:
                return True
    return False


def plot(rows: Sequence[Row], path: str, title: str,
         x: str = 'keep') -> None:
    """mIoU against the fraction of tokens kept, one panel per split, one
    line per setting with ``prop_attn`` (solid); the line without it
    (dashed) only where it changes the ranking; the vanilla model as a
    horizontal line. Uses matplotlib's object API with the Agg canvas (no
    backend switch)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    splits = list(dict.fromkeys(r.split for r in rows))
    fig = Figure(figsize=(6.2 * len(splits), 4.8), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(splits), squeeze=False)[0]
    names = list(dict.fromkeys(r.setting for r in rows if not r.is_vanilla))
    from matplotlib import colormaps
    colours = colormaps['tab10'].colors + colormaps['Dark2'].colors
    for ax, split in zip(axes, splits):
        split_rows = [r for r in rows if r.split == split
                      and not r.is_vanilla]
        vanilla = _vanilla(rows, split)
        for i, name in enumerate(names):
            mine = [r for r in split_rows if r.setting == name]
            has_on = any(r.prop_attn for r in mine)
            for attn, style in ((True, '-'), (False, '--')):
                if attn is False and has_on and \
                        not off_changes_ranking(split_rows, name):
                    continue
                points = sorted((getattr(r, x), r.miou) for r in mine
                                if bool(r.prop_attn) == attn)
                if not points:
                    continue
                xs, ys = zip(*points)
                ax.plot(xs, ys, 'o' + style, color=colours[i % len(colours)],
                        markersize=3, label=name if attn or not has_on
                        else f'{name}, no prop_attn')
        ax.axhline(vanilla.miou, color='k', linewidth=0.8,
                   label='vanilla')
        ax.set_xlabel('fraction of tokens kept' if x == 'keep' else
                      'mean fraction of tokens per layer')
        ax.set_ylabel('mIoU')
        ax.set_title(f'{split}: {vanilla.tokens} tokens')
        ax.invert_xaxis()
        ax.grid(alpha=0.3)
        # every panel names its own lines (the splits may hold different
        # settings)
        ax.legend(fontsize=7, ncol=2, loc='lower left')
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
