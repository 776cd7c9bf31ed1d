"""ONNX Runtime against PyTorch: the same answers, and the speed-up kept.

- :func:`agreement`: a config's vanilla model and its AiluRus version,
  each exported (:mod:`ailurus_mm.deploy`) and run by ONNX Runtime (CPU)
  on real validation images, against PyTorch: pixel agreement of the
  predictions and the largest logit difference;
- :func:`onnx_speed`: vanilla and AiluRus ONNX models timed in one process
  (interleaved, the minimum of the runs), beside the same two PyTorch
  modules, so both speed-ups come from one machine state.

    python -m ailurus_mm.benchmarks.onnx_runtime --dataset camvid \\
        --data-root ../shared/camvid --limit 20
    python tools/benchmark.py CONFIG --runtime onnxruntime --threads 2

``onnx`` and ``onnxruntime`` are the ``deploy`` extra
(``pip install -e .[deploy]``); the suite installs them.
"""
import argparse
import os.path as osp
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ailurus_mm.convert import to_ailurus_config
from ailurus_mm.deploy import SegmentorLogits, export_onnx
from .accuracy.data import DATASETS, find_dataset, load_batches
from .models import build_with_weights, load_weights
from .variants import config_variant, make_ideal, variant_model_cfgs
from ailurus_mm.zoo import PACKAGE_DIR


def _session(path: str, threads: int):
    import onnxruntime as ort  # the deploy extra

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(path, options,
                                providers=['CPUExecutionProvider'])


def exported_pair(cfg, checkpoint: Optional[str], shape: Tuple[int, int],
                  folder: str, ideal: bool = False
                  ) -> Dict[str, Tuple[torch.nn.Module, str]]:
    """``{'vanilla': (module, onnx path), 'ailurus': ...}``: the config's
    vanilla model and its AiluRus version (merged decoding if the config
    has it) with one set of weights (``checkpoint``, else random), each
    exported, and as the PyTorch module mmseg runs (``encode_decode``).
    ``ideal``: also ``'ideal'``, the ideal reducer (the AiluRus model's
    token counts at zero clustering cost, :mod:`.variants`)."""
    ailurus = config_variant(cfg.model)
    cfgs = variant_model_cfgs(cfg.model, ('vanilla', ailurus))
    if checkpoint is not None:
        state_dict = load_weights(checkpoint)
    else:
        torch.manual_seed(0)
        from .models import build_model
        state_dict = build_model(cfgs['vanilla']).state_dict()
    pair = {}
    names = [('vanilla', cfgs['vanilla']), ('ailurus', cfgs[ailurus])]
    if ideal:
        names.append(('ideal', cfgs[ailurus]))
    for name, model_cfg in names:
        model = build_with_weights(model_cfg, state_dict,
                                   torch.device('cpu'))
        if name == 'ideal':
            make_ideal(model)
        path = export_onnx(model, shape, osp.join(folder, f'{name}.onnx'))
        # PyTorch as its users run it: mmseg's encode_decode, its resize
        # included (the export resizes by products, the same values)
        pair[name] = (SegmentorLogits(model, shape,
                                      product_resize=False).eval(), path)
    return pair


def agreement(cfg, checkpoint: str, batches: Sequence[Dict],
              threads: int = 1) -> Dict[str, Any]:
    """Pixel agreement and the largest logit difference between ONNX
    Runtime and PyTorch, vanilla and AiluRus, over ``batches`` (one image
    each) of one input size (images of another size are skipped and
    counted).

    Returns:
        ``{'shape', 'images', 'skipped', 'vanilla': {...}, 'ailurus':
        {...}}``, each with ``pixel_agreement`` and ``max_logit_diff``.
    """
    model = build_with_weights(cfg.model, load_weights(checkpoint),
                               torch.device('cpu'))
    inputs = [model.data_preprocessor(b, False)['inputs'] for b in batches]
    shape = tuple(inputs[0].shape[-2:])
    same = [x for x in inputs if tuple(x.shape[-2:]) == shape]
    result: Dict[str, Any] = dict(shape=shape, images=len(same),
                                  skipped=len(inputs) - len(same))
    with tempfile.TemporaryDirectory() as folder:
        pair = exported_pair(cfg, checkpoint, shape, folder)
        for name, (module, path) in pair.items():
            session = _session(path, threads)
            agree, total, diffs = 0, 0, []
            for x in same:
                with torch.no_grad():
                    reference = module(x).numpy()
                got = session.run(None, {'inputs': x.numpy()})[0]
                agree += int((got.argmax(1) == reference.argmax(1)).sum())
                total += reference.shape[0] * reference[0, 0].size
                diffs.append(np.abs(got - reference).max(axis=1).ravel())
            diff = np.concatenate(diffs)
            result[name] = dict(
                pixel_agreement=agree / total,
                max_logit_diff=float(diff.max()),
                # the pixels of a token whose cluster flips on a float
                # near-tie differ by far more than rounding: their share
                share_over_1e3=float((diff > 1e-3).mean()))
    return result


