"""tools/convert_checkpoint.py: official Segmenter and timm ViT weights to
mmseg keys, checked by loading strictly into mmseg's models and comparing
outputs with reference modules that carry exactly the source key names."""
import os.path as osp

import pytest
import torch
from torch import nn

from conftest import CONFIGS, run_tool

pytestmark = pytest.mark.usefixtures('fast_config_parsing')

DIMS, HEADS, LAYERS, CLASSES, SIZE = 32, 2, 3, 5, 64


# Reference modules: the official Segmenter code's structure and forward
# (segm/model/blocks.py, vit.py, decoder.py), whose parameter names are
# also timm's ViT names. LayerNorm eps is a parameter: the official code
# uses PyTorch's default 1e-5, timm 1e-6.
class Attention(nn.Module):

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads)**-0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        batch, tokens, channels = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.heads,
                                  channels // self.heads).permute(
                                      2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(batch, tokens, channels)
        return self.proj(x)


class FeedForward(nn.Module):

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):

    def __init__(self, dim: int, heads: int, eps: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, heads)
        self.mlp = FeedForward(dim, 4 * dim)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbedding(nn.Module):

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=16, stride=16)

    def forward(self, image):
        return self.proj(image).flatten(2).transpose(1, 2)


class ViT(nn.Module):
    """timm's / the official encoder's ViT/16 (cls token, final norm)."""

    def __init__(self, eps: float, image_size: int = SIZE) -> None:
        super().__init__()
        self.patch_embed = PatchEmbedding(DIMS)
        self.cls_token = nn.Parameter(torch.randn(1, 1, DIMS))
        self.pos_embed = nn.Parameter(
            torch.randn(1, (image_size // 16)**2 + 1, DIMS))
        self.blocks = nn.ModuleList(
            [Block(DIMS, HEADS, eps) for _ in range(LAYERS)])
        self.norm = nn.LayerNorm(DIMS, eps=eps)
        self.head = nn.Linear(DIMS, 1000)

    def forward(self, image):
        """Features after the final norm, ``[B, 1 + N, C]``."""
        x = self.patch_embed(image)
        x = torch.cat([self.cls_token.expand(len(x), -1, -1), x], dim=1)
        x = x + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


class MaskTransformer(nn.Module):

    def __init__(self, eps: float = 1e-5) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            [Block(DIMS, HEADS, eps) for _ in range(LAYERS)])
        self.cls_emb = nn.Parameter(torch.randn(1, CLASSES, DIMS))
        self.proj_dec = nn.Linear(DIMS, DIMS)
        self.proj_patch = nn.Parameter(torch.randn(DIMS, DIMS) / DIMS**0.5)
        self.proj_classes = nn.Parameter(torch.randn(DIMS, DIMS) / DIMS**0.5)
        self.decoder_norm = nn.LayerNorm(DIMS, eps=eps)
        self.mask_norm = nn.LayerNorm(CLASSES, eps=eps)

    def forward(self, x, grid: int):
        x = self.proj_dec(x)
        x = torch.cat([x, self.cls_emb.expand(len(x), -1, -1)], dim=1)
        for block in self.blocks:
            x = block(x)
        x = self.decoder_norm(x)
        patches = x[:, :-CLASSES] @ self.proj_patch
        classes = x[:, -CLASSES:] @ self.proj_classes
        patches = patches / patches.norm(dim=-1, keepdim=True)
        classes = classes / classes.norm(dim=-1, keepdim=True)
        masks = self.mask_norm(patches @ classes.transpose(1, 2))
        return masks.transpose(1, 2).reshape(len(x), CLASSES, grid, grid)


class DecoderLinear(nn.Module):

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(DIMS, CLASSES)

    def forward(self, x, grid: int):
        return self.head(x).transpose(1, 2).reshape(len(x), CLASSES, grid,
                                                    grid)


class Segmenter(nn.Module):
    """The official ``Segmenter``: ``encoder`` + ``decoder``."""

    def __init__(self, decoder: nn.Module, eps: float = 1e-5) -> None:
        super().__init__()
        self.encoder = ViT(eps)
        self.decoder = decoder

    def forward(self, image):
        """Masks before upsampling, ``[B, classes, H / 16, W / 16]``."""
        x = self.encoder(image)[:, 1:]
        return self.decoder(x, image.shape[-1] // 16)


def randomize_norms(module: nn.Module) -> nn.Module:
    """LayerNorms start at (1, 0); random values make a swapped or dropped
    norm visible in the outputs."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.LayerNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
    return module.eval()


def mmseg_model(config: str, overrides: dict = None, head: str = 'mask'):
    """A tiny mmseg model from a real config of this repo."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    import ailurus_mm.models  # noqa: F401

    cfg = Config.fromfile(osp.join(CONFIGS, 'segmenter', config))
    model_cfg = cfg.model
    model_cfg.pretrained = None
    model_cfg.backbone.update(
        img_size=(SIZE, SIZE), embed_dims=DIMS, num_layers=LAYERS,
        num_heads=HEADS, drop_path_rate=0.0, **(overrides or {}))
    model_cfg.decode_head.update(in_channels=DIMS, channels=DIMS,
                                 num_classes=CLASSES)
    if head == 'mask':
        model_cfg.decode_head.update(embed_dims=DIMS, num_heads=HEADS,
                                     num_layers=LAYERS, drop_path_rate=0.0)
    init_default_scope('mmseg')
    return MODELS.build(model_cfg).eval()


VANILLA_MASK = 'segmenter_vit-b_mask_8xb1-80k_cityscapes-768x768.py'
AILURUS_MASK = 'ailurus_segmenter_vit-b_mask_8xb1-80k_cityscapes-768x768.py'
VANILLA_LINEAR = 'segmenter_vit-s_fcn_8xb2-80k_pascal-context-480x480.py'
OFFICIAL_EPS = dict(norm_cfg=dict(type='LN', eps=1e-5, requires_grad=True))


def load_strictly(model: nn.Module, state_dict: dict) -> None:
    from ailurus_mm.checkpoint import check_state_dict
    check_state_dict(model, state_dict)  # raises with the differences
    model.load_state_dict(state_dict, strict=True)


@pytest.fixture
def image():
    return torch.rand(2, 3, SIZE, SIZE) * 2 - 1


def test_official_mask_segmenter_matches_mmseg(image):
    from ailurus_mm.weights import convert_segmenter

    torch.manual_seed(0)
    official = randomize_norms(Segmenter(MaskTransformer()))
    converted = convert_segmenter(official.state_dict())
    model = mmseg_model(VANILLA_MASK, OFFICIAL_EPS)
    load_strictly(model, converted)
    with torch.no_grad():
        expected = official(image)
        assert torch.allclose(model(image, mode='tensor'), expected,
                              atol=1e-5)


def test_official_checkpoint_runs_with_ailurus_nothing_merged(image):
    from ailurus_mm.weights import convert_segmenter

    torch.manual_seed(1)
    official = randomize_norms(Segmenter(MaskTransformer()))
    model = mmseg_model(AILURUS_MASK, dict(OFFICIAL_EPS, num_clusters=1.0))
    load_strictly(model, convert_segmenter(official.state_dict()))
    with torch.no_grad():
        assert torch.allclose(
            model(image, mode='tensor'), official(image), atol=1e-5)


def test_official_linear_segmenter_matches_mmseg(image):
    from ailurus_mm.weights import convert_segmenter

    torch.manual_seed(2)
    official = randomize_norms(Segmenter(DecoderLinear()))
    converted = convert_segmenter(official.state_dict())
    assert converted['decode_head.conv_seg.weight'].shape == (CLASSES, DIMS,
                                                              1, 1)
    model = mmseg_model(VANILLA_LINEAR, OFFICIAL_EPS, head='linear')
    load_strictly(model, converted)
    with torch.no_grad():
        assert torch.allclose(
            model(image, mode='tensor'), official(image), atol=1e-5)


def test_projections_are_transposed():
    from ailurus_mm.weights import convert_segmenter

    official = Segmenter(MaskTransformer())
    converted = convert_segmenter(official.state_dict())
    assert torch.equal(converted['decode_head.patch_proj.weight'],
                       official.decoder.proj_patch.t())
    assert torch.equal(converted['decode_head.classes_proj.weight'],
                       official.decoder.proj_classes.t())
    assert not any(key.startswith('backbone.head') for key in converted)
    # qkv stays stacked (q, k, v) as nn.MultiheadAttention expects
    assert torch.equal(
        converted['backbone.layers.1.attn.attn.in_proj_weight'],
        official.encoder.blocks[1].attn.qkv.weight)


def test_patch_bias_kept_for_patch_bias_models(image):
    from ailurus_mm.weights import convert_segmenter

    torch.manual_seed(3)
    official = randomize_norms(Segmenter(MaskTransformer()))
    converted = convert_segmenter(official.state_dict(), fold_bias=False)
    assert torch.equal(converted['backbone.patch_embed.projection.bias'],
                       official.encoder.patch_embed.proj.bias)
    assert torch.equal(converted['backbone.pos_embed'],
                       official.encoder.pos_embed)
    model = mmseg_model(VANILLA_MASK, dict(OFFICIAL_EPS, patch_bias=True))
    load_strictly(model, converted)
    with torch.no_grad():
        assert torch.allclose(
            model(image, mode='tensor'), official(image), atol=1e-5)


@pytest.mark.slow
def test_tool_converts_an_official_checkpoint_file(tmp_path, image):
    """The whole path: an official checkpoint file ({'model': ...}) through
    tools/convert_checkpoint.py, read back by the tools' strict loader."""
    from ailurus_mm.checkpoint import load_model_checkpoint
    from ailurus_mm.checkpoint import read_checkpoint

    torch.manual_seed(4)
    official = randomize_norms(Segmenter(MaskTransformer()))
    src = str(tmp_path / 'checkpoint.pth')
    torch.save({'model': official.state_dict(), 'n_cls': CLASSES,
                'epoch': 63}, src)
    dst = str(tmp_path / 'out' / 'segmenter_mmseg.pth')
    out = run_tool('convert_checkpoint', [src, dst], cwd=str(tmp_path))
    assert 'segmenter -> mmseg' in out

    checkpoint = read_checkpoint(dst)
    assert set(checkpoint) == {'meta', 'state_dict'}
    assert checkpoint['meta']['source_format'] == 'segmenter'
    model = mmseg_model(VANILLA_MASK, OFFICIAL_EPS)
    load_model_checkpoint(model, dst)
    with torch.no_grad():
        assert torch.allclose(
            model(image, mode='tensor'), official(image), atol=1e-5)


def test_timm_vit_matches_mmseg_backbone(tmp_path, image):
    from mmseg.models.backbones import VisionTransformer

    from ailurus_mm.weights import convert_checkpoint

    torch.manual_seed(5)
    timm_vit = randomize_norms(ViT(eps=1e-6))
    src = str(tmp_path / 'vit.pth')
    torch.save(timm_vit.state_dict(), src)
    dst = str(tmp_path / 'vit_mmseg.pth')
    checkpoint = convert_checkpoint(src, dst)
    assert checkpoint['meta']['source_format'] == 'timm'
    assert not any(k.startswith(('backbone.', 'head.'))
                   for k in checkpoint['state_dict'])

    # As model.pretrained: mmseg's own init_weights loads it.
    backbone = VisionTransformer(
        img_size=(SIZE, SIZE), embed_dims=DIMS, num_layers=LAYERS,
        num_heads=HEADS, final_norm=True, with_cls_token=True,
        norm_cfg=dict(type='LN', eps=1e-6), pretrained=dst)
    backbone.init_weights()
    backbone.eval()  # mmseg's VisionTransformer.train returns None
    with torch.no_grad():
        expected = timm_vit(image)[:, 1:].transpose(1, 2).reshape(
            2, DIMS, SIZE // 16, SIZE // 16)
        assert torch.allclose(backbone(image)[0], expected, atol=1e-5)


def test_timm_vit_pretrained_at_another_size(tmp_path):
    """ImageNet weights at another resolution: mmseg resizes pos_embed, and
    the folded patch bias survives the resize."""
    from mmseg.models.backbones import VisionTransformer

    from ailurus_mm.weights import convert_checkpoint

    torch.manual_seed(6)
    timm_vit = ViT(eps=1e-6, image_size=32)  # a 2x2 grid
    with torch.no_grad():
        # The same position for every patch: any resize keeps it.
        timm_vit.pos_embed[:, 1:] = timm_vit.pos_embed[:, 1:2]
    src = str(tmp_path / 'vit32.pth')
    torch.save(timm_vit.state_dict(), src)
    dst = str(tmp_path / 'vit32_mmseg.pth')
    convert_checkpoint(src, dst)
    backbone = VisionTransformer(
        img_size=(SIZE, SIZE), embed_dims=DIMS, num_layers=LAYERS,
        num_heads=HEADS, final_norm=True, with_cls_token=True,
        pretrained=dst)
    backbone.init_weights()
    pos_embed = backbone.pos_embed.detach()
    assert pos_embed.shape == (1, (SIZE // 16)**2 + 1, DIMS)
    assert torch.equal(pos_embed[0, 0], timm_vit.pos_embed[0, 0])
    patch_position = timm_vit.pos_embed[0, 1] + timm_vit.patch_embed.proj.bias
    assert torch.allclose(
        pos_embed[0, 1:],
        patch_position.detach().expand((SIZE // 16)**2, -1),
        atol=1e-5)
    assert torch.equal(backbone.layers[2].ffn.layers[1].weight,
                       timm_vit.blocks[2].mlp.fc2.weight)


def test_fold_patch_bias_is_exact(image):
    from ailurus_mm.weights import fold_patch_bias

    torch.manual_seed(7)
    vit = ViT(eps=1e-6)
    with torch.no_grad():
        folded = fold_patch_bias(vit.pos_embed, vit.patch_embed.proj.bias)
        assert torch.equal(folded[:, 0], vit.pos_embed[:, 0])
        reference = vit(image)
        vit.pos_embed.copy_(folded)
        vit.patch_embed.proj.bias.zero_()
        assert torch.allclose(vit(image), reference, atol=1e-6)


def official_state_dict() -> dict:
    return Segmenter(MaskTransformer()).state_dict()


def timm_state_dict() -> dict:
    return ViT(eps=1e-6).state_dict()


def with_key(state_dict: dict, key: str) -> dict:
    state_dict[key] = torch.zeros(DIMS)
    return state_dict


@pytest.mark.parametrize('state_dict, match', [
    (lambda: with_key(timm_state_dict(), 'blocks.0.ls1.gamma'),
     r'^1 timm key\(s\) have no mmseg counterpart: blocks\.0\.ls1\.gamma$'),
    (lambda: with_key(timm_state_dict(), 'fc_norm.weight'),
     r'1 timm key\(s\) have no mmseg counterpart: fc_norm\.weight'),
    (lambda: with_key(official_state_dict(), 'encoder.dist_token'),
     r'1 segmenter encoder key\(s\) have no mmseg counterpart: dist_token; '
     r'distilled \(DeiT\)'),
    (lambda: with_key(official_state_dict(), 'decoder.head_extra.weight'),
     r'1 segmenter decoder key\(s\) have no mmseg counterpart: '
     r'decoder\.head_extra\.weight'),
    (lambda: with_key(official_state_dict(), 'aux.weight'),
     r'1 segmenter key\(s\) have no mmseg counterpart: aux\.weight; '
     r'official Segmenter keys start with encoder\. or decoder\.'),
    (lambda: {'backbone.cls_token': torch.zeros(1)},
     'already has mmseg key names'),
    (lambda: {'conv1.weight': torch.zeros(1)},
     r'neither an official Segmenter checkpoint .* first keys: '
     r'conv1\.weight'),
])
def test_unsupported_keys_are_refused(state_dict, match):
    from ailurus_mm.weights import (UnsupportedCheckpointError,
                                    convert_state_dict)

    with pytest.raises(UnsupportedCheckpointError, match=match):
        convert_state_dict(state_dict())


def test_module_prefix_is_stripped():
    from ailurus_mm.weights import convert_state_dict

    state_dict = {f'module.{k}': v for k, v in timm_state_dict().items()}
    converted, source = convert_state_dict(state_dict)
    assert source == 'timm'
    assert 'layers.0.ln1.weight' in converted
    # 2 blocks x 12 tensors + patch weight + cls + pos + final norm (2);
    # patch bias folded, classifier dropped
    assert len(converted) == LAYERS * 12 + 5


def test_npz_is_refused_with_advice(tmp_path):
    from ailurus_mm.weights import (UnsupportedCheckpointError,
                                    convert_checkpoint)

    with pytest.raises(UnsupportedCheckpointError,
                       match=r'\.npz \(JAX/big_vision\).*timm\.create_model'):
        convert_checkpoint(str(tmp_path / 'augreg.npz'),
                           str(tmp_path / 'out.pth'))


def test_safetensors_without_package_is_explained(tmp_path, monkeypatch):
    import sys

    from ailurus_mm.weights import (UnsupportedCheckpointError,
                                    convert_checkpoint)

    monkeypatch.setitem(sys.modules, 'safetensors', None)
    monkeypatch.setitem(sys.modules, 'safetensors.torch', None)
    with pytest.raises(UnsupportedCheckpointError,
                       match='needs the safetensors package'):
        convert_checkpoint(str(tmp_path / 'model.safetensors'),
                           str(tmp_path / 'out.pth'))


def test_unknown_source_name_is_refused():
    from ailurus_mm.weights import convert_state_dict

    with pytest.raises(ValueError, match="source must be one of .*'deit'"):
        convert_state_dict(timm_state_dict(), source='deit')


def test_the_converter_never_overwrites_its_source_or_a_result(
        tmp_path, capsys):
    """The conversion is lossy (head dropped, patch bias folded): ``x.pth
    x.pth`` is refused before reading, and an existing output needs
    --overwrite."""
    from ailurus_mm.weights import convert_checkpoint, convert_main

    src = str(tmp_path / 'vit.pth')
    torch.save(ViT(eps=1e-6).state_dict(), src)
    before = open(src, 'rb').read()
    with pytest.raises(SystemExit):
        convert_main([src, src])
    assert 'is the source checkpoint' in capsys.readouterr().err
    assert open(src, 'rb').read() == before
    dst = str(tmp_path / 'out' / 'vit_mmseg.pth')
    convert_checkpoint(src, dst)
    with pytest.raises(ValueError, match=r'exists; remove it, write '
                       r'elsewhere or pass --overwrite'):
        convert_checkpoint(src, dst)
    convert_main([src, dst, '--overwrite'])
