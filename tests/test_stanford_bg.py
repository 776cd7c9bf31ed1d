"""StanfordBackgroundDataset on a generated tree in its layout, on real
images from ../shared/stanford_bg (skipped, with where the data comes from,
when absent), and the accuracy benchmark's stanford_bg path end to end."""
import glob
import os.path as osp

import numpy as np
import pytest

from conftest import REPO

SHARED = osp.join(osp.dirname(REPO), 'shared', 'stanford_bg')
CLASSES = ('sky', 'tree', 'road', 'grass', 'water', 'building', 'mountain',
           'foreground object')
PIPELINE = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations')]


def _dataset(root, split='train', **kwargs):
    from mmengine.registry import DefaultScope

    from ailurus_mm.datasets import StanfordBackgroundDataset

    with DefaultScope.overwrite_default_scope('mmseg'):
        return StanfordBackgroundDataset(
            data_root=root, pipeline=PIPELINE,
            data_prefix=dict(img_path=f'images/{split}',
                             seg_map_path=f'annotations/{split}'), **kwargs)


def test_registered_with_the_classes_and_the_tutorial_palette():
    from mmseg.registry import DATASETS

    import ailurus_mm.datasets  # noqa: F401
    cls = DATASETS.get('StanfordBackgroundDataset')
    assert cls.METAINFO['classes'] == CLASSES
    palette = cls.METAINFO['palette']
    assert len(palette) == 8 and len({tuple(c) for c in palette}) == 8
    assert palette[CLASSES.index('foreground object')] == [241, 134, 51]


def test_reads_the_generated_layout(tmp_path):
    from ailurus_mm.testing import make_stanford_bg

    root = make_stanford_bg(str(tmp_path), num_train=3, num_val=3)
    train, val = _dataset(root), _dataset(root, 'val')
    assert (len(train), len(val)) == (3, 3)
    shapes = [val[i]['img'].shape for i in range(3)]
    assert shapes == [(48, 64, 3), (48, 64, 3), (64, 48, 3)]  # a portrait
    labels = val[0]['gt_seg_map']
    assert set(np.unique(labels)) <= set(range(8)) | {255}
    assert (labels[:4, :4] == 255).all()  # unknown stays ignored
    assert val[0]['reduce_zero_label'] is False


def test_reduce_zero_label_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"reduce_zero_label must be False "
                       r"\(label 0 is 'sky'"):
        _dataset(str(tmp_path), reduce_zero_label=True)


def test_reads_real_images():
    if not osp.isdir(SHARED):
        pytest.skip(f'Stanford Background is not at {SHARED}: the Stanford '
                    'Background Dataset (Gould et al., ICCV 2009, research '
                    'use only) in mmseg\'s layout (images/, annotations/, '
                    'unknown as 255); its README in the shared folder says '
                    'how the copy was made')
    train, val = _dataset(SHARED), _dataset(SHARED, 'val')
    assert (len(train), len(val)) == (472, 100)
    names = sorted(osp.basename(p)[:-4] for p in glob.glob(
        osp.join(SHARED, 'images', 'val', '*.jpg')))
    portraits = 0
    for index in (0, 25, 50, 75, 99):
        sample = val[index]
        height, width = sample['img'].shape[:2]
        assert max(height, width) == 320
        portraits += height > width
        labels = sample['gt_seg_map']
        assert labels.shape == (height, width)
        assert set(np.unique(labels)) <= set(range(8)) | {255}
        assert len(np.unique(labels)) >= 2  # a scene, not a blank
        assert osp.basename(sample['img_path'])[:-4] == names[index]


TINY = '''
_base_ = [{config!r}]
crop_size = (64, 64)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(img_size=crop_size, embed_dims=32, num_layers=4,
                  num_heads=2),
    decode_head=dict(in_channels=32, channels=32, num_heads=2,
                     embed_dims=32, num_layers=1))
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(serialize_data=False, pipeline=[
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='PackSegInputs')]))
val_dataloader = dict(num_workers=0, persistent_workers=False,
                      dataset=dict(serialize_data=False))
test_dataloader = val_dataloader
'''


@pytest.mark.slow
def test_stanford_bg_benchmark_end_to_end(tmp_path):
    """--dataset stanford_bg on a generated tree: train, evaluate at the
    native length and at 2x through the test pipeline's Resize, report,
    defaults."""
    from ailurus_mm.benchmarks.accuracy.data import STANFORD_BG
    from ailurus_mm.benchmarks.accuracy.report import read_csv
    from ailurus_mm.benchmarks.cli import accuracy_main
    from ailurus_mm.testing import make_stanford_bg
    from ailurus_mm.zoo import find_config

    root = make_stanford_bg(str(tmp_path / 'sbg'), num_train=4, num_val=3,
                            size=(120, 160))
    config = tmp_path / 'tiny.py'
    config.write_text(TINY.format(config=find_config(STANFORD_BG.config)))
    out = tmp_path / 'out'
    summary = accuracy_main([
        '--dataset', 'stanford_bg', '--data-root', root, '--out-dir',
        str(out), '--config', str(config), '--iters', '2', '--presets',
        'dpc_cover', 'grid', '--keeps', '0.5', '0.25', '--prop-attn', 'on',
        '--no-finetune'])
    rows = read_csv(str(out / 'accuracy.csv'))
    # 160x120 in the 320x240 pipeline: 320x240 (20x15 tokens); 2x:
    # 640x480 (40x30); a portrait image is resized within the same box
    assert [r.tokens for r in rows if r.is_vanilla] == [300, 1200]
    assert list(dict.fromkeys(r.setting for r in rows)) == [
        'vanilla', 'dpc_cover', 'grid']
    for row in rows:
        assert set(row.class_iou) == set(STANFORD_BG.focus)
    markdown = (out / 'accuracy.md').read_text()
    assert 'Stanford Background, a small ViT trained here' in markdown
    assert summary['rule'] == {'2x': 0.5, '1x': 1.0}
    assert (out / STANFORD_BG.checkpoint).is_file()
