"""ailurus_mm: AiluRus (NeurIPS 2023) token clustering for OpenMMLab ViTs.

The environment is pinned in requirements.txt and installed by
tools/setup_env.sh (mmcv 2.1.0 must be built from source without build
isolation, which a plain ``install_requires`` cannot express).
"""
from setuptools import find_packages, setup

setup(
    name='ailurus_mm',
    version='0.1.0',
    description='AiluRus: spatial-aware token clustering that makes plain-ViT '
    'dense prediction in mmsegmentation/mmdetection faster',
    python_requires='>=3.9',
    packages=find_packages(include=['ailurus_mm', 'ailurus_mm.*']),
    install_requires=[
        'torch>=2.0', 'mmengine>=0.10,<0.11', 'mmcv>=2.0,<2.2',
        'mmsegmentation>=1.2,<1.3'
    ],
    extras_require={'det': ['mmdet>=3.3,<3.4'], 'tests': ['pytest']},
    license='Apache-2.0',
)
