"""End to end: tools/train.py and tools/test.py on a generated ADE20K-layout
dataset, through mmseg's ADE20KDataset, IoUMetric and mmengine's Runner."""
import os.path as osp
import re

import pytest
import torch

from conftest import CONFIGS, run_tool, run_tool_here, write_tiny_config

AILURUS_B = osp.join(
    CONFIGS, 'segmenter',
    'ailurus_segmenter_vit-b_mask_8xb1-160k_ade20k-512x512.py')
VANILLA_B = 'mmseg::segmenter/segmenter_vit-b_mask_8xb1-160k_ade20k-512x512.py'


def miou(output: str) -> float:
    found = re.findall(r'mIoU: ([0-9.]+)', output)
    assert found, f'no mIoU in the output:\n{output[-3000:]}'
    return float(found[-1])


@pytest.fixture(scope='module')
def vanilla_checkpoint(tmp_path_factory, ade20k_root):
    """A tiny vanilla Segmenter trained by mmseg's own Runner."""
    from mmengine.config import Config
    from mmengine.runner import Runner

    tmp = tmp_path_factory.mktemp('vanilla')
    cfg = Config.fromfile(
        write_tiny_config(str(tmp / 'vanilla.py'), VANILLA_B, ade20k_root))
    cfg.work_dir = str(tmp / 'work')
    cfg.experiment_name = 'vanilla_tiny'
    runner = Runner.from_cfg(cfg)
    runner.train()
    vanilla_metrics = runner.test()
    return str(tmp / 'work' / 'iter_2.pth'), vanilla_metrics


@pytest.fixture(scope='module')
def ailurus_trained(tmp_path_factory, ade20k_root):
    """A tiny AiluRus Segmenter trained 2 iterations by tools/train.py, run
    as a user runs it (a subprocess; the other tests run the tools' code in
    their own process)."""
    tmp = tmp_path_factory.mktemp('ailurus')
    cfg = write_tiny_config(
        str(tmp / 'ailurus.py'), AILURUS_B, ade20k_root,
        backbone=dict(cluster_layer=0, num_clusters=0.5))
    work = tmp / 'work'
    out = run_tool('train', [cfg, '--work-dir', str(work)], cwd=str(tmp))
    return cfg, work, out


@pytest.mark.slow
def test_train_then_test_ailurus(tmp_path, ailurus_trained, capfd):
    cfg, work, train_out = ailurus_trained
    checkpoint = work / 'iter_2.pth'
    assert checkpoint.is_file()

    out = run_tool_here('test', [cfg, checkpoint, '--work-dir',
                                 tmp_path / 'test'], capfd)
    # The Runner validated the model in memory after its last iteration;
    # the tool reads it back from the checkpoint.
    assert miou(out) == miou(train_out)
    assert f'{checkpoint} fits the model strictly' in out
    assert 'was not trained with AiluRusViT' not in out


@pytest.mark.slow
def test_resume_continues_from_runner_checkpoint(tmp_path, ailurus_trained,
                                                 capfd):
    """--resume loads the Runner's checkpoint (optimizer, schedulers, message
    hub) under torch's weights_only loader and goes on from iteration 2."""
    import shutil

    cfg, work, _ = ailurus_trained
    resumed = tmp_path / 'work'
    shutil.copytree(work, resumed)
    out = run_tool_here('train', [
        cfg, '--work-dir', resumed, '--resume', '--cfg-options',
        'train_cfg.max_iters=3', 'param_scheduler.0.end=3'], capfd)
    assert 'resumed epoch: 0, iter: 2' in out
    assert (resumed / 'iter_3.pth').is_file()


@pytest.mark.slow
def test_no_finetune_evaluates_vanilla_checkpoint(tmp_path, ade20k_root,
                                                  vanilla_checkpoint, capfd):
    checkpoint, vanilla_metrics = vanilla_checkpoint
    # Nothing merged: the AiluRus model must score exactly what mmseg's
    # vanilla model scored on the same checkpoint.
    same = write_tiny_config(
        str(tmp_path / 'all_kept.py'), AILURUS_B, ade20k_root,
        backbone=dict(num_clusters=1.0))
    out = run_tool_here('test', [same, checkpoint, '--no-finetune',
                                 '--work-dir', tmp_path / 'a'], capfd)
    assert miou(out) == pytest.approx(vanilla_metrics['mIoU'], abs=0.01)
    assert '--no-finetune: evaluating the vanilla checkpoint' in out

    merged = write_tiny_config(
        str(tmp_path / 'merged.py'), AILURUS_B, ade20k_root,
        backbone=dict(cluster_layer=0, num_clusters=0.5))
    out = run_tool_here('test', [merged, checkpoint, '--no-finetune',
                                 '--work-dir', tmp_path / 'b'], capfd)
    # mmengine's own Runner, without our tool or hook, on the same files
    from mmengine.config import Config
    from mmengine.runner import Runner

    from ailurus_mm.compat import mmengine_checkpoint_globals

    cfg = Config.fromfile(merged)
    cfg.work_dir, cfg.load_from = str(tmp_path / 'plain'), checkpoint
    with mmengine_checkpoint_globals():
        metrics = Runner.from_cfg(cfg).test()
    assert miou(out) == pytest.approx(metrics['mIoU'], abs=0.01)


def test_checkpoint_of_another_model_is_refused(tmp_path, ade20k_root):
    from mmseg.models.backbones import VisionTransformer

    other = VisionTransformer(embed_dims=48, num_layers=2, num_heads=2)
    state_dict = {f'backbone.{k}': v for k, v in other.state_dict().items()}
    state_dict['decode_head.conv_seg.weight'] = torch.zeros(3, 3)
    bad = str(tmp_path / 'other.pth')
    torch.save({'meta': {}, 'state_dict': state_dict}, bad)

    from ailurus_mm.checkpoint import CheckpointMismatchError
    from ailurus_mm.launch import run

    cfg = write_tiny_config(str(tmp_path / 'c.py'), AILURUS_B, ade20k_root)
    with pytest.raises(CheckpointMismatchError) as error:
        run('test', [cfg, bad, '--no-finetune', '--work-dir',
                     str(tmp_path / 'w'), '--cfg-options',
                     'experiment_name=refused'])
    message = str(error.value)
    assert 'missing in the checkpoint' in message
    assert 'missing in the checkpoint (35): backbone.layers.2.attn' in message
    assert 'decode_head.mask_norm.weight' in message
    assert 'unexpected in the checkpoint (1): decode_head.conv_seg.weight' \
        in message
    assert 'backbone.pos_embed: checkpoint (1, 197, 48) vs model ' \
        '(1, 17, 32)' in message


def test_runner_checkpoint_loads_under_weights_only(vanilla_checkpoint):
    from ailurus_mm.checkpoint import read_checkpoint

    checkpoint = read_checkpoint(vanilla_checkpoint[0])
    assert {'meta', 'state_dict', 'message_hub'} <= set(checkpoint)


class _Payload:
    pass


def test_arbitrary_objects_still_refused(tmp_path):
    from ailurus_mm.checkpoint import CheckpointReadError, read_checkpoint

    path = str(tmp_path / 'payload.pth')
    torch.save({'state_dict': {}, 'meta': _Payload()}, path)
    with pytest.raises(CheckpointReadError, match='refused to load'):
        read_checkpoint(path)
