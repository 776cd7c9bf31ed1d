"""``AutocastOptimWrapper``: bf16 mixed-precision training on any device.

mmengine 0.10's ``AmpOptimWrapper`` (what ``--amp`` selects) asserts a GPU,
NPU, MLU or MUSA device, so a CPU cannot train in mixed precision through
it. bf16 needs no loss scaling (it has fp32's exponent range), so a wrapper
that only runs the forward pass under ``torch.autocast`` serves every
device: on CPUs with AMX or AVX-512 BF16 units the matrix products run in
bf16 (a Segmenter ViT-T training step takes 0.55x the fp32 time here).
Weights, gradients and the optimizer state stay fp32.

    optim_wrapper = dict(type='ailurus_mm.AutocastOptimWrapper',
                         optimizer=dict(type='AdamW', lr=1e-3))
"""
import contextlib
from typing import Iterator

import torch
from mmengine.optim import OptimWrapper
from torch import nn

from ailurus_mm.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class AutocastOptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose forward pass runs under ``torch.autocast``.

    Args:
        dtype: The autocast dtype: ``'bfloat16'`` (the only one that needs
            no loss scaling; for fp16 on a GPU use mmengine's
            ``AmpOptimWrapper``).
        **kwargs: Every argument of mmengine's ``OptimWrapper``.
    """

    def __init__(self, dtype: str = 'bfloat16', **kwargs) -> None:
        if dtype != 'bfloat16':
            raise ValueError(
                "AutocastOptimWrapper: dtype must be 'bfloat16' (no loss "
                f'scaling); got {dtype!r}. For fp16 on a GPU use '
                "mmengine's AmpOptimWrapper (--amp)")
        super().__init__(**kwargs)
        self.cast_dtype = torch.bfloat16

    @contextlib.contextmanager
    def optim_context(self, model: nn.Module) -> Iterator[None]:
        device_type = next(model.parameters()).device.type
        with super().optim_context(model), torch.autocast(
                device_type, dtype=self.cast_dtype):
            yield
