"""A grid run in parts, merged into one report (benchmarks/accuracy/merge):
later rows replace earlier ones of the same setting, parts of different
models are refused, and the merged files are the report's."""
import re

import pytest

from ailurus_mm.benchmarks.accuracy import merge, report
from ailurus_mm.benchmarks.accuracy.grid import Row
from ailurus_mm.ops import ClusterConfig


def _row(split, setting, keep=1.0, miou=40.0, prop_attn=True, **knobs):
    vanilla = setting == 'vanilla'
    tokens = 690 if split == '1x' else 2700
    row = Row(split=split, tokens=tokens, setting=setting,
              prop_attn=None if vanilla else prop_attn, keep=keep,
              kept_tokens=tokens * keep, layer_fraction=keep, miou=miou,
              miou_a=miou, miou_b=miou, class_iou={'pole': 1.0},
              knobs={} if vanilla else ClusterConfig(
                  num_clusters=keep, prop_attn=prop_attn,
                  **knobs).to_dict())
    row.drop = 40.0 - miou
    row.class_drop = {'pole': 0.0}
    return row


def test_later_parts_replace_rows_of_the_same_setting():
    first = [_row('1x', 'vanilla'), _row('1x', 'ailurus', 0.5, 39.0),
             _row('1x', 'ailurus', 0.5, 38.0, recover_detail=True)]
    second = [_row('1x', 'vanilla'), _row('2x', 'vanilla'),
              _row('1x', 'ailurus', 0.5, 39.5, recover_detail=True),
              _row('2x', 'ailurus', 0.5, 39.9)]
    rows = merge.merge_rows([first, second])
    assert [(r.split, r.setting, r.knobs.get('recover_detail'), r.miou)
            for r in rows] == [
        ('1x', 'vanilla', None, 40.0), ('1x', 'ailurus', False, 39.0),
        ('1x', 'ailurus', True, 39.5), ('2x', 'vanilla', None, 40.0),
        ('2x', 'ailurus', False, 39.9)]


def test_parts_of_different_models_are_refused():
    with pytest.raises(ValueError, match='vanilla mIoU 35.0 on split 1x, '
                       'an earlier part mIoU 40.0'):
        merge.merge_rows([[_row('1x', 'vanilla')],
                          [_row('1x', 'vanilla', miou=35.0)]])


def test_merge_writes_one_report(tmp_path, capsys):
    a, b = str(tmp_path / 'a.csv'), str(tmp_path / 'b.csv')
    report.write_csv([_row('1x', 'vanilla'), _row('1x', 'dpc_cover', 0.5,
                                                  39.0)], a)
    report.write_csv([_row('1x', 'vanilla'), _row('1x', 'grid', 0.5, 38.0,
                                                  reducer='grid')], b)
    out = tmp_path / 'out'
    text = merge.main(['--dataset', 'camvid', '--out-dir', str(out), a, b])
    rows = report.read_csv(str(out / 'accuracy.csv'))
    assert [(r.setting, r.miou) for r in rows] == [
        ('vanilla', 40.0), ('dpc_cover', 39.0), ('grid', 38.0)]
    assert 'CamVid, a small ViT trained here' in text
    assert (out / 'accuracy.png').stat().st_size > 0
    import json
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['parts'] == [a, b] and summary['dataset'] == 'camvid'
    assert set(summary['vanilla']) == {'1x'}
    with pytest.raises(SystemExit):
        merge.main(['--out-dir', str(out), str(tmp_path / 'missing.csv')])
    assert 'no such file' in capsys.readouterr().err
    # rows of a setting left out (a retired variant): its part keeps them
    merge.main(['--dataset', 'camvid', '--out-dir', str(out), '--leave-out',
                'grid', '--', a, b])
    assert [r.setting for r in report.read_csv(str(out / 'accuracy.csv'))
            ] == ['vanilla', 'dpc_cover']
    with pytest.raises(SystemExit):
        merge.main(['--dataset', 'camvid', '--out-dir', str(out),
                    '--leave-out', 'tome', '--', a, b])
    assert "--leave-out ['tome']: no part has rows" in \
        capsys.readouterr().err


