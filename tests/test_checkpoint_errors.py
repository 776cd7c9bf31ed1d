"""Files that are not checkpoints: every reading path names the file and
says what is wrong, with the underlying error chained."""
import os.path as osp
import pickle

import pytest
import torch

from conftest import CONFIGS, write_tiny_config

AILURUS_B = osp.join(
    CONFIGS, 'segmenter',
    'ailurus_segmenter_vit-b_mask_8xb1-160k_ade20k-512x512.py')


class _Payload:
    pass


def _empty(path):
    open(path, 'wb').close()


def _text(path):
    with open(path, 'w') as f:
        f.write('this is a README, not weights\n')


def _truncated_zip(path):
    torch.save({'state_dict': {'w': torch.zeros(1000)}}, path)
    with open(path, 'rb') as f:
        data = f.read()
    with open(path, 'wb') as f:
        f.write(data[:len(data) // 2])


def _truncated_pickle(path):
    torch.save({'state_dict': {'w': torch.zeros(1000)}}, path,
               _use_new_zipfile_serialization=False)
    with open(path, 'rb') as f:
        data = f.read()
    with open(path, 'wb') as f:
        f.write(data[:40])


def _unsafe(path):
    torch.save({'state_dict': {}, 'meta': _Payload()}, path)


BROKEN = {
    'empty': (_empty, r'is empty \(0 bytes\)', None),
    'text': (_text, r"is not a torch checkpoint: it starts with b'this'",
             None),
    'truncated_zip': (_truncated_zip, r'is truncated or corrupt', None),
    'truncated_pickle': (_truncated_pickle, r'is truncated or corrupt',
                         None),
    'unsafe': (_unsafe, r'refused to load \S*_Payload, which is not allowed '
               r'when loading with torch weights_only=True',
               pickle.UnpicklingError),
}


@pytest.mark.parametrize('kind', list(BROKEN))
def test_read_checkpoint_names_file_and_problem(tmp_path, kind):
    from ailurus_mm.checkpoint import CheckpointReadError, read_checkpoint

    make, match, cause = BROKEN[kind]
    path = str(tmp_path / f'{kind}.pth')
    make(path)
    with pytest.raises(CheckpointReadError, match=match) as error:
        read_checkpoint(path)
    assert str(error.value).startswith(path)
    assert error.value.__cause__ is not None
    if cause is not None:
        assert isinstance(error.value.__cause__, cause)


def test_missing_checkpoint_is_named(tmp_path):
    from ailurus_mm.checkpoint import read_checkpoint

    path = str(tmp_path / 'nowhere.pth')
    with pytest.raises(FileNotFoundError, match=f'checkpoint {path} does '
                       'not exist'):
        read_checkpoint(path)


def test_non_dict_checkpoint_is_named(tmp_path):
    from ailurus_mm.checkpoint import CheckpointReadError, read_checkpoint

    path = str(tmp_path / 'tensor.pth')
    torch.save(torch.zeros(3), path)
    with pytest.raises(CheckpointReadError,
                       match=r'tensor\.pth holds a Tensor, not a checkpoint'):
        read_checkpoint(path)


def test_converter_reads_through_the_same_errors(tmp_path):
    from ailurus_mm.checkpoint import CheckpointReadError
    from ailurus_mm.weights import convert_checkpoint

    src = str(tmp_path / 'official.pth')
    _empty(src)
    with pytest.raises(CheckpointReadError, match='official.pth is empty'):
        convert_checkpoint(src, str(tmp_path / 'out.pth'))


# -------------------------------------------- through the Runner and the hook


@pytest.fixture(scope='module')
def tiny_cfg(tmp_path_factory, ade20k_root):
    tmp = tmp_path_factory.mktemp('broken')
    return write_tiny_config(str(tmp / 'tiny.py'), AILURUS_B, ade20k_root,
                             iters=1)


def _runner_cfg(cfg_path, work_dir, **options):
    from mmengine.config import Config

    cfg = Config.fromfile(cfg_path)
    cfg.work_dir = str(work_dir)
    cfg.merge_from_dict(options)
    return cfg


def _runner(cfg_path, work_dir, **options):
    from mmengine.config import Config
    from mmengine.runner import Runner

    from ailurus_mm.zoo import enable_strict_loading

    cfg = enable_strict_loading(Config.fromfile(cfg_path))
    cfg.work_dir = str(work_dir)
    cfg.merge_from_dict(options)
    return Runner.from_cfg(cfg)


@pytest.mark.parametrize('kind', ['empty', 'text', 'unsafe'])
def test_test_checkpoint_errors_name_the_file(tmp_path, tiny_cfg, kind):
    """What tools/test.py (and mmseg's test.py with the hook) read."""
    from ailurus_mm.checkpoint import CheckpointReadError

    make, match, _ = BROKEN[kind]
    path = str(tmp_path / f'{kind}.pth')
    make(path)
    runner = _runner(tiny_cfg, tmp_path / 'w', load_from=path,
                     experiment_name=f'test_{kind}')
    with pytest.raises(CheckpointReadError, match=match) as error:
        runner.test()
    assert path in str(error.value)
    assert error.value.__cause__ is not None


@pytest.mark.parametrize('resume', [False, True])
def test_train_checkpoint_errors_name_the_file(tmp_path, tiny_cfg, resume):
    """load_from of a fine-tuning run, and the checkpoint of --resume."""
    from ailurus_mm.checkpoint import CheckpointReadError

    path = str(tmp_path / 'empty.pth')
    _empty(path)
    runner = _runner(tiny_cfg, tmp_path / 'w', load_from=path, resume=resume,
                     experiment_name=f'train_{resume}')
    with pytest.raises(CheckpointReadError,
                       match=f'{path} is empty') as error:
        runner.train()
    assert error.value.__cause__ is not None


def test_our_test_tool_names_a_text_checkpoint(tmp_path, tiny_cfg):
    from ailurus_mm.checkpoint import CheckpointReadError
    from ailurus_mm.launch import run

    path = str(tmp_path / 'notes.pth')
    _text(path)
    with pytest.raises(CheckpointReadError,
                       match=f'{path} is not a torch checkpoint'):
        run('test', [tiny_cfg, path, '--work-dir', str(tmp_path / 'w')])


def test_a_directory_is_not_said_to_be_missing(tmp_path):
    from ailurus_mm.checkpoint import CheckpointReadError, read_checkpoint

    with pytest.raises(CheckpointReadError,
                       match=f'{tmp_path} is a directory, not a checkpoint '
                       'file'):
        read_checkpoint(str(tmp_path))


@pytest.mark.parametrize('payload, match', [
    ({'state_dict': [1, 2]}, r"its 'state_dict' is a list \(\[1, 2\]\), "
     r'expected a dict of parameter names to tensors'),
    ({'state_dict': {0: torch.zeros(1)}}, r"its 'state_dict' has keys that "
     r'are not parameter names: \[0\]'),
    ([torch.zeros(1)], r'holds a list, not a checkpoint'),
])
def test_what_a_checkpoint_holds_is_named(tmp_path, tiny_cfg, payload,
                                          match):
    from ailurus_mm.checkpoint import CheckpointReadError

    path = str(tmp_path / 'odd.pth')
    torch.save(payload, path)
    runner = _runner(tiny_cfg, tmp_path / 'w', load_from=path)
    with pytest.raises(CheckpointReadError, match=match):
        runner.test()


def test_a_value_that_is_not_a_tensor_is_a_mismatch(tmp_path, tiny_cfg):
    """mmengine skips such a parameter silently (it would keep its random
    initialisation); the hook refuses the checkpoint, naming the key."""
    from mmengine.runner import Runner

    from ailurus_mm.checkpoint import CheckpointMismatchError
    from ailurus_mm.launch import run

    model = Runner.from_cfg(_runner_cfg(tiny_cfg, tmp_path / 'a')).model
    state_dict = dict(model.state_dict())
    state_dict['backbone.cls_token'] = 'oops'
    path = str(tmp_path / 'oops.pth')
    torch.save({'state_dict': state_dict, 'meta': {}}, path)
    match = (r"not tensors \(1\): backbone\.cls_token: checkpoint holds a "
             r"str \('oops'\), not a tensor")
    with pytest.raises(CheckpointMismatchError, match=match):
        run('test', [tiny_cfg, path, '--no-finetune', '--work-dir',
                     str(tmp_path / 'w')])


@pytest.mark.parametrize('mode,resume,match', [
    ('test', False, r'checkpoint \S+nowhere\.pth does not exist'),
    ('train', True, r'checkpoint \S+nowhere\.pth to resume from does not '
     r'exist'),
])
def test_missing_checkpoint_is_named_by_the_hook(tmp_path, tiny_cfg, mode,
                                                 resume, match):
    path = str(tmp_path / 'nowhere.pth')
    runner = _runner(tiny_cfg, tmp_path / 'w', load_from=path, resume=resume,
                     experiment_name=f'missing_{mode}')
    with pytest.raises(FileNotFoundError, match=match):
        getattr(runner, mode)()


# -- values that load silently wrong or crash ---------------------------------
def test_an_integer_tensor_for_a_float_parameter_is_a_mismatch():
    """Loading would cast it silently (35.78 -> 9.34 mIoU in the report):
    a dtype of another kind is named with its key."""
    from torch import nn

    from ailurus_mm.checkpoint import (CheckpointMismatchError,
                                       check_state_dict)

    model = nn.Linear(2, 2)
    state = {'weight': torch.zeros(2, 2, dtype=torch.int64),
             'bias': torch.zeros(2, dtype=torch.float16)}  # a float: fine
    with pytest.raises(CheckpointMismatchError,
                       match=r'shape or dtype mismatch \(1\): weight: '
                       r'checkpoint torch.int64 vs model torch.float32'):
        check_state_dict(model, state)


def test_benchmark_weights_name_a_value_that_is_not_a_tensor(tmp_path):
    from ailurus_mm.benchmarks.models import load_weights
    from ailurus_mm.checkpoint import CheckpointMismatchError

    path = str(tmp_path / 'odd.pth')
    torch.save({'state_dict': {'w': torch.zeros(1), 'step': 3}}, path)
    with pytest.raises(CheckpointMismatchError,
                       match=r"not tensors \(1\): step: checkpoint holds an? "
                       r"int, not a tensor"):
        load_weights(path)
