"""Datasets mmseg does not ship. Importing this module registers them in
mmseg's ``DATASETS`` registry (``custom_imports`` of the configs)."""
from .camvid import CamVidDataset

__all__ = ['CamVidDataset']