def test_prop_attn_off_is_drawn_only_where_it_swaps_places_beyond_noise():
    def row(setting, miou, prop_attn=True, noise=0.1):
        r = _row('2x', setting, 0.5, miou, prop_attn)
        r.noise = noise
        return r

    rows = [row('ailurus', 36.2), row('grid', 35.7),
            row('ailurus', 35.5, prop_attn=False),
            row('kmeans', 36.4), row('kmeans', 36.5, prop_attn=False)]
    # without prop_attn AiluRus falls below grid by more than the noise
    assert report.off_changes_ranking(rows, 'ailurus')
    # k-means gains a little without it: no swap
    assert not report.off_changes_ranking(rows, 'kmeans')
    # a swap inside the noise is not a change
    close = [row('ailurus', 36.2), row('grid', 36.0),
             row('ailurus', 35.8, prop_attn=False, noise=0.25)]
    assert not report.off_changes_ranking(close, 'ailurus')
    close[2].noise = 0.05
    assert report.off_changes_ranking(close, 'ailurus')
    # nor one inside the floor, when the half-split noise comes out 0
    for r in close:
        r.noise = 0.0
    close[2].miou = 35.95
    assert not report.off_changes_ranking(close, 'ailurus')


# -- what the merge tool reads: its own output, nothing it cannot trust ------
def _written(tmp_path, rows, name='part.csv'):
    path = str(tmp_path / name)
    report.write_csv(rows, path)
    return path


def test_it_reads_its_own_nan_cells(tmp_path):
    row = _row('1x', 'dpc_cover', 0.5, 39.0)
    row.class_iou = {'pole': float('nan')}
    rows = report.read_csv(_written(tmp_path, [_row('1x', 'vanilla'), row]))
    assert rows[1].class_iou['pole'] != rows[1].class_iou['pole']  # nan


@pytest.mark.parametrize('edit, match', [
    (lambda text: '', r'is empty: not an accuracy report'),
    (lambda text: text.splitlines()[0] + '\n', r'has a header but no rows'),
    (lambda text: text.rstrip()[:-30], r'line 3: \d+ cells do not match '
     r'the header \(a truncated file\?\)'),
    (lambda text: text.replace(',39.0,', ',abc,', 1),
     r"line 3: miou='abc' is not a number"),
    (lambda text: text.replace(',0.5,', ',7.5,'),
     r'line 3: num_clusters as a fraction must be in \(0, 1\], got 7.5'),
    (lambda text: text.replace('\n1x,690,dpc_cover', '\n3x,690,dpc_cover'),
     r"line 3: split '3x' is not one of the dataset's \['1x', '2x'\]"),
    (lambda text: text.replace(',True,', ',maybe,', 1),
     r"line 3: prop_attn='maybe' is not True, False or empty"),
    (lambda text: 'a,b\n1,2\n', r"lacks the columns \['split'"),
])
def test_malformed_parts_are_refused_naming_the_line(tmp_path, capsys,
                                                     edit, match):
    path = _written(tmp_path, [_row('1x', 'vanilla'),
                               _row('1x', 'dpc_cover', 0.5, 39.0)])
    with open(path) as f:
        text = f.read()
    with open(path, 'w') as f:
        f.write(edit(text))
    with pytest.raises(SystemExit) as exit_info:
        merge.main(['--dataset', 'camvid', '--out-dir',
                    str(tmp_path / 'out'), path])
    assert exit_info.value.code == 2
    assert re.search(match, capsys.readouterr().err)
    assert not (tmp_path / 'out').exists()


def test_parts_of_different_checkpoints_are_refused_on_any_split(tmp_path,
                                                                 capsys):
    """The vanilla rows cannot tell models apart when the parts cover
    different splits: the rows name their checkpoint."""
    a = [_row('1x', 'vanilla'), _row('1x', 'grid', 0.5, 39.0)]
    b = [_row('2x', 'vanilla'), _row('2x', 'grid', 0.5, 39.0)]
    for row in a:
        row.model = 'aaaa'
    for row in b:
        row.model = 'bbbb'
    with pytest.raises(SystemExit):
        merge.main(['--out-dir', str(tmp_path / 'out'),
                    _written(tmp_path, a, 'a.csv'),
                    _written(tmp_path, b, 'b.csv')])
    assert 'evaluated the checkpoint bbbb, part 0 another (aaaa)' in \
        capsys.readouterr().err


def test_summaries_are_strict_json():
    import json

    from ailurus_mm.benchmarks.paths import strict_json

    text = json.dumps(strict_json({'a': [float('nan'), 1.0],
                                   'b': float('inf')}), allow_nan=False)
    assert json.loads(text) == {'a': [None, 1.0], 'b': None}
