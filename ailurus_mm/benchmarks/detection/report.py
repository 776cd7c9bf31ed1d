"""The detection grid's report: CSV (every knob of every row), markdown and
one plot (box and mask AP against the tokens kept), and the defaults rule.
"""
import csv
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

from ailurus_mm.ops import ClusterConfig
from ..common.cells import parse_cell
from ..presets import current_name
from .grid import HEADLINE, METRICS, DetRow

BASE_FIELDS = ('split', 'tokens', 'setting', 'prop_attn', 'keep',
               'layer_fraction')
LABEL = 'synthetic proxy, not COCO'
RULE = ('the fewest tokens per layer with box and mask AP drops, less their '
        'noise, within 0.5 AP at 2x')


def write_csv(rows: Sequence[DetRow], path: str) -> None:
    fields = list(BASE_FIELDS) + list(METRICS) + [
        f'drop.{m}' for m in METRICS] + [f'noise.{m}' for m in HEADLINE] + [
            f'{m}.{half}' for m in HEADLINE for half in ('a', 'b')] + list(
                ClusterConfig.names())
    with open(path, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            record = {k: getattr(row, k) for k in BASE_FIELDS}
            record.update({m: round(row.scores.get(m, float('nan')), 3)
                           for m in METRICS})
            record.update({f'drop.{m}': round(v, 3)
                           for m, v in row.drops.items()})
            record.update({f'noise.{m}': round(v, 3)
                           for m, v in row.noise.items()})
            for m, (a, b) in row.halves.items():
                record.update({f'{m}.a': round(a, 3), f'{m}.b': round(b, 3)})
            record.update({k: row.knobs.get(k, '')
                           for k in ClusterConfig.names()})
            writer.writerow(record)


def _vanilla(rows: Sequence[DetRow], split: str) -> DetRow:
    return next(r for r in rows if r.split == split and r.is_vanilla)


def read_csv(path: str) -> List[DetRow]:
    """The rows :func:`write_csv` wrote (to report or choose again).

    Raises:
        ValueError: The file lacks a column of the report, has no rows, or
            a line is invalid (cut short, a number that is not one, a knob
            value ``ClusterConfig`` refuses), naming the line.
    """
    rows = []
    with open(path, newline='') as f:
        reader = csv.reader(f)
        header = next(reader, [])
        missing = [k for k in (*BASE_FIELDS, *METRICS) if k not in header]
        if missing:
            raise ValueError(f'{path} lacks the columns {missing}: not a '
                             'detection accuracy report')
        for values in reader:
            try:
                rows.append(_row_of(header, values))
            except (ValueError, KeyError, TypeError) as error:
                raise ValueError(f'{path} line {reader.line_num}: '
                                 f'{type(error).__name__}: {error}'
                                 ) from error
    if not rows:
        raise ValueError(f'{path} has a header but no rows')
    return rows


def _number(text: str) -> Optional[float]:
    return None if text == '' else float(text)


def _row_of(header: List[str], values: List[str]) -> DetRow:
    if len(values) != len(header):
        raise ValueError(f'{len(values)} cells, the header has '
                         f'{len(header)}')
    named = dict(zip(header, values))
    # Today's knobs (earlier reports had retired ones too).
    knobs = {k: named[k] for k in ClusterConfig.names() if k in named}
    row = DetRow(
        split=named['split'], tokens=int(named['tokens']),
        setting=current_name(named['setting']),
        prop_attn=None if named['prop_attn'] == '' else
        named['prop_attn'] == 'True',
        keep=float(named['keep']),
        layer_fraction=float(named['layer_fraction']),
        scores={m: _number(named[m]) for m in METRICS},
        halves={m: (_number(named[f'{m}.a']), _number(named[f'{m}.b']))
                for m in HEADLINE},
        knobs={} if knobs.get('cluster_layer', '') == '' else
        ClusterConfig(**{k: parse_cell(v) for k, v in knobs.items()
                         if v != ''}).to_dict())
    if not row.is_vanilla:
        row.drops = {m: _number(named[f'drop.{m}']) for m in METRICS}
        row.noise = {m: _number(named[f'noise.{m}']) for m in HEADLINE}
    return row


def drop_table(rows: Sequence[DetRow], split: str) -> str:
    """Box and mask AP drops (with noise) of every setting at every keep."""
    split_rows = [r for r in rows if r.split == split and not r.is_vanilla]
    vanilla = _vanilla(rows, split)
    keeps = sorted({r.keep for r in split_rows}, reverse=True)
    lines = [
        f'{LABEL}: split {split} ({vanilla.tokens} tokens), vanilla box AP '
        f"{vanilla.scores['bbox_mAP']:.2f}, mask AP "
        f"{vanilla.scores['segm_mAP']:.2f}; box / mask AP drop (+- noise) "
        'at each keep ratio, no fine-tuning:', '',
        '| setting | prop_attn | ' + ' | '.join(
            f'keep {k}' for k in keeps) + ' |',
        '| --- | --- | ' + ' | '.join('---' for _ in keeps) + ' |'
    ]
    for name in dict.fromkeys(r.setting for r in split_rows):
        for attn in (False, True):
            cells = []
            for keep in keeps:
                match = [r for r in split_rows if r.setting == name and
                         r.prop_attn == attn and r.keep == keep]
                if not match:
                    cells.append('-')
                    continue
                row = match[0]
                cells.append(
                    f"{row.drops['bbox_mAP']:.2f} +- "
                    f"{row.noise['bbox_mAP']:.2f} / "
                    f"{row.drops['segm_mAP']:.2f} +- "
                    f"{row.noise['segm_mAP']:.2f}")
            if any(c != '-' for c in cells):
                lines.append(f'| {name} | {attn} | ' + ' | '.join(cells) +
                             ' |')
    return '\n'.join(lines)


def size_table(rows: Sequence[DetRow], split: str, keep: float) -> str:
    """AP_small and AP_large drops of every setting at ``keep``."""
    split_rows = [r for r in rows if r.split == split and not r.is_vanilla
                  and r.keep == keep]
    if not split_rows:
        return ''
    vanilla = _vanilla(rows, split)
    names = ('bbox_mAP_s', 'bbox_mAP_l', 'segm_mAP_s', 'segm_mAP_l')
    lines = [
        f'Split {split}: small and large objects at keep {keep} (vanilla: '
        + ', '.join(f'{n} {vanilla.scores[n]:.2f}' for n in names) + '):',
        '', '| setting | prop_attn | ' + ' | '.join(
            f'{n} drop' for n in names) + ' |',
        '| --- | --- | ' + ' | '.join('---' for _ in names) + ' |'
    ]
    for row in split_rows:
        lines.append(f'| {row.setting} | {row.prop_attn} | ' + ' | '.join(
            f'{row.drops[n]:.2f}' for n in names) + ' |')
    return '\n'.join(lines)


def plot(rows: Sequence[DetRow], path: str) -> None:
    """Box and mask AP against the fraction of tokens kept, one column per
    split, one line per setting (solid: ``prop_attn``, dashed: without);
    the vanilla model as a horizontal line."""
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    splits = list(dict.fromkeys(r.split for r in rows))
    fig = Figure(figsize=(6.0 * len(splits), 8.4), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, len(splits), squeeze=False)
    names = list(dict.fromkeys(r.setting for r in rows if not r.is_vanilla))
    colours = colormaps['tab10'].colors + colormaps['Dark2'].colors
    for column, split in enumerate(splits):
        vanilla = _vanilla(rows, split)
        for line, metric in enumerate(HEADLINE):
            ax = axes[line][column]
            for i, name in enumerate(names):
                for attn, style in ((True, '-'), (False, '--')):
                    points = sorted(
                        (r.keep, r.scores[metric]) for r in rows
                        if r.split == split and r.setting == name
                        and r.prop_attn == attn)
                    if points:
                        xs, ys = zip(*points)
                        ax.plot(xs, ys, 'o' + style, markersize=3,
                                color=colours[i % len(colours)],
                                label=name if attn else f'{name}, no '
                                'prop_attn')
            ax.axhline(vanilla.scores[metric], color='k', linewidth=0.8,
                       label='vanilla')
            ax.set_title(f'{split}: {vanilla.tokens} tokens')
            ax.set_xlabel('fraction of tokens kept')
            ax.set_ylabel('box AP' if metric == 'bbox_mAP' else 'mask AP')
            ax.invert_xaxis()
            ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, ncol=2)
    fig.suptitle(f'Mask R-CNN ViT-T, {LABEL}, no fine-tuning')
    fig.tight_layout()
    fig.savefig(path)


