"""ailurus_mm: AiluRus (NeurIPS 2023) token clustering for OpenMMLab ViTs.

The environment is pinned in requirements.txt and installed by
tools/setup_env.sh (mmcv 2.1.0 must be built from source without build
isolation, which a plain ``install_requires`` cannot express).

As OpenMMLab packages do, the configs ship inside the package as
``ailurus_mm/.mim/configs``: copied there when a wheel or an install is
built (``pip install .``), linked there in an editable install (``pip
install -e .``). They live in git only under ``configs/``.
"""
import os
import os.path as osp
import shutil
import sys

from setuptools import find_packages, setup

MIM_FILES = ['configs']


def add_mim_extension() -> None:
    """Put ``configs/`` into ``ailurus_mm/.mim`` (as mmseg's setup.py)."""
    if 'develop' in sys.argv or 'editable_wheel' in sys.argv:
        mode = 'symlink'
    elif any(command in sys.argv for command in (
            'sdist', 'bdist_wheel', 'install', 'build', 'build_py')):
        mode = 'copy'
    else:
        return
    repo = osp.dirname(osp.abspath(__file__))
    mim = osp.join(repo, 'ailurus_mm', '.mim')
    os.makedirs(mim, exist_ok=True)
    for name in MIM_FILES:
        src, dst = osp.join(repo, name), osp.join(mim, name)
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        if mode == 'symlink':
            os.symlink(osp.relpath(src, mim), dst)
        else:
            shutil.copytree(src, dst)


if __name__ == '__main__':
    add_mim_extension()
    setup(
        name='ailurus_mm',
        version='0.2.0',
        description='AiluRus: spatial-aware token clustering that makes '
        'plain-ViT dense prediction in mmsegmentation/mmdetection faster',
        python_requires='>=3.9',
        packages=find_packages(include=['ailurus_mm', 'ailurus_mm.*']),
        package_data={
            'ailurus_mm': ['py.typed', 'checkpoints/*.pth',
                           '.mim/configs/*.py',
                           '.mim/configs/*/*.py', '.mim/configs/*.md',
                           '.mim/configs/*/*.md']
        },
        install_requires=[
            'torch>=2.0', 'mmengine>=0.10,<0.11', 'mmcv>=2.0,<2.2',
            'mmsegmentation>=1.2,<1.3'
        ],
        extras_require={
            'det': ['mmdet>=3.3,<3.4'],
            'deploy': ['onnx>=1.16,<1.18', 'onnxruntime>=1.18,<1.21'],
            'tests': ['pytest', 'pytest-xdist']
        },
        license='Apache-2.0',
        zip_safe=False,
    )
