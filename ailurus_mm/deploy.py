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
PyTorch's clusters: near ties are decided on feature differences, not on a
matrix product's rounding, docs/method.md). The logits are resized to the
input by two matrix products (:func:`bilinear_resize`, the same values as
mmseg's ``F.interpolate``; ONNX Runtime's ``Resize`` was several times
slower). ``torch.onnx.export``
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


def bilinear_weights(size_in: int, size_out: int, align_corners: bool,
                     like: Tensor) -> Tensor:
    """The ``[size_out, size_in]`` matrix of ``F.interpolate``'s bilinear
    resize along one axis (no antialiasing): two taps per output, at the
    source coordinates PyTorch's kernel computes (in float32, as it does),
    in ``like``'s dtype and device."""
    out = torch.arange(size_out, dtype=torch.float32)
    if align_corners:
        scale = torch.tensor((size_in - 1) / (size_out - 1)
                             if size_out > 1 else 0.0, dtype=torch.float32)
        source = out * scale
    else:
        scale = torch.tensor(size_in, dtype=torch.float32) / size_out
        source = (scale * (out + 0.5) - 0.5).clamp_min(0)
    low = source.long().clamp_max(size_in - 1)
    high = (low + 1).clamp_max(size_in - 1)
    weight = (source - low).clamp(0, 1)
    matrix = torch.zeros(size_out, size_in, dtype=torch.float32)
    rows = torch.arange(size_out)
    matrix.index_put_((rows, low), 1 - weight, accumulate=True)
    matrix.index_put_((rows, high), weight, accumulate=True)
    return matrix.to(dtype=like.dtype, device=like.device)


def bilinear_resize(x: Tensor, size: Tuple[int, int],
                    align_corners: bool) -> Tensor:
    """``F.interpolate(x, size, mode='bilinear', align_corners=...)`` of
    ``[B, K, h, w]`` as two matrix products, one per axis: the same values
    up to rounding. ONNX Runtime's ``Resize`` of many channels to a large
    image is several times slower than these products (76 of 760 ms of a
    ViT-B 512 AiluRus forward, docs/speed.md)."""
    height, width = x.shape[-2:]
    if (height, width) == tuple(size):
        return x
    rows = bilinear_weights(height, size[0], align_corners, x)
    cols = bilinear_weights(width, size[1], align_corners, x).t()
    # the axis that grows the output less first
    if height * size[1] * (width + size[0]) <= \
            size[0] * width * (height + size[1]):
        return torch.matmul(rows, torch.matmul(x, cols))
    return torch.matmul(torch.matmul(rows, x), cols)


def _resizes_after_forward(segmentor: nn.Module) -> bool:
    """Whether ``segmentor.encode_decode`` is its tensor-mode forward (the
    decode head's logits) followed by mmseg's bilinear resize to the
    input, mmseg's own code for both."""
    from mmseg.models.decode_heads.decode_head import BaseDecodeHead
    from mmseg.models.segmentors import EncoderDecoder

    from ailurus_mm.models.segmentor import AiluRusEncoderDecoder

    head = getattr(segmentor, 'decode_head', None)
    kind = type(segmentor)
    return (getattr(kind, 'encode_decode', None) in (
        EncoderDecoder.encode_decode, AiluRusEncoderDecoder.encode_decode)
            and getattr(kind, '_forward', None) in (
                EncoderDecoder._forward, AiluRusEncoderDecoder._forward)
            and isinstance(head, BaseDecodeHead)
            and type(head).predict is BaseDecodeHead.predict
            and type(head).predict_by_feat is BaseDecodeHead.predict_by_feat)


class SegmentorLogits(nn.Module):
    """``segmentor.encode_decode`` on a fixed input size, as a module of
    one tensor argument (what ``torch.onnx.export`` traces).

    The final resize of the logits to the input is done by
    :func:`bilinear_resize` (two matrix products, the same values) where
    ``encode_decode`` is mmseg's forward plus its resize; otherwise, or
    with ``product_resize=False``, ``encode_decode`` is called as is.

    Args:
        segmentor: An mmseg ``EncoderDecoder`` (or AiluRus's).
        shape: The input ``(H, W)``.
        product_resize: Resize by :func:`bilinear_resize` where that is
            exact.
    """

    def __init__(self, segmentor: nn.Module, shape: Tuple[int, int],
                 product_resize: bool = True) -> None:
        super().__init__()
        self.segmentor = segmentor
        self.shape = tuple(shape)
        self.product_resize = product_resize and _resizes_after_forward(
            segmentor)

    def forward(self, inputs: Tensor) -> Tensor:
        """``[B, 3, H, W]`` normalised images to ``[B, K, H, W]`` logits."""
        if self.product_resize:
            return bilinear_resize(
                self.segmentor._forward(inputs), self.shape,
                self.segmentor.decode_head.align_corners)
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
