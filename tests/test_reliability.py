"""Hostile and degenerate inputs at the entry points that other test files
do not cover: malicious pickles in every container of a checkpoint,
images that are NaN, constant, tiny or odd-sized."""
import pickle

import pytest
import torch

from conftest import vit_pair

TINY = dict(img_size=(64, 64), embed_dims=32, num_layers=3, num_heads=2,
            drop_path_rate=0.0)


class _Payload:
    """Unpickling this would run code (``__reduce__``): must be refused."""

    def __reduce__(self):
        return (print, ('pwned', ))


@pytest.mark.parametrize('where', [
    'value', 'meta', 'nested_list', 'message_hub', 'top', 'key_tuple'])
def test_a_payload_anywhere_in_a_checkpoint_is_refused(tmp_path, where):
    from ailurus_mm.checkpoint import CheckpointReadError, read_checkpoint

    payload = _Payload()
    checkpoint = {'state_dict': {'w': torch.zeros(2)}, 'meta': {}}
    if where == 'value':
        checkpoint['state_dict']['w'] = payload
    elif where == 'meta':
        checkpoint['meta']['cfg'] = payload
    elif where == 'nested_list':
        checkpoint['meta']['history'] = [1, [2, {'x': payload}]]
    elif where == 'message_hub':
        checkpoint['message_hub'] = {'log_scalars': payload}
    elif where == 'top':
        checkpoint = payload
    else:
        checkpoint['state_dict'][('w', payload)] = torch.zeros(1)
    path = str(tmp_path / 'evil.pth')
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointReadError,
                       match=r'refused to load \S*print|refused to load') \
            as error:
        read_checkpoint(path)
    assert isinstance(error.value.__cause__, pickle.UnpicklingError)


def _image(kind: str) -> torch.Tensor:
    torch.manual_seed(0)
    if kind == 'nan':
        x = torch.randn(2, 3, 64, 64)
        x[0, :, 10:20, 10:20] = float('nan')
        return x
    if kind == 'constant':
        return torch.full((2, 3, 64, 64), 0.5)
    if kind == 'odd':
        return torch.randn(2, 3, 50, 77)  # not a multiple of the patch
    if kind == 'one_patch':
        return torch.randn(2, 3, 16, 16)
    return torch.randn(2, 3, 64, 64) * 1e4  # 'huge'


@pytest.mark.parametrize('kind', ['nan', 'constant', 'odd', 'one_patch',
                                  'huge'])
@pytest.mark.parametrize('reducer', ['dpc_knn', 'farthest', 'tome'])
def test_degenerate_images_keep_the_cluster_contract(kind, reducer):
    from ailurus_mm.models import TokenRecover

    vanilla, ailurus = vit_pair(TINY, cluster_layer=0, num_clusters=0.5,
                                reducer=reducer)
    images = _image(kind)
    with torch.no_grad():
        outputs = ailurus(images)
        expected = vanilla(images)
    recovered = TokenRecover()(outputs)
    assert [t.shape for t in recovered] == [t.shape for t in expected]
    assignment = outputs.assignment
    if assignment is not None:
        tokens = assignment.index.shape[1]
        assert assignment.sizes.sum(1).tolist() == [tokens] * 2
        assert bool((assignment.sizes > 0).all())
        assert bool((assignment.anchors.diff(dim=1) > 0).all())
    if kind != 'nan':
        assert all(torch.isfinite(t).all() for t in recovered)


def test_smaller_than_a_patch_is_refused_naming_the_size():
    _, ailurus = vit_pair(TINY, cluster_layer=0)
    with pytest.raises(ValueError, match=r'input of size \(8, 40\) is '
                       r'smaller than one patch \(16x16\)'):
        ailurus(torch.randn(1, 3, 8, 40))
