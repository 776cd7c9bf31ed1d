"""ONNX export of mmseg segmentors, vanilla or AiluRus, with the speed-up
kept (the merged tokens run through the exported graph).

    python tools/export_onnx.py CONFIG CHECKPOINT --shape 512 512 --out m.onnx

The graph maps a normalised image batch ``[B, 3, H, W]`` (what mmseg's
data preprocessor gives the model) to the decode head's logits resized to
the input, ``[B, K, H, W]``: ``EncoderDecoder.encode_decode``, merged
decoding included. The static shape (batch 1, the given size) is the
baseline; ``dynamic_batch=True`` marks the batch dimension dynamic.

Every registered reducer exports, but ``farthest`` (``M`` sequential
steps) and the windowed density (``window``), which are refused up front
(:func:`check_exportable`). ``dpc_cover`` exports as a static graph: at
most :data:`~ailurus_mm.ops.cover.EXPORT_ROUNDS` suppression rounds and a
window widened by at most :data:`~ailurus_mm.ops.cover.EXPORT_MARGIN`
cells per image, which real images stay within (then the graph computes
PyTorch's clusters; ONNX Runtime's rounding can still swap near-tied
tokens on long sequences, docs/usage.md "Deploy"). ``torch.onnx.export``
(the TorchScript exporter, opset 17) is used: mmdeploy does not install
beside the pinned stack from the registry, and it is not needed for a
segmentor.
"""
import argparse
import os
import os.path as osp
import warnings
from typing import Optional, Tuple

import torch
from mmengine.config import DictAction
from mmengine.model import is_model_wrapper
from torch import Tensor, nn

from ailurus_mm.models import AiluRusViT

# Reducers and knobs whose graph depends on the data in ways a static ONNX
# graph cannot hold: what each one needs.
NOT_EXPORTABLE = {
    'farthest': 'its M - 1 sequential farthest-point steps would be '
    'unrolled into the graph',
}


def check_exportable(model: nn.Module) -> None:
    """Raise ``ValueError`` naming the reducer or knob of ``model`` that
    does not export (before any tracing)."""
    inner = model.module if is_model_wrapper(model) else model
    if not hasattr(inner, 'encode_decode'):
        raise TypeError('ONNX export takes an mmseg segmentor (with '
                        f'encode_decode), got {type(inner).__name__}')
    backbone = getattr(inner, 'backbone', None)
    if not isinstance(backbone, AiluRusViT):
        return
    clustering = backbone.clustering
    if clustering.reducer in NOT_EXPORTABLE:
        raise ValueError(
            f'reducer={clustering.reducer!r} does not export to ONNX: '
            f'{NOT_EXPORTABLE[clustering.reducer]}; export another reducer '
            '(e.g. the default dpc_cover)')
    if clustering.window is not None:
        raise ValueError(
            f'window={clustering.window} does not export to ONNX: the '
            'windowed assignment falls back to all anchors for tokens with '
            'none in their window, a data-dependent number of tokens; '
            'export with window=None')


class SegmentorLogits(nn.Module):
    """``segmentor.encode_decode`` on a fixed input size, as a module of
    one tensor argument (what ``torch.onnx.export`` traces).

    Args:
        segmentor: An mmseg ``EncoderDecoder`` (or AiluRus's).
        shape: The input ``(H, W)``.
    """

    def __init__(self, segmentor: nn.Module, shape: Tuple[int, int]) -> None:
        super().__init__()
        self.segmentor = segmentor
        self.shape = tuple(shape)

    def forward(self, inputs: Tensor) -> Tensor:
        """``[B, 3, H, W]`` normalised images to ``[B, K, H, W]`` logits."""
        metas = [dict(img_shape=self.shape, ori_shape=self.shape,
                      pad_shape=self.shape)] * inputs.shape[0]
        return self.segmentor.encode_decode(inputs, metas)


def export_onnx(model: nn.Module,
                shape: Tuple[int, int],
                out: str,
                opset: int = 17,
                dynamic_batch: bool = False,
                example: Optional[Tensor] = None) -> str:
    """Export ``model`` (an mmseg segmentor, vanilla or AiluRus, in eval
    mode on the CPU) to ONNX.

    Args:
        model: The segmentor.
        shape: Input ``(H, W)``.
        out: The ``.onnx`` file (its folder is created).
        opset: ONNX opset (17 or later).
        dynamic_batch: Mark the batch dimension dynamic.
        example: The traced input (default: a fixed random batch of one).

    Returns:
        ``out``.
    """
    check_exportable(model)
    wrapper = SegmentorLogits(model, shape).eval()
    if example is None:
        example = torch.randn(1, 3, *shape,
                              generator=torch.Generator().manual_seed(0))
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        # The exporter's notes on shapes it fixes: the graph is static.
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        torch.onnx.export(
            wrapper, (example, ), out, opset_version=opset, dynamo=False,
            input_names=['inputs'], output_names=['seg_logits'],
            dynamic_axes={'inputs': {0: 'batch'}, 'seg_logits': {
                0: 'batch'}} if dynamic_batch else None)
    return out


def build_for_export(config: str, checkpoint: str,
                     cfg_options: Optional[dict] = None) -> nn.Module:
    """The segmentor of ``config`` (one of ours by name, or a path) with
    ``checkpoint`` loaded strictly, on the CPU in eval mode."""
    from mmseg.apis import init_model

    from ailurus_mm.checkpoint import load_model_checkpoint
    from ailurus_mm.zoo import load_config

    cfg = load_config(config, cfg_options)
    cfg.model.pretrained = None
    model = init_model(cfg, None, device='cpu')
    load_model_checkpoint(model, checkpoint)
    return model.eval()


def export_main(argv: Optional[list] = None) -> str:
    """``tools/export_onnx.py``."""

    parser = argparse.ArgumentParser(
        description='Export an mmseg segmentor (vanilla or AiluRus) to ONNX: '
        'normalised images [B, 3, H, W] to logits [B, K, H, W]')
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--shape', type=int, nargs=2, required=True,
                        metavar=('H', 'W'))
    parser.add_argument('--out', required=True, help='the .onnx file')
    parser.add_argument('--opset', type=int, default=17)
    parser.add_argument('--dynamic-batch', action='store_true')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace an existing --out')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args(argv)
    if min(args.shape) < 1 or args.opset < 17:
        parser.error(f'--shape must be positive and --opset >= 17, got '
                     f'{args.shape}, {args.opset}')
    if not osp.isfile(args.checkpoint):
        parser.error(f'checkpoint {args.checkpoint} does not exist')
    if osp.exists(args.out) and not args.overwrite:
        parser.error(f'--out {args.out} exists; remove it, write elsewhere '
                     'or pass --overwrite')
    try:
        model = build_for_export(args.config, args.checkpoint,
                                 args.cfg_options)
        check_exportable(model)
    except (ValueError, TypeError, FileNotFoundError) as error:
        parser.error(str(error))
    export_onnx(model, tuple(args.shape), args.out, args.opset,
                args.dynamic_batch)
    print(f'wrote {args.out} ({osp.getsize(args.out) / 2**20:.1f} MB)')
    return args.out
