"""The zoo's datasets: mmseg's own dataset classes and pipelines, as the real
configs set them, on tiny generated datasets in each dataset's real layout;
then one training iteration (fine-tuning config, from a vanilla checkpoint)
and one evaluation (no-fine-tuning config) through tools/train.py and
tools/test.py per dataset."""
import os.path as osp
import re

import numpy as np
import pytest
import torch

from conftest import CONFIGS, run_tool_here, write_tiny_config

pytestmark = pytest.mark.usefixtures('fast_config_parsing')

SEGMENTER = osp.join(CONFIGS, 'segmenter')
# Per dataset: fixture of the generated root, dataset class, classes of
# the head, reduce_zero_label, train/val images, crop, the ViT-B configs.
DATASETS = {
    'ade20k': dict(
        root='ade20k_root', type='ADE20KDataset', classes=150,
        reduce_zero_label=True, num_train=4, num_val=2, crop=512,
        vanilla='mmseg::segmenter/segmenter_vit-b_mask_8xb1-160k_'
        'ade20k-512x512.py',
        no_ft='ailurus_segmenter_vit-b_mask_8xb1-160k_ade20k-512x512.py',
        ft='ailurus-ft_segmenter_vit-b_mask_8xb1-40k_ade20k-512x512.py'),
    'cityscapes': dict(
        root='cityscapes_root', type='CityscapesDataset', classes=19,
        reduce_zero_label=False, num_train=4, num_val=2, crop=768,
        vanilla=osp.join(SEGMENTER, 'segmenter_vit-b_mask_8xb1-80k_'
                         'cityscapes-768x768.py'),
        no_ft='ailurus_segmenter_vit-b_mask_8xb1-80k_cityscapes-768x768.py',
        ft='ailurus-ft_segmenter_vit-b_mask_8xb1-20k_cityscapes-768x768.py'),
    'pascal-context': dict(
        root='pascal_context_root', type='PascalContextDataset', classes=60,
        reduce_zero_label=False, num_train=4, num_val=2, crop=480,
        vanilla=osp.join(SEGMENTER, 'segmenter_vit-b_mask_8xb2-80k_'
                         'pascal-context-480x480.py'),
        no_ft='ailurus_segmenter_vit-b_mask_8xb2-80k_'
        'pascal-context-480x480.py',
        ft='ailurus-ft_segmenter_vit-b_mask_8xb2-20k_'
        'pascal-context-480x480.py'),
    'pascal-context-59': dict(
        root='pascal_context_root', type='PascalContextDataset59',
        classes=59, reduce_zero_label=True, num_train=4, num_val=2,
        crop=480,
        vanilla=osp.join(SEGMENTER, 'segmenter_vit-b_mask_8xb2-80k_'
                         'pascal-context-59-480x480.py'),
        no_ft='ailurus_segmenter_vit-b_mask_8xb2-80k_'
        'pascal-context-59-480x480.py',
        ft='ailurus-ft_segmenter_vit-b_mask_8xb2-20k_'
        'pascal-context-59-480x480.py'),
}
# The three datasets of the paper (Pascal Context in its 60-class setting)
END_TO_END = ['ade20k', 'cityscapes', 'pascal-context']


def build_dataset(config: str, split: str, data_root: str):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS as REGISTRY

    cfg = Config.fromfile(osp.join(SEGMENTER, config))
    dataset_cfg = cfg[f'{split}_dataloader'].dataset
    dataset_cfg.data_root = data_root
    init_default_scope('mmseg')
    return cfg, REGISTRY.build(dataset_cfg)


def expected_labels(label_file: str, reduce_zero_label: bool) -> np.ndarray:
    """What mmseg should make of a label file on disk."""
    import cv2
    label = cv2.imread(label_file, cv2.IMREAD_UNCHANGED).astype(np.int64)
    if reduce_zero_label:
        label = np.where(label == 0, 255, label - 1)
    return label


@pytest.mark.parametrize('name', list(DATASETS))
def test_real_pipelines_load_generated_dataset(name, request):
    spec = DATASETS[name]
    data_root = request.getfixturevalue(spec['root'])

    cfg, train = build_dataset(spec['no_ft'], 'train', data_root)
    assert type(train).__name__ == spec['type']
    assert len(train.metainfo['classes']) == spec['classes'] == \
        cfg.model.decode_head.num_classes
    assert len(train) == spec['num_train']
    np.random.seed(0)  # mmcv's random transforms draw from numpy
    sizes = []
    for index in range(len(train)):
        sample = train[index]
        # Random resize, then a crop of at most crop x crop (padding to
        # the crop happens later, in the data preprocessor).
        assert sample['inputs'].shape[0] == 3
        sizes += list(sample['inputs'].shape[1:])
        gt = sample['data_samples'].gt_sem_seg.data
        assert gt.shape[1:] == sample['inputs'].shape[1:]
        labels = set(gt.unique().tolist())
        assert labels <= set(range(spec['classes'])) | {255}
    assert max(sizes) == spec['crop']

    _, val = build_dataset(spec['no_ft'], 'val', data_root)
    assert len(val) == spec['num_val']
    for index in range(len(val)):
        info = val.get_data_info(index)
        gt = val[index]['data_samples'].gt_sem_seg.data[0].numpy()
        expected = expected_labels(info['seg_map_path'],
                                   spec['reduce_zero_label'])
        np.testing.assert_array_equal(gt, expected)


