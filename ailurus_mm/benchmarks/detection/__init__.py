"""The detection accuracy benchmark: synthetic COCO scenes, training."""
