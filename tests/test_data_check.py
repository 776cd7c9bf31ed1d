"""Bad data named before the long pass (ailurus_mm.datasets.check): every
way a CamVid-layout tree can be wrong gets an error naming the file and
what was expected, from the checker, its command and the benchmark."""
import os
import os.path as osp
import re

import cv2
import numpy as np
import pytest

from ailurus_mm.datasets.check import DatasetTreeError, check_tree
from ailurus_mm.testing import make_camvid


@pytest.fixture
def tree(tmp_path):
    return make_camvid(str(tmp_path / 'camvid'), num_train=2, num_val=2)


def _first(root, kind, split='val'):
    folder = osp.join(root, kind, split)
    return osp.join(folder, sorted(os.listdir(folder))[0])


def _void_as_11(root):
    path = _first(root, 'annotations')
    label = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    label[label == 255] = 11  # as in SegNet's raw CamVid PNGs
    cv2.imwrite(path, label)
    return path, r'label values \[11\] outside the 11 classes \(0-10\) and ' \
        r'void \(255\)'


def _rgb_label(root):
    path = _first(root, 'annotations')
    label = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    cv2.imwrite(path, np.stack([label] * 3, -1))
    return path, r'3 channels, expected one class index per pixel'


def _size_mismatch(root):
    path = _first(root, 'annotations')
    label = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    cv2.imwrite(path, label[:-4])
    return path, r'64x44, its image 64x48'


def _image_without_label(root):
    path = _first(root, 'annotations')
    os.remove(path)
    image = path.replace('annotations', 'images')[:-4] + '.jpg'
    return image, r'no label'


def _label_without_image(root):
    path = _first(root, 'images')
    os.remove(path)
    return path.replace('images', 'annotations')[:-4] + '.png', 'no image'


def _empty_split(root):
    for kind in ('images', 'annotations'):
        folder = osp.join(root, kind, 'val')
        for name in os.listdir(folder):
            os.remove(osp.join(folder, name))
    return osp.join(root, 'images', 'val'), r'0 image/label pairs, at ' \
        r'least 2 needed'


def _upper_case_suffix(root):
    path = _first(root, 'images')
    os.rename(path, path[:-4] + '.JPG')
    return path[:-4] + '.JPG', r"unexpected suffix \(images end with '.jpg'\)"


def _empty_image(root):
    path = _first(root, 'images')
    open(path, 'wb').close()
    return path, r'empty \(0 bytes\)'


def _corrupt_image(root):
    path = _first(root, 'images')
    with open(path, 'wb') as f:
        f.write(b'\xff\xd8\xff\xe0 not a jpeg')
    return path, 'corrupt or not an image OpenCV can decode'


BREAKS = [_void_as_11, _rgb_label, _size_mismatch, _image_without_label,
          _label_without_image, _empty_split, _upper_case_suffix,
          _empty_image, _corrupt_image]


def test_a_good_tree_passes(tree):
    check_tree(tree, ['train', 'val'], 11, min_images={'val': 2})


@pytest.mark.parametrize('brk', BREAKS, ids=lambda f: f.__name__[1:])
def test_every_problem_is_named_with_its_file(tree, brk):
    path, expected = brk(tree)
    with pytest.raises(DatasetTreeError) as error:
        check_tree(tree, ['train', 'val'], 11, min_images={'val': 2})
    assert re.search(re.escape(path) + r'.*' + expected, str(error.value)), \
        str(error.value)


@pytest.mark.parametrize('brk', [_void_as_11, _corrupt_image, _empty_split],
                         ids=lambda f: f.__name__[1:])
def test_the_benchmark_names_it_before_any_work(tree, tmp_path, capsys,
                                                brk):
    from ailurus_mm.benchmarks.cli import accuracy_main

    path, expected = brk(tree)
    out = tmp_path / 'out'
    with pytest.raises(SystemExit) as exit_info:
        accuracy_main(['--dataset', 'camvid', '--data-root', tree,
                       '--out-dir', str(out), '--no-finetune'])
    assert exit_info.value.code == 2
    assert re.search(re.escape(path) + r'.*' + expected,
                     capsys.readouterr().err)
    assert not (out / 'train').exists()  # nothing was trained


def test_the_command_for_dataset_users(tree, capsys):
    from ailurus_mm.datasets.check import main

    main([tree, '--dataset', 'camvid'])
    assert 'is readable and consistent' in capsys.readouterr().out
    _void_as_11(tree)
    with pytest.raises(SystemExit) as exit_info:
        main([tree, '--dataset', 'camvid'])
    assert exit_info.value.code == 1
    assert 'label values [11]' in capsys.readouterr().err