def test_pascal_context_reads_only_split_files(pascal_context_root):
    _, train = build_dataset(DATASETS['pascal-context']['no_ft'], 'train',
                             pascal_context_root)
    _, val = build_dataset(DATASETS['pascal-context']['no_ft'], 'val',
                           pascal_context_root)
    with open(osp.join(pascal_context_root, 'ImageSets',
                       'SegmentationContext', 'train.txt')) as f:
        listed = f.read().split()
    images = [osp.basename(train.get_data_info(i)['img_path'])
              for i in range(len(train))]
    assert images == [name + '.jpg' for name in listed]
    # The generator leaves one image in no split, as VOC2010 does.
    val_images = {osp.basename(val.get_data_info(i)['img_path'])
                  for i in range(len(val))}
    assert '2010_000000.jpg' not in set(images) | val_images
    assert osp.isfile(osp.join(pascal_context_root, 'JPEGImages',
                               '2010_000000.jpg'))


def test_cityscapes_reads_train_ids_of_every_city(cityscapes_root):
    _, train = build_dataset(DATASETS['cityscapes']['no_ft'], 'train',
                             cityscapes_root)
    infos = [train.get_data_info(i) for i in range(len(train))]
    assert {osp.basename(osp.dirname(i['img_path']))
            for i in infos} == {'aachen', 'bochum'}
    assert all(i['seg_map_path'].endswith('_gtFine_labelTrainIds.png')
               and '/gtFine/train/' in i['seg_map_path'] for i in infos)


def tiny_vanilla_checkpoint(path: str, config: str) -> str:
    """A randomly initialised tiny vanilla model, saved as mmseg saves."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    init_default_scope('mmseg')
    model = MODELS.build(Config.fromfile(config).model)
    model.init_weights()
    torch.save({'meta': {}, 'state_dict': model.state_dict()}, path)
    return path


@pytest.mark.parametrize('name', END_TO_END)
@pytest.mark.slow
def test_finetune_one_iteration_and_evaluate(name, request, tmp_path,
                                             capfd):
    spec = DATASETS[name]
    data_root = request.getfixturevalue(spec['root'])
    tiny = dict(data_root=data_root,
                reduce_zero_label=spec['reduce_zero_label'])
    vanilla = tiny_vanilla_checkpoint(
        str(tmp_path / 'vanilla.pth'),
        write_tiny_config(str(tmp_path / 'vanilla.py'), spec['vanilla'],
                          **tiny))

    # Fine-tuning config: starts from the vanilla checkpoint (load_from,
    # checked strictly by tools/train.py), one iteration with AiluRus.
    ft = write_tiny_config(
        str(tmp_path / 'ft.py'), osp.join(SEGMENTER, spec['ft']), iters=1,
        extra=f'load_from = {vanilla!r}\n', **tiny)
    out = run_tool_here('train', [ft, '--work-dir', tmp_path / 'ft'], capfd)
    assert f'Load checkpoint from {vanilla}' in out
    assert 'do not match exactly' not in out
    assert 'Iter(train) [1/1]' in out
    assert (tmp_path / 'ft' / 'iter_1.pth').is_file()

    # No-fine-tuning config: evaluates the vanilla checkpoint as it is.
    no_ft = write_tiny_config(str(tmp_path / 'no_ft.py'),
                              osp.join(SEGMENTER, spec['no_ft']), **tiny)
    out = run_tool_here('test', [no_ft, vanilla, '--no-finetune',
                                 '--work-dir', tmp_path / 'test'], capfd)
    num_val = spec['num_val']
    assert f'Iter(test) [{num_val}/{num_val}]' in out
    found = re.findall(r'mIoU: ([0-9.]+)', out)
    assert found, out[-3000:]
    # mmengine's own Runner, without our tool or hook, on the same files
    from mmengine.config import Config
    from mmengine.runner import Runner
    cfg = Config.fromfile(no_ft)
    cfg.work_dir, cfg.load_from = str(tmp_path / 'plain'), vanilla
    expected = Runner.from_cfg(cfg).test()['mIoU']
    assert float(found[-1]) == pytest.approx(expected, abs=0.01)


def test_placeholder_load_from_is_explained(tmp_path, monkeypatch,
                                            cityscapes_root):
    from ailurus_mm.launch import run

    monkeypatch.chdir(tmp_path)  # no checkpoints/ folder here
    config = osp.join(SEGMENTER, DATASETS['cityscapes']['ft'])
    with pytest.raises(
            FileNotFoundError,
            match=r"load_from='checkpoints/segmenter_vit-b_mask_8xb1-80k_"
            r"cityscapes-768x768\.pth' does not exist\. A fine-tuning config "
            r'starts from a vanilla checkpoint of its _base_ config'):
        run('train', [
            config, '--work-dir', str(tmp_path / 'w'), '--cfg-options',
            f'train_dataloader.dataset.data_root={cityscapes_root}',
            f'val_dataloader.dataset.data_root={cityscapes_root}'])
