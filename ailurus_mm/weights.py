"""Convert official Segmenter and timm ViT weights to mmseg 1.x key names.

Two sources are understood:

- ``segmenter``: checkpoints of the official Segmenter code
  (rstrudel/segmenter; the weights behind the Segmenter and AiluRus papers'
  tables). Keys ``encoder.*`` (a timm-style ViT) and ``decoder.*`` (the mask
  transformer, or the linear decoder). The result is a whole mmseg
  ``EncoderDecoder`` state dict (``backbone.*``, ``decode_head.*``) for
  ``load_from`` or ``tools/test.py``.
- ``timm``: a timm ``VisionTransformer`` state dict (timm's own or AugReg
  weights as timm distributes them). The result holds the backbone keys
  without prefix, mmseg's format for ``model.pretrained`` (mmseg resizes
  ``pos_embed`` to the config's ``img_size`` when it loads them).

Every key must be understood: anything else (distilled DeiT tokens, layer
scale, register tokens, global-pool norms) raises instead of being dropped
silently. Only the classification heads (``head``, ``encoder.head``) are
dropped on purpose.

Patch-embedding bias: timm and the official code have one; mmseg's
``VisionTransformer`` has none by default (``patch_bias=False``; mmseg drops
it when it loads ImageNet weights). The bias is added to every patch token
right before the position embedding, so by default it is folded into
``pos_embed`` (all but the cls position): exact, and the result loads
strictly into mmseg's Segmenter configs as they are. ``fold_bias=False``
(``--keep-patch-bias``) keeps it as ``patch_embed.projection.bias`` for
models built with ``patch_bias=True``. Resizing ``pos_embed`` keeps the fold
exact (bilinear and bicubic weights sum to one).

Numerics: the official Segmenter code builds its LayerNorms with PyTorch's
default ``eps=1e-5`` while mmseg's Segmenter configs use ``eps=1e-6`` in the
backbone; outputs differ by the tiny amount this makes (set
``model.backbone.norm_cfg.eps=1e-5`` for an exact match). timm ViTs use
``1e-6`` like mmseg.
"""
import argparse
import os
import os.path as osp
import re
from collections import OrderedDict
from typing import Dict, Optional, Tuple

import torch

from .checkpoint import read_checkpoint, strip_wrapper_prefix

SOURCES = ('segmenter', 'timm')

# One transformer block, official Segmenter / timm -> mmseg
# TransformerEncoderLayer. ``qkv`` stacks q, k, v along the output dimension
# exactly as ``nn.MultiheadAttention.in_proj_*`` does.
_BLOCK_KEYS = {
    'norm1.weight': 'ln1.weight',
    'norm1.bias': 'ln1.bias',
    'attn.qkv.weight': 'attn.attn.in_proj_weight',
    'attn.qkv.bias': 'attn.attn.in_proj_bias',
    'attn.proj.weight': 'attn.attn.out_proj.weight',
    'attn.proj.bias': 'attn.attn.out_proj.bias',
    'norm2.weight': 'ln2.weight',
    'norm2.bias': 'ln2.bias',
    'mlp.fc1.weight': 'ffn.layers.0.0.weight',
    'mlp.fc1.bias': 'ffn.layers.0.0.bias',
    'mlp.fc2.weight': 'ffn.layers.1.weight',
    'mlp.fc2.bias': 'ffn.layers.1.bias',
}

# ViT outside the blocks, timm -> mmseg VisionTransformer.
_VIT_KEYS = {
    'patch_embed.proj.weight': 'patch_embed.projection.weight',
    'patch_embed.proj.bias': 'patch_embed.projection.bias',  # or folded
    'cls_token': 'cls_token',
    'pos_embed': 'pos_embed',
    'norm.weight': 'ln1.weight',  # the final norm (final_norm=True)
    'norm.bias': 'ln1.bias',
}

# Official MaskTransformer -> mmseg SegmenterMaskTransformerHead, outside the
# blocks. proj_patch / proj_classes are matrices applied as ``x @ P``;
# mmseg's patch_proj / classes_proj are bias-free Linears (``x @ W.T``), so
# they are transposed.
_MASK_HEAD_KEYS = {
    'cls_emb': ('cls_emb', None),
    'proj_dec.weight': ('dec_proj.weight', None),
    'proj_dec.bias': ('dec_proj.bias', None),
    'proj_patch': ('patch_proj.weight', 'transpose'),
    'proj_classes': ('classes_proj.weight', 'transpose'),
    'decoder_norm.weight': ('decoder_norm.weight', None),
    'decoder_norm.bias': ('decoder_norm.bias', None),
    'mask_norm.weight': ('mask_norm.weight', None),
    'mask_norm.bias': ('mask_norm.bias', None),
}