# The settings the Mask R-CNN defaults are chosen from: our own clustering
# (``dpc_cover``, or the paper's ``dpc_knn``), after any layer studied
# (``<reducer>@layer<n>``).
CANDIDATES = ('dpc_cover', 'dpc_knn')


def fastest_within(rows: Sequence[DetRow], split: str = '2x',
                   budget: float = 0.5,
                   candidates: Sequence[str] = CANDIDATES
                   ) -> Optional[DetRow]:
    """The setting with the smallest mean fraction of tokens per layer on
    ``split`` whose box and mask AP drops, less their noise, are both at
    most ``budget`` (ties: the smaller summed drop)."""
    good: List[Tuple[float, float, DetRow]] = []
    for row in rows:
        if row.split != split or row.is_vanilla or \
                row.setting.split('@layer')[0] not in candidates:
            continue
        if all(row.drops[m] - row.noise[m] <= budget for m in HEADLINE):
            good.append((round(row.layer_fraction, 6),
                         sum(row.drops[m] for m in HEADLINE), row))
    if not good:
        return None
    return min(good, key=lambda g: (g[0], g[1]))[2]


def summary_of(row: Optional[DetRow]) -> Optional[Dict]:
    if row is None:
        return None
    return dict(setting=row.setting, prop_attn=row.prop_attn, keep=row.keep,
                knobs=row.knobs, drops=row.drops, noise=row.noise,
                layer_fraction=row.layer_fraction, tokens=row.tokens)


def write_report(rows: Sequence[DetRow], out_dir: str,
                 keep: float = 0.5) -> str:
    """``accuracy.csv``, ``accuracy.md`` (the drop tables, then the small
    and large objects at ``keep``) and ``accuracy.png`` of ``rows`` in
    ``out_dir``; returns the markdown."""
    splits = list(dict.fromkeys(r.split for r in rows))
    write_csv(rows, osp.join(out_dir, 'accuracy.csv'))
    table = '\n\n'.join(
        [drop_table(rows, s) for s in splits] +
        [size_table(rows, s, keep) for s in splits]) + '\n'
    with open(osp.join(out_dir, 'accuracy.md'), 'w') as f:
        f.write(table)
    plot(rows, osp.join(out_dir, 'accuracy.png'))
    return table


def choice(rows: Sequence[DetRow], table: str
           ) -> Tuple[Optional[DetRow], Dict]:
    """The rule's choice (on the 2x split when the rows have it, else on
    the last) and the summary's fields: it, the vanilla scores, the rule
    and the report ``table``."""
    splits = list(dict.fromkeys(r.split for r in rows))
    chosen = fastest_within(rows, split='2x' if '2x' in splits else
                            splits[-1])
    return chosen, dict(
        label=LABEL, table=table,
        vanilla={r.split: r.scores for r in rows if r.is_vanilla},
        rule=RULE, default_setting=summary_of(chosen))
