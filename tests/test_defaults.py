"""The defaults are what the accuracy benchmarks chose, by their rules.

- ``AiluRusViT``'s defaults (which every Segmenter config inherits without
  restating them, see ``test_configs.py``) are the CamVid benchmark's choice
  (``docs/accuracy/camvid/summary.json``, written by
  ``tools/accuracy_benchmark.py --dataset camvid``);
- the Mask R-CNN configs' settings are the detection benchmark's choice
  (``docs/detection/summary.json``, ``--task detection``).
"""
import json
import os.path as osp

import pytest
from mmengine import Config

from ailurus_mm.benchmarks.accuracy.data import CAMVID
from ailurus_mm.benchmarks.accuracy.select import CANDIDATES
from ailurus_mm.benchmarks.detection.grid import HEADLINE
from ailurus_mm.benchmarks.detection.report import \
    CANDIDATES as DET_CANDIDATES
from ailurus_mm.ops import ClusterConfig

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
MASK_RCNN = [
    osp.join(REPO, 'configs', 'mask_rcnn',
             f'ailurus_mask-rcnn_vit-{size}_simplefpn_8xb2-lsj-1x_coco-'
             '1024x1024.py') for size in ('b', 'l')
]


def _summary(*parts):
    path = osp.join(REPO, 'docs', *parts)
    with open(path) as f:
        return json.load(f)


def test_segmentation_defaults_are_the_camvid_choice():
    summary = _summary('accuracy', 'camvid', 'summary.json')
    assert summary['dataset'] == 'camvid'
    rule = dict(CAMVID.rule)  # split: mIoU budget
    assert summary['rule'] == rule
    chosen = summary['default_setting']
    assert set(chosen) == set(rule)
    settings = {(r['setting'], r['keep'], r['prop_attn'])
                for r in chosen.values()}
    assert len(settings) == 1  # one setting on every split
    name, keep, prop_attn = settings.pop()
    assert name in CANDIDATES
    defaults = ClusterConfig.defaults()
    assert (defaults['num_clusters'], defaults['prop_attn']) == \
        (keep, prop_attn)
    for split, row in chosen.items():
        # the rule: the part of the drop beyond the noise within the budget
        assert row['drop'] - row['noise'] <= rule[split]


@pytest.mark.parametrize('path', MASK_RCNN, ids=osp.basename)
def test_mask_rcnn_settings_are_the_detection_choice(path):
    chosen = _summary('detection', 'summary.json')['default_setting']
    assert chosen['setting'] in DET_CANDIDATES
    backbone = Config.fromfile(path).model.backbone
    knobs = ClusterConfig.from_mapping(backbone)
    assert (knobs.num_clusters, knobs.prop_attn, knobs.cluster_layer) == \
        (chosen['keep'], chosen['prop_attn'],
         chosen['knobs']['cluster_layer'])
    for metric in HEADLINE:  # box and mask AP
        assert chosen['drops'][metric] - chosen['noise'][metric] <= 0.5
