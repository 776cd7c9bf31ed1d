"""The data that travels from :class:`AiluRusViT` to :class:`TokenRecover`."""
from typing import List, Optional, Sequence, Tuple, Union

from torch import Tensor

from ailurus_mm.ops import ClusterAssignment

# One backbone output: a map ``[B, C, H, W]`` (or merged tokens
# ``[B, M, C]``), or ``[map_or_tokens, cls_token]`` with
# ``output_cls_token=True``.
Feature = Union[Tensor, List[Tensor]]

_NEEDS_RECOVER = (
    'AiluRusViT returns merged tokens that must be restored to the full grid '
    'before a head can use them: add the neck `dict(type=\'TokenRecover\')` '
    'to the model config (in mmdet, let it wrap the pyramid neck: '
    '`neck=dict(type=\'mmseg.TokenRecover\', neck=dict(type=\'SimpleFPN\', '
    '...))`).')


class AiluRusOutputs:
    """Backbone outputs, some of them merged, plus what restores them.

    Everything :class:`TokenRecover` needs is carried here (no state is kept
    on modules), so activation checkpointing, DDP and batches stay correct.
    Indexing, iterating or taking the length raises a ``TypeError`` with a
    clear message, so a model whose neck is missing fails at its first call
    instead of with a shape error deep in a head.

    Args:
        features: One entry per output index, in order. Entries taken at or
            before ``cluster_layer`` are exactly what mmseg's
            ``VisionTransformer`` returns; later ones hold merged tokens
            ``[B, M, C]`` instead of a map.
        stages: For every entry, 0 if it is not merged, else the clustering
            stage it was taken after (1, or 2 after a ``second_stage``).
        assignments: The assignment of the grid tokens after each stage
            (``assignments[s - 1]`` restores an entry of stage ``s``).
        hw_shape: The patch grid ``(H, W)``.
        detail: Optional ``[B, N, C]`` deviation of every patch token from
            its cluster's mean at clustering time; ``TokenRecover`` adds it
            back to the merged entries (``AiluRusViT(recover_detail=True)``;
            the backbone adds it itself before its final norm, so that
            entry comes on the full grid).
    """

    __slots__ = ('features', 'stages', 'assignments', 'hw_shape', 'detail')

    def __init__(self, features: Sequence[Feature], stages: Sequence[int],
                 assignments: Sequence[ClusterAssignment],
                 hw_shape: Tuple[int, int],
                 detail: Optional[Tensor] = None) -> None:
        if len(features) != len(stages):
            raise ValueError('features and stages must have the same length')
        if any(not 0 <= s <= len(assignments) for s in stages):
            raise ValueError(f'stages {list(stages)} refer to '
                             f'{len(assignments)} assignment(s)')
        self.features = tuple(features)
        self.stages = tuple(int(s) for s in stages)
        self.assignments = tuple(assignments)
        self.hw_shape = tuple(hw_shape)
        self.detail = detail

    @property
    def merged(self) -> Tuple[bool, ...]:
        """For every entry, whether it holds merged tokens."""
        return tuple(s > 0 for s in self.stages)

    @property
    def assignment(self) -> Optional[ClusterAssignment]:
        """The last assignment (``None`` if nothing was merged)."""
        return self.assignments[-1] if self.assignments else None

    def assignment_of(self, index: int) -> Optional[ClusterAssignment]:
        """The assignment that restores entry ``index`` (``None`` if it is
        not merged)."""
        stage = self.stages[index]
        return self.assignments[stage - 1] if stage else None

    def __getitem__(self, item):
        raise TypeError(_NEEDS_RECOVER)

    def __iter__(self):
        raise TypeError(_NEEDS_RECOVER)

    def __len__(self):
        raise TypeError(_NEEDS_RECOVER)

    def __repr__(self) -> str:
        counts = [a.num_clusters for a in self.assignments]
        return (f'{type(self).__name__}(num_features={len(self.features)}, '
                f'stages={self.stages}, hw_shape={self.hw_shape}, '
                f'num_clusters={counts})')