# Official DecoderLinear -> mmseg FCNHead(num_convs=0): a Linear over the
# channels is a 1x1 convolution.
_LINEAR_HEAD_KEYS = {
    'head.weight': ('conv_seg.weight', 'to_conv1x1'),
    'head.bias': ('conv_seg.bias', None),
}

_BLOCK = re.compile(r'^blocks\.(\d+)\.(.+)$')


class UnsupportedCheckpointError(ValueError):
    """The checkpoint holds weights this converter cannot map."""


def _unsupported(keys, source: str, hint: str = '') -> None:
    if not keys:
        return
    keys = sorted(keys)
    shown = ', '.join(keys[:20]) + (
        f', ... ({len(keys) - 20} more)' if len(keys) > 20 else '')
    raise UnsupportedCheckpointError(
        f'{len(keys)} {source} key(s) have no mmseg counterpart: {shown}'
        f'{hint}')


def fold_patch_bias(pos_embed: torch.Tensor,
                    bias: torch.Tensor) -> torch.Tensor:
    """``pos_embed`` with the patch-embedding bias added to the patch
    positions.

    Args:
        pos_embed: ``[1, 1 + N, C]``, the cls token's position first.
        bias: ``[C]``.

    Returns:
        A new ``[1, 1 + N, C]`` tensor; position 0 (cls) is unchanged.
    """
    patches = pos_embed.shape[1] - 1
    side = int(round(patches**0.5))
    if pos_embed.dim() != 3 or side * side != patches:
        raise UnsupportedCheckpointError(
            f'pos_embed of shape {tuple(pos_embed.shape)} is not [1, 1 + '
            'H*W, C] with a square grid and a cls position; only ViTs with '
            'a class token (as Segmenter) are supported')
    folded = pos_embed.clone()
    folded[:, 1:] += bias.to(folded.dtype)
    return folded


def _convert_vit(state_dict: Dict[str, torch.Tensor], source: str,
                 fold_bias: bool = True,
                 ignore=('head.weight', 'head.bias')
                 ) -> 'OrderedDict[str, torch.Tensor]':
    """timm-style ViT keys (no prefix) -> mmseg VisionTransformer keys."""
    converted = OrderedDict()
    unknown = []
    for key, value in state_dict.items():
        block = _BLOCK.match(key)
        if block and block.group(2) in _BLOCK_KEYS:
            converted[f'layers.{block.group(1)}.'
                      f'{_BLOCK_KEYS[block.group(2)]}'] = value
        elif key in _VIT_KEYS:
            converted[_VIT_KEYS[key]] = value
        elif key not in ignore:
            unknown.append(key)
    hint = ''
    if any('dist_token' in k or 'head_dist' in k for k in unknown):
        hint = ('; distilled (DeiT) ViTs carry a distillation token that '
                "mmseg's VisionTransformer does not have")
    _unsupported(unknown, source, hint)
    if 'pos_embed' not in converted:
        raise UnsupportedCheckpointError(
            f'the {source} checkpoint has no pos_embed: is it a ViT?')
    bias = 'patch_embed.projection.bias'
    if fold_bias and bias in converted:
        converted['pos_embed'] = fold_patch_bias(converted['pos_embed'],
                                                 converted.pop(bias))
    return converted


def _convert_head(state_dict: Dict[str, torch.Tensor]
                  ) -> 'OrderedDict[str, torch.Tensor]':
    """Official ``decoder.*`` keys (prefix stripped) -> mmseg head keys."""
    linear = any(k.startswith('head.') for k in state_dict)
    table = _LINEAR_HEAD_KEYS if linear else _MASK_HEAD_KEYS
    converted = OrderedDict()
    unknown = []
    for key, value in state_dict.items():
        block = _BLOCK.match(key)
        if not linear and block and block.group(2) in _BLOCK_KEYS:
            converted[f'layers.{block.group(1)}.'
                      f'{_BLOCK_KEYS[block.group(2)]}'] = value
        elif key in table:
            new_key, transform = table[key]
            if transform == 'transpose':
                value = value.t().contiguous()
            elif transform == 'to_conv1x1':
                value = value[:, :, None, None].contiguous()
            converted[new_key] = value
        else:
            unknown.append('decoder.' + key)
    _unsupported(unknown, 'segmenter decoder',
                 '; only the mask transformer and the linear decoder '
                 'have mmseg counterparts')
    return converted


