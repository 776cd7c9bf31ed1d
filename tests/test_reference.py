"""The merged path against values worked out by hand.

The inputs are built so that the clusters are known in advance: the tokens
form groups of identical features (identical image patches, no position
embedding), one group per region of a hand-drawn label map. With no spatial
term, every group is one density peak (its members are at distance 0 from
each other), so clustering into as many clusters as there are groups must
recover the groups exactly, and every later value follows by hand.
"""
import pytest
import torch
from mmseg.models.backbones import VisionTransformer

from ailurus_mm.models import AiluRusViT, TokenRecover
from ailurus_mm.ops import merge_tokens, recover_tokens
from ailurus_mm.ops import cluster_tokens as _cluster_tokens


# The paper's clustering (dpc_knn), whose peaks are the groups here.
def cluster_tokens(*args, **knobs):
    return _cluster_tokens(*args, reducer='dpc_knn', **knobs)


# A 4 x 6 token grid cut into 4 regions (the label map of a scene).
REGIONS = torch.tensor([
    [0, 0, 0, 1, 1, 1],
    [0, 0, 2, 2, 1, 1],
    [0, 2, 2, 2, 3, 1],
    [2, 2, 2, 3, 3, 3],
])
HW = tuple(REGIONS.shape)
LABELS = REGIONS.flatten()  # raster order
# The first token of each region in raster order, its anchor: region 0 at
# token 0, region 1 at 3, region 2 at 8, region 3 at 16.
ANCHORS = [0, 3, 8, 16]
SIZES = [6, 6, 8, 4]  # tokens per region, counted on the map above


def test_label_map_is_what_the_constants_say():
    assert [int((LABELS == g).sum()) for g in range(4)] == SIZES
    assert [int((LABELS == g).nonzero()[0]) for g in range(4)] == ANCHORS


# ------------------------------------------------------------------- ops

FEATURES = torch.tensor([  # one feature vector per region
    [1.0, 0.0, 0.0],
    [0.0, 2.0, 0.0],
    [0.0, 0.0, 3.0],
    [1.0, 1.0, 1.0],
])


@pytest.mark.parametrize('k', [1, 2, 5])
def test_clusters_are_the_regions(k):
    x = FEATURES[LABELS].unsqueeze(0)  # [1, 24, 3]
    result = cluster_tokens(x, HW, 4, k=k, spatial_weight=0.0)
    assert result.anchors.tolist() == [ANCHORS]
    # anchors are numbered in raster order, so cluster id == region id
    assert result.index.tolist() == [LABELS.tolist()]
    assert result.sizes.tolist() == [[float(s) for s in SIZES]]


def test_merge_and_recover_by_hand():
    torch.manual_seed(0)
    x = torch.randn(1, 24, 5)
    index = LABELS.unsqueeze(0)
    sizes = torch.tensor([SIZES], dtype=torch.float32)
    merged = merge_tokens(x, index, sizes)
    for region in range(4):
        members = [p for p in range(24) if LABELS[p] == region]
        expected = sum(x[0, p] for p in members) / len(members)
        torch.testing.assert_close(merged[0, region], expected)
    recovered = recover_tokens(merged, index)
    for p in range(24):
        assert torch.equal(recovered[0, p], merged[0, LABELS[p]])


def test_weighted_merge_by_hand():
    # tokens that already stand for several tokens: a size-weighted mean
    x = torch.arange(24, dtype=torch.float32).view(1, 24, 1)
    token_sizes = (torch.arange(24) % 3 + 1).float().unsqueeze(0)
    index = LABELS.unsqueeze(0)
    sizes = torch.zeros(1, 4).index_add_(1, LABELS, token_sizes)
    merged = merge_tokens(x, index, sizes, token_sizes)
    for region in range(4):
        members = [p for p in range(24) if LABELS[p] == region]
        weights = [p % 3 + 1 for p in members]
        expected = sum(p * w for p, w in zip(members, weights)) / sum(weights)
        assert merged[0, region, 0].item() == pytest.approx(expected)


# ----------------------------------------------------------- whole backbone

TINY = dict(img_size=(64, 96), patch_size=16, embed_dims=32, num_layers=3,
            num_heads=2, mlp_ratio=2, drop_path_rate=0.0,
            out_indices=(0, 1, 2), final_norm=True)


def region_image() -> torch.Tensor:
    """A 64 x 96 image whose 16 x 16 patches are one random texture per
    region of ``REGIONS``: identical patches within a region."""
    torch.manual_seed(3)
    textures = torch.rand(4, 3, 16, 16)
    rows = [torch.cat([textures[int(g)] for g in row], dim=-1)
            for row in REGIONS]
    return torch.cat(rows, dim=-2).unsqueeze(0)


def build_pair(**knobs):
    """A vanilla VisionTransformer and an AiluRusViT with the same weights
    and no position embedding, so identical patches give identical tokens."""
    torch.manual_seed(0)
    vanilla = VisionTransformer(**TINY)
    vanilla.init_weights()
    with torch.no_grad():
        vanilla.pos_embed.zero_()
    ailurus = AiluRusViT(**TINY, cluster_layer=0, num_clusters=4,
                         spatial_weight=0.0, **{'reducer': 'dpc_knn',
                                                **knobs})
    ailurus.load_state_dict(vanilla.state_dict(), strict=True)
    vanilla.eval()  # mmseg's VisionTransformer.train() returns None
    return vanilla, ailurus.eval()


def test_backbone_finds_the_regions():
    _, ailurus = build_pair()
    with torch.no_grad():
        outputs = ailurus(region_image())
    assignment = outputs.assignment
    assert assignment.index.tolist() == [LABELS.tolist()]
    assert assignment.sizes.tolist() == [[float(s) for s in SIZES]]


def test_proportional_attention_equals_the_vanilla_model():
    """A cluster of n identical tokens with log(n) added to its attention
    logits is attended to exactly as its n members are: with
    ``prop_attn=True`` every output equals the vanilla model's."""
    vanilla, ailurus = build_pair(prop_attn=True)
    image = region_image()
    with torch.no_grad():
        expected = vanilla(image)
        got = TokenRecover()(ailurus(image))
    assert len(got) == len(expected) == 3
    for out, ref in zip(got, expected):
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_plain_attention_by_hand():
    """Without proportional attention, the later layers see each region
    once: the vanilla layers run on [cls, one token per region], and each
    region's output is painted back onto its positions."""
    vanilla, ailurus = build_pair(prop_attn=False)
    image = region_image()
    with torch.no_grad():
        got = TokenRecover()(ailurus(image))

        # by hand, with the vanilla model's own modules
        x, hw_shape = vanilla.patch_embed(image)
        assert hw_shape == HW
        x = torch.cat([vanilla.cls_token, x], dim=1)  # pos_embed is zero
        x = vanilla.layers[0](x)
        first = x[:, 1:]
        short = torch.cat([x[:, :1], first[:, ANCHORS]], dim=1)  # [1, 5, C]
        short = vanilla.layers[1](short)
        second = short
        short = vanilla.layers[2](short)
        third = vanilla.norm1(short)

    def painted(tokens):  # [1, 4, C] region features -> [1, C, H, W]
        grid = tokens[0, LABELS].view(*HW, -1)
        return grid.permute(2, 0, 1).unsqueeze(0)

    expected = [first.transpose(1, 2).reshape(1, -1, *HW),
                painted(second[:, 1:]), painted(third[:, 1:])]
    for out, ref in zip(got, expected):
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    # and the merged path is not the vanilla model here (the check can fail)
    with torch.no_grad():
        assert not torch.allclose(got[2], vanilla(image)[2], atol=1e-3)
