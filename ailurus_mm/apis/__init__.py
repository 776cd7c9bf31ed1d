"""Functions behind the tools: checkpoint loading, train and test."""
from .checkpoint import (CheckpointMismatchError, allow_mmengine_checkpoints,
                         check_state_dict, load_model_checkpoint)

__all__ = [
    'CheckpointMismatchError', 'allow_mmengine_checkpoints',
    'check_state_dict', 'load_model_checkpoint'
]
