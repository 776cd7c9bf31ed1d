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
        merged: For every entry, whether it holds merged tokens.
        assignment: The clustering of the grid tokens (``None`` if nothing
            was merged).
        hw_shape: The patch grid ``(H, W)``.
        detail: Optional ``[B, N, C]`` deviation of every patch token from
            its cluster's mean at clustering time; ``TokenRecover`` adds it
            back to the merged entries (``AiluRusViT(recover_detail=True)``;
            the backbone adds it itself before its final norm, so that
            entry comes on the full grid).
    """

    __slots__ = ('features', 'merged', 'assignment', 'hw_shape', 'detail')

    def __init__(self, features: Sequence[Feature], merged: Sequence[bool],
                 assignment: Optional[ClusterAssignment],
                 hw_shape: Tuple[int, int],
                 detail: Optional[Tensor] = None) -> None:
        if len(features) != len(merged):
            raise ValueError('features and merged must have the same length')
        if any(merged) and assignment is None:
            raise ValueError('merged entries need the assignment that '
                             'restores them')
        self.features = tuple(features)
        self.merged = tuple(bool(m) for m in merged)
        self.assignment = assignment
        self.hw_shape = tuple(hw_shape)
        self.detail = detail

    def assignment_of(self, index: int) -> Optional[ClusterAssignment]:
        """The assignment that restores entry ``index`` (``None`` if it is
        not merged)."""
        return self.assignment if self.merged[index] else None

    def __getitem__(self, item):
        raise TypeError(_NEEDS_RECOVER)

    def __iter__(self):
        raise TypeError(_NEEDS_RECOVER)

    def __len__(self):
        raise TypeError(_NEEDS_RECOVER)

    def __repr__(self) -> str:
        count = None if self.assignment is None else \
            self.assignment.num_clusters
        return (f'{type(self).__name__}(num_features={len(self.features)}, '
                f'merged={self.merged}, hw_shape={self.hw_shape}, '
                f'num_clusters={count})')