def convert_timm_vit(state_dict: Dict[str, torch.Tensor],
                     fold_bias: bool = True
                     ) -> 'OrderedDict[str, torch.Tensor]':
    """A timm ``VisionTransformer`` state dict in mmseg's key names.

    Args:
        state_dict: timm keys (``patch_embed.proj.*``, ``cls_token``,
            ``pos_embed``, ``blocks.N.*``, ``norm.*``, ``head.*``).
        fold_bias: Fold the patch-embedding bias into ``pos_embed`` (for
            mmseg's default ``patch_bias=False``); else keep it.

    Returns:
        mmseg ``VisionTransformer`` keys without prefix (the format of
        ``model.pretrained``); the classification head is dropped. Tensors
        other than ``pos_embed`` are the input's, not copies.

    Raises:
        UnsupportedCheckpointError: A key cannot be mapped.
    """
    return _convert_vit(state_dict, 'timm', fold_bias)


def convert_segmenter(state_dict: Dict[str, torch.Tensor],
                      fold_bias: bool = True
                      ) -> 'OrderedDict[str, torch.Tensor]':
    """An official Segmenter state dict in mmseg ``EncoderDecoder`` keys.

    Args:
        state_dict: ``encoder.*`` (timm-style ViT) and ``decoder.*`` (mask
            transformer or linear decoder) keys, as in the ``model`` entry of
            the official checkpoints.
        fold_bias: Fold the patch-embedding bias into ``pos_embed`` (for
            mmseg's default ``patch_bias=False``); else keep it.

    Returns:
        ``backbone.*`` keys of ``VisionTransformer`` and ``decode_head.*``
        keys of ``SegmenterMaskTransformerHead`` (mask decoder) or of
        ``FCNHead`` with ``num_convs=0`` (linear decoder). ``encoder.head``
        (the ImageNet classifier) is dropped.

    Raises:
        UnsupportedCheckpointError: A key cannot be mapped.
    """
    encoder, decoder, other = OrderedDict(), OrderedDict(), []
    for key, value in state_dict.items():
        if key.startswith('encoder.'):
            encoder[key[len('encoder.'):]] = value
        elif key.startswith('decoder.'):
            decoder[key[len('decoder.'):]] = value
        else:
            other.append(key)
    _unsupported(other, 'segmenter',
                 '; official Segmenter keys start with encoder. or decoder.')
    if not decoder:
        raise UnsupportedCheckpointError(
            'the segmenter checkpoint has no decoder.* keys')
    converted = OrderedDict()
    for key, value in _convert_vit(encoder, 'segmenter encoder',
                                   fold_bias).items():
        converted['backbone.' + key] = value
    for key, value in _convert_head(decoder).items():
        converted['decode_head.' + key] = value
    return converted


def detect_source(state_dict: Dict[str, torch.Tensor]) -> str:
    """``'segmenter'`` or ``'timm'``, from the key names.

    Raises:
        UnsupportedCheckpointError: Neither (e.g. already mmseg keys).
    """
    keys = list(state_dict)
    if any(k.startswith(('encoder.', 'decoder.')) for k in keys):
        return 'segmenter'
    if any(k.startswith(('blocks.', 'patch_embed.proj.')) for k in keys):
        return 'timm'
    if any(k.startswith(('backbone.', 'layers.', 'patch_embed.projection'))
           for k in keys):
        raise UnsupportedCheckpointError(
            'the checkpoint already has mmseg key names; use it as it is')
    raise UnsupportedCheckpointError(
        'neither an official Segmenter checkpoint (encoder.*, decoder.*) '
        'nor a timm ViT (patch_embed.proj.*, blocks.N.*); first keys: '
        f'{", ".join(keys[:5])}')


def convert_state_dict(state_dict: Dict[str, torch.Tensor],
                       source: str = 'auto',
                       fold_bias: bool = True
                       ) -> Tuple['OrderedDict[str, torch.Tensor]', str]:
    """Convert to mmseg keys; returns ``(state_dict, source)``.

    Args:
        state_dict: Model weights (``module.`` prefixes are stripped).
        source: ``'segmenter'``, ``'timm'`` or ``'auto'`` (from the keys).
        fold_bias: See :func:`convert_segmenter`.
    """
    if source not in SOURCES + ('auto', ):
        raise ValueError(f'source must be one of {SOURCES + ("auto", )}, '
                         f'got {source!r}')
    state_dict = strip_wrapper_prefix(state_dict)
    if source == 'auto':
        source = detect_source(state_dict)
    if source == 'segmenter':
        return convert_segmenter(state_dict, fold_bias), source
    return convert_timm_vit(state_dict, fold_bias), source


