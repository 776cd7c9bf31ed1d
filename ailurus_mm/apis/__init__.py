"""Functions behind the tools: checkpoint reading and strict loading, the
checkpoint converter, config loading, train and test."""
from .checkpoint import (CheckpointMismatchError, CheckpointReadError,
                         NotRunnerCheckpointError, allow_mmengine_checkpoints,
                         check_state_dict, load_model_checkpoint,
                         read_checkpoint)

__all__ = [
    'CheckpointMismatchError', 'CheckpointReadError',
    'NotRunnerCheckpointError', 'allow_mmengine_checkpoints',
    'check_state_dict', 'load_model_checkpoint', 'read_checkpoint'
]
