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

mmcv's CPU kernels (``nms``, ``RoIAlign``) take fp32 only, and box
coordinates decoded in bf16 lose whole pixels, so for mmdet's detectors
name the submodules to autocast instead: each runs under autocast and
hands fp32 tensors on, and everything between them (box decoding, NMS,
RoI pooling, target assignment) stays fp32:

    optim_wrapper = dict(
        type='ailurus_mm.AutocastOptimWrapper',
        autocast_modules=('backbone', 'neck', 'rpn_head',
                          'roi_head.bbox_head', 'roi_head.mask_head'),
        optimizer=dict(type='AdamW', lr=1e-4))
"""
import contextlib
from typing import Any, Callable, Iterator, Optional, Sequence

import torch
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapper
from torch import nn

from ailurus_mm.registry import OPTIM_WRAPPERS


def _to_float(value: Any) -> Any:
    """``value`` with its bf16/fp16 tensors (in tuples, lists and dicts,
    however nested) cast to fp32."""
    if isinstance(value, torch.Tensor):
        return value.float() if value.dtype in (torch.bfloat16,
                                                torch.float16) else value
    if isinstance(value, (tuple, list)):
        return type(value)(_to_float(v) for v in value)
    if isinstance(value, dict):
        return type(value)((k, _to_float(v)) for k, v in value.items())
    return value


def _autocast_forward(forward: Callable, device_type: str,
                      dtype: torch.dtype) -> Callable:
    def autocast_forward(*args, **kwargs):
        with torch.autocast(device_type, dtype=dtype):
            outputs = forward(*args, **kwargs)
        return _to_float(outputs)

    return autocast_forward


@OPTIM_WRAPPERS.register_module()
class AutocastOptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose forward pass runs under ``torch.autocast``.

    Args:
        dtype: The autocast dtype: ``'bfloat16'`` (the only one that needs
            no loss scaling; for fp16 on a GPU use mmengine's
            ``AmpOptimWrapper``).
        autocast_modules: Names of submodules (``model.get_submodule``
            paths, e.g. ``'roi_head.mask_head'``) whose forward alone runs
            under autocast, their outputs cast back to fp32; ``None`` (the
            default): the whole forward pass.
        **kwargs: Every argument of mmengine's ``OptimWrapper``.
    """

    def __init__(self,
                 dtype: str = 'bfloat16',
                 autocast_modules: Optional[Sequence[str]] = None,
                 **kwargs) -> None:
        if dtype != 'bfloat16':
            raise ValueError(
                "AutocastOptimWrapper: dtype must be 'bfloat16' (no loss "
                f'scaling); got {dtype!r}. For fp16 on a GPU use '
                "mmengine's AmpOptimWrapper (--amp)")
        if isinstance(autocast_modules, str):
            raise TypeError('AutocastOptimWrapper: autocast_modules must be '
                            f'a sequence of names, got {autocast_modules!r}')
        super().__init__(**kwargs)
        self.cast_dtype = torch.bfloat16
        self.autocast_modules = None if autocast_modules is None else tuple(
            autocast_modules)

    @contextlib.contextmanager
    def optim_context(self, model: nn.Module) -> Iterator[None]:
        device_type = next(model.parameters()).device.type
        if self.autocast_modules is None:
            with super().optim_context(model), torch.autocast(
                    device_type, dtype=self.cast_dtype):
                yield
            return
        inner = model.module if is_model_wrapper(model) else model
        modules = []
        for name in self.autocast_modules:
            try:
                modules.append(inner.get_submodule(name))
            except AttributeError as error:
                raise ValueError(
                    f'AutocastOptimWrapper: autocast_modules names {name!r}, '
                    f'which {type(inner).__name__} does not have') from error
        # The forward of each module is replaced for this forward pass only
        # (an instance attribute over the class's method), then restored.
        saved = [(module, module.__dict__.get('forward'))
                 for module in modules]
        for module in modules:
            module.forward = _autocast_forward(module.forward, device_type,
                                               self.cast_dtype)
        try:
            with super().optim_context(model):
                yield
        finally:
            for module, forward in reversed(saved):
                if forward is None:
                    del module.forward
                else:
                    module.forward = forward