def _read(path: str) -> Dict:
    if path.endswith('.npz'):
        raise UnsupportedCheckpointError(
            f'{path}: .npz (JAX/big_vision) weights are not read here; '
            'load them with timm (timm.create_model(NAME, pretrained=True, '
            'pretrained_cfg_overlay=dict(file=PATH))) and torch.save its '
            'state_dict() first')
    if path.endswith('.safetensors'):
        try:
            from safetensors.torch import load_file
        except ImportError as error:
            raise UnsupportedCheckpointError(
                f'{path}: reading .safetensors needs the safetensors '
                'package (pip install safetensors)') from error
        return load_file(path)
    return read_checkpoint(path)


def weights_of(checkpoint: Dict) -> Dict[str, torch.Tensor]:
    """The state dict inside a checkpoint: ``model`` (official Segmenter,
    DeiT), ``state_dict`` (mmengine, some timm files) or the dict itself."""
    for key in ('model', 'state_dict'):
        if isinstance(checkpoint.get(key), dict):
            return checkpoint[key]
    return checkpoint


def _check_destination(src: str, dst: str, overwrite: bool) -> None:
    """``dst`` is never ``src`` (the conversion is lossy: the head of a
    timm file is dropped, the patch bias folded in) and replaces an
    existing file only with ``overwrite``; its folder is made now."""
    if '://' not in src and osp.exists(src) and osp.exists(dst) and \
            osp.samefile(src, dst) or osp.abspath(src) == osp.abspath(dst):
        raise ValueError(f'dst {dst} is the source checkpoint: the '
                         'conversion would overwrite it; write elsewhere')
    if osp.isdir(dst):
        raise ValueError(f'dst {dst} is a folder, expected a .pth file')
    if osp.exists(dst) and not overwrite:
        raise ValueError(f'dst {dst} exists; remove it, write elsewhere or '
                         'pass --overwrite')
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)


def convert_checkpoint(src: str,
                       dst: str,
                       source: str = 'auto',
                       fold_bias: bool = True,
                       overwrite: bool = False) -> Dict:
    """Read ``src``, convert it, save ``dst`` in mmseg's checkpoint format.

    Args:
        src: Official Segmenter checkpoint (``{'model': ...}``) or timm ViT
            weights (``.pth``/``.bin``, or ``.safetensors`` if the
            safetensors package is installed); a local path or URL.
        dst: Output path; parent folders are created. Never ``src``.
        source: ``'segmenter'``, ``'timm'`` or ``'auto'``.
        fold_bias: See :func:`convert_segmenter`.
        overwrite: Replace an existing ``dst`` (refused otherwise).

    Returns:
        The saved checkpoint, ``{'meta': {...}, 'state_dict': ...}``.
    """
    _check_destination(src, dst, overwrite)
    state_dict, source = convert_state_dict(
        weights_of(_read(src)), source, fold_bias)
    checkpoint = {
        'meta': {
            'converted_from': src,
            'source_format': source,
            'patch_bias_folded': fold_bias,
            'converter': 'ailurus_mm.weights',
        },
        'state_dict': state_dict,
    }
    torch.save(checkpoint, dst)
    return checkpoint


def convert_main(argv: Optional[list] = None) -> Dict:
    """``tools/convert_checkpoint.py``."""
    parser = argparse.ArgumentParser(
        description='Convert official Segmenter checkpoints or timm ViT '
        'weights to mmseg 1.x key names')
    parser.add_argument('src', help='source checkpoint (path or URL)')
    parser.add_argument('dst', help='output .pth (mmseg format)')
    parser.add_argument(
        '--source', choices=SOURCES + ('auto', ), default='auto',
        help='key names of src: official Segmenter code or timm ViT '
        '(default: detected from the keys)')
    parser.add_argument(
        '--keep-patch-bias', action='store_true',
        help='keep the patch-embedding bias as a parameter (for models '
        'built with patch_bias=True) instead of folding it into pos_embed')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace an existing dst')
    args = parser.parse_args(argv)
    try:
        _check_destination(args.src, args.dst, args.overwrite)
    except ValueError as error:
        parser.error(str(error))
    checkpoint = convert_checkpoint(args.src, args.dst, args.source,
                                    fold_bias=not args.keep_patch_bias,
                                    overwrite=args.overwrite)
    state_dict = checkpoint['state_dict']
    source = checkpoint['meta']['source_format']
    usage = ('load_from / tools/test.py' if source == 'segmenter' else
             'model.pretrained (backbone only)')
    print(f'Converted {len(state_dict)} tensors ({source} -> mmseg) to '
          f'{args.dst}; use it as {usage}')
    return checkpoint
