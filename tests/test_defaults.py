"""The defaults are what the accuracy benchmarks chose, by their rules.

- ``AiluRusViT``'s defaults (which every Segmenter config inherits without
  restating them, see ``test_configs.py``) are the fastest setting of our
  own clustering that qualifies on both real-image witnesses, CamVid and
  Stanford Background (``docs/accuracy/defaults.json``, written by
  ``python -m ailurus_mm.benchmarks.accuracy.select`` from
  ``docs/accuracy/{camvid,stanford_bg}/accuracy.csv``);
- the Mask R-CNN configs' settings are the detection benchmark's choice
  (``docs/detection/summary.json``, ``--task detection``).
"""
import json
import os.path as osp

import pytest
from mmengine import Config

from ailurus_mm.benchmarks.accuracy.data import find_dataset
from ailurus_mm.benchmarks.accuracy.report import read_csv
from ailurus_mm.benchmarks.accuracy.select import (CANDIDATES,
                                                   fastest_on_all,
                                                   fastest_within)
from ailurus_mm.benchmarks.detection import report as det_report
from ailurus_mm.benchmarks.detection.grid import HEADLINE
from ailurus_mm.benchmarks.detection.report import \
    CANDIDATES as DET_CANDIDATES
from ailurus_mm.ops import ClusterConfig

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DOCS = osp.join(REPO, 'docs')
WITNESSES = ('camvid', 'stanford_bg')
MASK_RCNN = [
    osp.join(REPO, 'configs', 'mask_rcnn',
             f'ailurus_mask-rcnn_vit-{size}_simplefpn_8xb2-lsj-1x_coco-'
             '1024x1024.py') for size in ('b', 'l')
]


def _summary(*parts):
    with open(osp.join(DOCS, *parts)) as f:
        return json.load(f)


def _witnesses():
    rows, rules = {}, {}
    for name in WITNESSES:
        dataset = find_dataset(name)
        rows[name] = read_csv(
            osp.join(DOCS, 'accuracy', name, 'accuracy.csv'),
            [s.name for s in dataset.splits])
        rules[name] = dict(dataset.rule)
    return rows, rules


def test_segmentation_defaults_are_the_choice_on_both_witnesses():
    recorded = _summary('accuracy', 'defaults.json')
    rows, rules = _witnesses()
    assert recorded['rules'] == rules
    chosen = fastest_on_all(rows, rules)
    assert chosen is not None
    assert set(chosen) == {f'{n}:{s}' for n in rules for s in rules[n]}
    settings = {(r.setting, r.knobs['reducer'], r.keep, r.prop_attn)
                for r in chosen.values()}
    assert len(settings) == 1  # one setting on every split of both
    name, reducer, keep, prop_attn = settings.pop()
    assert name in CANDIDATES and reducer == name
    assert recorded['setting'] == dict(reducer=reducer, keep=keep,
                                       prop_attn=prop_attn)
    defaults = ClusterConfig.defaults()
    assert (defaults['reducer'], defaults['num_clusters'],
            defaults['prop_attn']) == (reducer, keep, prop_attn)
    for key, row in chosen.items():
        dataset, split = key.split(':')
        # the rule: the part of the drop beyond the noise within the budget
        assert row.drop - row.noise <= rules[dataset][split]
        assert recorded['rows'][key]['drop'] == pytest.approx(row.drop,
                                                              abs=1e-4)


@pytest.mark.parametrize('name', WITNESSES)
def test_each_witness_alone_is_recorded(name):
    """What each dataset alone would choose (the binding one is the one
    whose own choice keeps more tokens)."""
    recorded = _summary('accuracy', 'defaults.json')['binding'][name]
    rows, rules = _witnesses()
    own = fastest_within(rows[name], rules[name])
    assert own is not None
    row = next(iter(own.values()))
    assert recorded == dict(keep=row.keep, prop_attn=row.prop_attn,
                            setting=row.setting)
    chosen = _summary('accuracy', 'defaults.json')['setting']
    assert chosen['keep'] >= row.keep  # both must hold


@pytest.mark.parametrize('path', MASK_RCNN, ids=osp.basename)
def test_mask_rcnn_settings_are_the_detection_choice(path):
    chosen = _summary('detection', 'summary.json')['default_setting']
    assert chosen['setting'].split('@layer')[0] in DET_CANDIDATES
    rows = det_report.read_csv(osp.join(DOCS, 'detection', 'accuracy.csv'))
    again = det_report.summary_of(det_report.fastest_within(rows))
    assert json.loads(json.dumps(again)) == chosen
    backbone = Config.fromfile(path).model.backbone
    knobs = ClusterConfig.from_mapping(backbone)
    assert (knobs.reducer, knobs.num_clusters, knobs.prop_attn,
            knobs.cluster_layer) == \
        (chosen['knobs']['reducer'], chosen['keep'], chosen['prop_attn'],
         chosen['knobs']['cluster_layer'])
    for metric in HEADLINE:  # box and mask AP
        assert chosen['drops'][metric] - chosen['noise'][metric] <= 0.5