def onnx_speed(cfg, shape: Tuple[int, int], checkpoint: Optional[str] = None,
               threads: int = 2, warmup: int = 1, runs: int = 3
               ) -> Dict[str, Any]:
    """Seconds per image (minimum of ``runs``, interleaved) of vanilla,
    AiluRus and the ideal reducer (the same token counts at zero
    clustering cost), in ONNX Runtime and in PyTorch, and the speed-ups.

    ``speedup_ratio`` is ONNX Runtime's AiluRus speed-up over PyTorch's;
    ``ideal_ratio`` the same for the ideal reducer, the most any reducer
    could keep in that runtime; ``ailurus_over_ideal`` per runtime, what
    the clustering and merge cost on top of it."""
    torch.set_num_threads(threads)
    x = torch.randn(1, 3, *shape, generator=torch.Generator().manual_seed(1))
    with tempfile.TemporaryDirectory() as folder:
        models = exported_pair(cfg, checkpoint, shape, folder, ideal=True)
        calls = {}
        for name, (module, path) in models.items():
            session = _session(path, threads)
            calls[f'onnxruntime/{name}'] = (
                lambda s=session: s.run(None, {'inputs': x.numpy()}))
            calls[f'pytorch/{name}'] = (lambda m=module: m(x))
        times: Dict[str, List[float]] = {name: [] for name in calls}
        with torch.no_grad():
            for step in range(warmup + runs):
                for name, call in calls.items():
                    start = time.perf_counter()
                    call()
                    if step >= warmup:
                        times[name].append(time.perf_counter() - start)
    seconds = {name: min(t) for name, t in times.items()}
    result: Dict[str, Any] = dict(shape=shape, threads=threads, runs=runs,
                                  seconds=seconds)
    for runtime in ('onnxruntime', 'pytorch'):
        for name, key in (('ailurus', 'speedup'), ('ideal', 'ideal_speedup')):
            result[f'{runtime}_{key}'] = (seconds[f'{runtime}/vanilla'] /
                                          seconds[f'{runtime}/{name}'])
        result[f'{runtime}_ailurus_over_ideal'] = (
            seconds[f'{runtime}/ailurus'] / seconds[f'{runtime}/ideal'])
    result['speedup_ratio'] = (result['onnxruntime_speedup'] /
                               result['pytorch_speedup'])
    result['ideal_ratio'] = (result['onnxruntime_ideal_speedup'] /
                             result['pytorch_ideal_speedup'])
    return result


def format_speed(result: Dict[str, Any]) -> str:
    lines = [f"input {result['shape'][0]}x{result['shape'][1]}, "
             f"{result['threads']} threads, min of {result['runs']} runs:",
             '| runtime | vanilla | AiluRus | speed-up | ideal reducer | '
             'its speed-up | AiluRus / ideal time |',
             '| --- | --- | --- | --- | --- | --- | --- |']
    for runtime in ('pytorch', 'onnxruntime'):
        seconds = result['seconds']
        lines.append(
            f"| {runtime} | {seconds[runtime + '/vanilla']:.3f} s | "
            f"{seconds[runtime + '/ailurus']:.3f} s | "
            f"{result[runtime + '_speedup']:.2f}x | "
            f"{seconds[runtime + '/ideal']:.3f} s | "
            f"{result[runtime + '_ideal_speedup']:.2f}x | "
            f"{result[runtime + '_ailurus_over_ideal']:.3f} |")
    lines.append('ONNX Runtime speed-up / PyTorch speed-up: '
                 f"{result['speedup_ratio']:.2f} (the ideal reducer's: "
                 f"{result['ideal_ratio']:.2f})")
    return '\n'.join(lines)


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    """ONNX Runtime against PyTorch on a dataset's validation images with
    its shipped model, at every length."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument('--dataset', choices=tuple(DATASETS),
                        default='camvid')
    parser.add_argument('--data-root')
    parser.add_argument('--checkpoint', help='default: the shipped model')
    parser.add_argument('--limit', type=int, default=20)
    parser.add_argument('--threads', type=int, default=1)
    args = parser.parse_args(argv)
    dataset = find_dataset(args.dataset)
    with tempfile.TemporaryDirectory() as generated:
        root = args.data_root
        if dataset.generated:
            from .common.scenes import make_proxy_ade20k
            root = generated
            make_proxy_ade20k(root, 0, args.limit, 320, 0)
        elif root is None:
            parser.error(f'--dataset {args.dataset} needs --data-root')
        checkpoint = args.checkpoint or osp.join(
            PACKAGE_DIR, 'checkpoints', dataset.checkpoint)
        # The shipped model at AiluRusViT's defaults, merged decoding on.
        cfg = to_ailurus_config(dataset.load_config(root, generated),
                                merged_decode=True)
        results = {}
        for split in dataset.splits:
            batches, _ = load_batches(cfg, split, args.limit)
            results[split.name] = agreement(cfg, checkpoint, batches,
                                            args.threads)
            print(f'{dataset.name} {split.name}: {results[split.name]}',
                  flush=True)
    return results


if __name__ == '__main__':
    main()
