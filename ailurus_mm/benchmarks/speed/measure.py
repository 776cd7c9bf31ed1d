"""Measurements behind ``tools/benchmark.py``: time, FLOPs, memory, tokens.

Timing follows the field's protocol: batch 1, a fixed input of the given
size, warm-up runs, then timed runs; the models are interleaved run by run
(so a busy machine slows all of them alike) and the minimum is reported. On
CUDA every timed region is synchronised.
"""
import time
from contextlib import contextmanager
from typing import Callable, Dict, Iterator, List, Tuple

import torch
from torch import nn


def synchronize(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def interleaved_times(fns: Dict[str, Callable[[], object]],
                      warmup: int,
                      runs: int,
                      device: torch.device) -> Dict[str, List[float]]:
    """Seconds per call of every function, run one after the other in each
    round (warm-up rounds first, not recorded)."""
    times = {name: [] for name in fns}
    for round_index in range(warmup + runs):
        for name, fn in fns.items():
            synchronize(device)
            start = time.perf_counter()
            fn()
            synchronize(device)
            if round_index >= warmup:
                times[name].append(time.perf_counter() - start)
    return times


class _TensorForward(nn.Module):
    """``model(inputs, mode='tensor')`` as a module, for the FLOP tracer."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs):
        return self.model(inputs, None, mode='tensor')


def _baddbmm_flop_jit(inputs, outputs) -> int:
    from mmengine.analysis.jit_handles import get_shape
    batch, rows, inner = get_shape(inputs[1])
    cols = get_shape(inputs[2])[-1]
    return batch * rows * inner * cols


def _sdpa_flop_jit(inputs, outputs) -> int:
    """``scaled_dot_product_attention``: ``q k^T`` and ``attn v``, counted
    as the two bmm of the explicit path (mmengine has no handle for it)."""
    from mmengine.analysis.jit_handles import get_shape
    query, key, value = (get_shape(inputs[i]) for i in range(3))
    *batch, length_q, dims = query
    length_k, dims_v = key[-2], value[-1]
    num = 1
    for size in batch:
        num *= size
    return num * length_q * length_k * (dims + dims_v)


def count_flops(model: nn.Module, inputs: torch.Tensor) -> int:
    """FLOPs of one tensor-mode forward, counted by mmengine's FlopAnalyzer
    (fvcore convention: one fused multiply-add counts as one FLOP)."""
    from mmengine.analysis import FlopAnalyzer

    analyzer = FlopAnalyzer(_TensorForward(model), (inputs, ))
    # The clustering's distance matmuls are baddbmm, which mmengine has no
    # default handle for; count it as the bmm it contains.
    analyzer.set_op_handle('aten::baddbmm', _baddbmm_flop_jit)
    analyzer.set_op_handle('aten::scaled_dot_product_attention',
                           _sdpa_flop_jit)
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    analyzer.tracer_warnings('none')
    with torch.no_grad():
        return int(analyzer.total())


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@contextmanager
def recorded_tokens(backbones: Dict[str, nn.Module]
                    ) -> Iterator[Dict[str, List[int]]]:
    """Record the sequence length (with the cls token) each layer of each
    backbone receives while the context is open; on exit every list holds
    the counts of the last forward."""
    seen: Dict[str, List[int]] = {name: [] for name in backbones}
    hooks = [
        layer.register_forward_hook(
            lambda module, args, out, name=name: seen[name].append(
                int(args[0].shape[1])))
        for name, backbone in backbones.items() for layer in backbone.layers
    ]
    try:
        yield seen
    finally:
        for hook in hooks:
            hook.remove()
        for name, backbone in backbones.items():
            seen[name][:] = seen[name][-len(backbone.layers):]


def describe_tokens(counts: List[int]) -> str:
    """``[1601, 1601, 1041, ...]`` -> ``'2x1601 + 22x1041'``."""
    groups: List[List[int]] = []
    for count in counts:
        if groups and groups[-1][1] == count:
            groups[-1][0] += 1
        else:
            groups.append([1, count])
    return ' + '.join(f'{n}x{c}' for n, c in groups)


def peak_memory(fn: Callable[[], object], device: torch.device) -> int:
    """Peak bytes allocated by ``fn`` above what was allocated before it.

    CUDA: ``torch.cuda.max_memory_allocated``. CPU: replays the allocation
    events recorded by ``torch.profiler`` with ``profile_memory=True``.
    """
    if device.type == 'cuda':
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU],
                 profile_memory=True) as prof:
        fn()
    # Each op's own (self) allocations net of its own frees, and frees done
    # outside any op ('[memory]' events), in the order they started.
    events = [e for e in prof.events() if e.self_cpu_memory_usage != 0]
    events.sort(key=lambda e: e.time_range.start)
    current = peak = 0
    for event in events:
        current += event.self_cpu_memory_usage
        peak = max(peak, current)
    return peak


def stage_times(backbone: nn.Module, neck: nn.Module, inputs: torch.Tensor,
                warmup: int, runs: int) -> Tuple[float, float]:
    """Minimum seconds of AiluRus's own work in one forward: clustering plus
    merging at ``cluster_layer``, and recovery in ``TokenRecover``, each
    timed alone on the tokens a real forward produces."""
    captured = {}
    layer = backbone.layers[backbone.clustering.cluster_layer]
    hook = layer.register_forward_hook(
        lambda module, args, out: captured.setdefault('x', out))
    try:
        with torch.no_grad():
            outputs = backbone(inputs)
    finally:
        hook.remove()
    x = captured['x']  # cluster_layer is never the last (final_norm) layer
    hw_shape = outputs.hw_shape
    device = inputs.device

    def cluster_merge():
        assignment = backbone.reduce(x, hw_shape)
        if assignment is not None:
            backbone.merge(x, assignment)

    with torch.no_grad():
        times = interleaved_times(
            dict(cluster=cluster_merge, recover=lambda: neck(outputs)),
            warmup, runs, device)
    return min(times['cluster']), min(times['recover'])
