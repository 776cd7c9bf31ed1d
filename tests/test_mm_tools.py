"""mmseg's and mmdet's own tools (``<package>/.mim/tools``, what ``mim
train`` runs) on a user's AiluRus config in a folder outside the repo; and
what our tools add on top."""
import importlib.util
import os.path as osp
import re
import subprocess
import sys

import pytest

from conftest import CONFIGS, write_tiny_config

VANILLA_B = 'mmseg::segmenter/segmenter_vit-b_mask_8xb1-160k_ade20k-512x512.py'
DET_AILURUS = osp.join(
    CONFIGS, 'mask_rcnn',
    'ailurus_mask-rcnn_vit-b_simplefpn_8xb2-lsj-1x_coco-1024x1024.py')

# A user's config: mmseg's vanilla Segmenter, AiluRus switched on.
USER_CONFIG = '''
custom_imports = dict(imports=['ailurus_mm.models'],
                      allow_failed_imports=False)
custom_hooks = [dict(type='ailurus_mm.StrictLoadHook')]
model.update(neck=dict(type='TokenRecover'))
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='TestTimeAug', transforms=[
        [dict(type='Resize', scale_factor=r, keep_ratio=True)
         for r in (0.5, 1.0)],
        [dict(type='RandomFlip', prob=0., direction='horizontal'),
         dict(type='RandomFlip', prob=1., direction='horizontal')],
        [dict(type='LoadAnnotations')], [dict(type='PackSegInputs')]])]
'''


def own_tool(package: str, tool: str) -> str:
    spec = importlib.util.find_spec(package)
    path = osp.join(spec.submodule_search_locations[0], '.mim', 'tools',
                    f'{tool}.py')
    assert osp.isfile(path), path
    return path


def run(package: str, tool: str, args, cwd) -> str:
    cmd = [sys.executable, own_tool(package, tool)] + [str(a) for a in args]
    proc = subprocess.run(cmd, cwd=str(cwd), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-6000:]
    return proc.stdout


def mious(output: str):
    return [float(m) for m in re.findall(r'mIoU: ([0-9.]+)', output)]


@pytest.mark.slow
def test_mmseg_own_tools_train_resume_test_tta(tmp_path, ade20k_root):
    cfg = write_tiny_config(
        str(tmp_path / 'user_ailurus.py'), VANILLA_B, ade20k_root,
        backbone=dict(type='AiluRusViT', cluster_layer=0, num_clusters=0.5),
        extra=USER_CONFIG)
    work = tmp_path / 'work'
    out = run('mmseg', 'train', [cfg, '--work-dir', work, '--cfg-options',
                                 'model.backbone.num_clusters=0.25'],
              tmp_path)
    assert 'num_clusters=0.25' in out
    assert (work / 'iter_2.pth').is_file()

    out = run('mmseg', 'train', [
        cfg, '--work-dir', work, '--resume', '--cfg-options',
        'train_cfg.max_iters=3', 'param_scheduler.0.end=3'], tmp_path)
    assert 'resumed epoch: 0, iter: 2' in out
    assert f'{work}/iter_2.pth fits the model strictly' in out
    validated = mious(out)
    assert len(validated) == 1  # at iteration 3, the last one

    out = run('mmseg', 'test', [cfg, work / 'iter_3.pth', '--work-dir',
                                tmp_path / 'test'], tmp_path)
    assert f'{work}/iter_3.pth fits the model strictly' in out
    # the Runner's validation and mmseg's test.py on the saved checkpoint
    assert mious(out) == validated

    out = run('mmseg', 'test', [cfg, work / 'iter_3.pth', '--tta',
                                '--work-dir', tmp_path / 'tta'], tmp_path)
    assert 'Iter(test) [2/2]' in out
    assert len(mious(out)) == 1


def coco_maps(output: str):
    return re.findall(r'coco/bbox_mAP: ([0-9.-]+)', output)


