"""Datasets mmseg does not ship. Importing this module registers them in
mmseg's ``DATASETS`` registry (``custom_imports`` of the configs)."""
from .camvid import CamVidDataset
from .stanford_bg import StanfordBackgroundDataset

__all__ = ['CamVidDataset', 'StanfordBackgroundDataset']