@pytest.mark.slow
def test_mmdet_own_tools_train_and_test(tmp_path):
    from ailurus_mm.testing import make_coco
    from test_detection import write_tiny_det_config

    coco = make_coco(str(tmp_path / 'coco'))
    cfg = write_tiny_det_config(
        str(tmp_path / 'user_det.py'), DET_AILURUS, coco,
        backbone=dict(cluster_layer=0, num_clusters=0.5))
    work = tmp_path / 'work'
    out = run('mmdet', 'train', [cfg, '--work-dir', work, '--auto-scale-lr',
                                 '--cfg-options', 'randomness.seed=0'],
              tmp_path)
    assert 'Epoch(train) [1][2/2]' in out
    validated = coco_maps(out)
    assert len(validated) == 1
    out = run('mmdet', 'test', [cfg, work / 'epoch_1.pth', '--work-dir',
                                tmp_path / 'test'], tmp_path)
    assert f'{work}/epoch_1.pth fits the model strictly' in out
    assert coco_maps(out) == validated


# ------------------------------------------------- what our tools add


def test_our_amp_on_cpu_is_a_clear_message(tmp_path, ade20k_root):
    import torch

    from ailurus_mm.launch import run
    if torch.cuda.is_available():
        pytest.skip('mmengine supports --amp here')
    cfg = write_tiny_config(str(tmp_path / 'c.py'), VANILLA_B, ade20k_root)
    with pytest.raises(SystemExit) as exit_info:
        run('train', [cfg, '--amp', '--work-dir', str(tmp_path / 'w')])
    message = str(exit_info.value.code)
    assert message.startswith("train.py: error: --amp: mmengine's "
                              'AmpOptimWrapper trains in mixed precision on '
                              'a GPU')
    assert 'optim_wrapper.type=ailurus_mm.AutocastOptimWrapper' in message
    assert not (tmp_path / 'w').exists()  # refused before anything ran


def test_our_tta_on_mask_rcnn_is_explained(tmp_path):
    from ailurus_mm.launch import run

    with pytest.raises(SystemExit) as exit_info:
        run('test', [DET_AILURUS, 'unused.pth', '--tta'])
    assert re.match(r"test\.py: error: --tta: MaskRCNN predicts instance "
                    r"masks, and mmdet 3\.3's DetTTAModel merges boxes only",
                    str(exit_info.value.code))


def test_our_tta_on_a_box_detector_goes_to_mmdet():
    """Without a mask head, --tta is mmdet's to handle: not refused."""
    import argparse

    from mmengine.config import Config

    from ailurus_mm.launch import check_request

    cfg = Config.fromfile(DET_AILURUS)
    args = argparse.Namespace(tta=True, out=None, launcher='none')
    with pytest.raises(Exception, match='predicts instance masks'):
        check_request('test', cfg, args)  # the same config with masks
    cfg.model.roi_head.mask_head = None
    assert check_request('test', cfg, args) is None  # not refused


@pytest.mark.parametrize('no_finetune, cpu_distributed', [
    (False, False), (True, False), (False, True)])
def test_the_upstream_tool_runs_a_config_inheriting_the_given_one(
        tmp_path, ade20k_root, no_finetune, cpu_distributed):
    from mmengine.config import Config

    from ailurus_mm.launch import wrapper_config

    given = write_tiny_config(str(tmp_path / 'mine.py'), VANILLA_B,
                              ade20k_root)
    cfg = Config.fromfile(given)
    out = tmp_path / 'generated'
    out.mkdir()
    path = wrapper_config(cfg, given, no_finetune, cpu_distributed,
                          str(out))
    # the same file name, so mmseg's default work dir is the same
    assert osp.basename(path) == 'mine.py'
    generated = Config.fromfile(path)
    assert generated.custom_hooks == [dict(type='ailurus_mm.StrictLoadHook')]
    assert generated.get('no_finetune', False) is no_finetune
    if cpu_distributed:
        assert generated.env_cfg.dist_cfg.backend == 'gloo'
        assert generated.model_wrapper_cfg.device_ids is None
    else:
        assert generated.env_cfg.dist_cfg.backend == 'nccl'
    assert generated.model == cfg.model
    # A config that has the hook and needs nothing else runs as it is.
    ours = Config.fromfile(DET_AILURUS)
    assert wrapper_config(ours, DET_AILURUS, False, False, str(out)) is None


def test_our_tools_run_mmsegs_and_mmdets_own_scripts():
    from mmengine.config import Config

    from ailurus_mm.launch import config_library, upstream_tool

    assert config_library(Config.fromfile(DET_AILURUS)) == 'mmdet'
    for library in ('mmseg', 'mmdet'):
        for tool in ('train', 'test'):
            assert upstream_tool(library, tool) == own_tool(library, tool)
