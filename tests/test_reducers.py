"""The field's token reducers (ailurus_mm.ops.reducers) against slow,
loop-based references, and their common contract."""
import math

import pytest
import torch
import torch.nn.functional as F

from ailurus_mm.ops import REDUCERS, cluster_tokens
from ailurus_mm.ops.baselines import grid_layout
from ailurus_mm.ops.density import spatial_aware_distance


def _tokens(batch=2, hw=(6, 7), channels=8, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, hw[0] * hw[1], channels, generator=generator)


# -- the contract every reducer keeps ----------------------------------------
@pytest.mark.parametrize('reducer', list(REDUCERS))
@pytest.mark.parametrize('num_clusters', [1, 5, 13, 21, 30, 41])
def test_every_token_in_one_nonempty_cluster(reducer, num_clusters):
    x = _tokens()
    out = cluster_tokens(x, (6, 7), num_clusters, reducer=reducer)
    assert out.index.shape == (2, 42)
    assert out.index.min() >= 0 and out.index.max() < num_clusters
    counts = torch.stack([torch.bincount(i, minlength=num_clusters)
                          for i in out.index])
    assert torch.equal(counts.to(out.sizes.dtype), out.sizes)
    assert (out.sizes > 0).all()
    assert out.sizes.sum(1).tolist() == [42, 42]
    # The representative of cluster m is in cluster m, in raster order.
    assert torch.equal(out.index.gather(1, out.anchors),
                       torch.arange(num_clusters).expand(2, -1))
    assert (out.anchors.diff(dim=1) > 0).all()


def _contract_holds(out, num_tokens, num_clusters):
    counts = torch.stack([torch.bincount(i, minlength=num_clusters)
                          for i in out.index])
    return (out.sizes.shape[1] == num_clusters
            and torch.equal(counts.to(out.sizes.dtype), out.sizes)
            and bool((out.sizes > 0).all())
            and out.sizes.sum(1).tolist() == [num_tokens] * len(out.sizes)
            and bool((out.anchors.diff(dim=1) > 0).all()))


def _degenerate(kind):
    x = _tokens(batch=2, hw=(4, 4))
    if kind == 'huge':  # squared distances overflow float32
        return x * 1e20
    if kind == 'tiny':  # and underflow
        return x * 1e-30
    if kind == 'constant':
        return torch.ones_like(x)
    if kind == 'nan':
        x[0, 3] = float('nan')
        return x
    if kind == 'inf':
        x[1, :5] = float('inf')
        x[1, 7] = -float('inf')
        return x
    return torch.zeros_like(x)


@pytest.mark.parametrize('reducer', list(REDUCERS))
@pytest.mark.parametrize('kind', ['huge', 'tiny', 'constant', 'nan', 'inf',
                                  'zeros'])
def test_the_contract_holds_on_degenerate_features(reducer, kind):
    """Distinct anchors, no empty cluster, sizes summing to N, whatever the
    features (non-finite ones are treated as 0 for the selection)."""
    out = cluster_tokens(_degenerate(kind), (4, 4), 4, reducer=reducer)
    assert _contract_holds(out, 16, 4), (out.anchors, out.sizes)


@pytest.mark.parametrize('reducer', list(REDUCERS))
def test_a_power_of_two_scale_changes_nothing(reducer):
    """The selection is invariant to a per-image scale; the conditioning
    against overflow rescales by a power of two, which is exact."""
    x = _tokens(batch=2, hw=(6, 7))
    reference = cluster_tokens(x, (6, 7), 0.3, reducer=reducer)
    for scale in (2.0**40, 2.0**-40, 3.0):
        out = cluster_tokens(x * scale, (6, 7), 0.3, reducer=reducer)
        assert torch.equal(out.index, reference.index), scale


@pytest.mark.parametrize('reducer', list(REDUCERS))
def test_deterministic_and_batch_invariant(reducer):
    x = _tokens(batch=3)
    first = cluster_tokens(x, (6, 7), 0.4, reducer=reducer)
    again = cluster_tokens(x.clone(), (6, 7), 0.4, reducer=reducer)
    assert torch.equal(first.index, again.index)
    for b in range(3):
        single = cluster_tokens(x[b:b + 1], (6, 7), 0.4, reducer=reducer)
        assert torch.equal(single.index[0], first.index[b])
        assert torch.equal(single.anchors[0], first.anchors[b])


@pytest.mark.parametrize('reducer', list(REDUCERS))
def test_keeping_every_token_merges_nothing(reducer):
    x = _tokens()
    out = cluster_tokens(x, (6, 7), 1.0, reducer=reducer)
    assert torch.equal(out.index, torch.arange(42).expand(2, -1))


def test_unknown_reducer_is_refused():
    with pytest.raises(ValueError, match=r"reducer must be one of .*'tome'"
                       r".*got 'bogus'"):
        cluster_tokens(_tokens(), (6, 7), 0.5, reducer='bogus')


# -- grid ---------------------------------------------------------------------
@pytest.mark.parametrize('hw', [(6, 7), (20, 20), (3, 17), (40, 40)])
@pytest.mark.parametrize('fraction', [0.05, 0.25, 0.35, 0.5, 0.65, 0.97])
def test_grid_cells_are_near_equal_rectangles(hw, fraction):
    num_clusters = max(1, round(fraction * hw[0] * hw[1]))
    out = cluster_tokens(_tokens(1, hw), hw, num_clusters, reducer='grid')
    cells = out.index[0].view(hw)
    sizes = out.sizes[0]
    bands, columns = grid_layout(hw, num_clusters)
    assert int(columns.sum()) == num_clusters
    for m in range(num_clusters):
        rows, cols = (cells == m).nonzero(as_tuple=True)
        # A full rectangle: its bounding box holds exactly its tokens.
        box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert int(box) == rows.numel()
    # Near-equal: a band of bands is within one row, a cell within one
    # column of its band-mates, so sizes differ by a bounded factor.
    ideal = hw[0] * hw[1] / num_clusters
    assert sizes.max() <= math.ceil(hw[0] / bands) * math.ceil(
        hw[1] / int(columns.min()))
    assert sizes.min() >= max(1, math.floor(ideal / 4))


# -- k-means -----------------------------------------------------------------
def _kmeans_reference(x, hw, num_clusters, iterations=5, window=2):
    """Per-image, per-token loops over the rule of kmeans_clusters."""
    height, width = hw
    grid = cluster_tokens(x[:1], hw, num_clusters, reducer='grid')
    cell = grid.index[0].tolist()
    centre_token = grid.anchors[0].tolist()
    bands, columns = grid_layout(hw, num_clusters)
    cell_h = height / bands
    cell_w = width / columns.float().mean().item()
    allowed = []
    for i in range(height * width):
        r, c = divmod(i, width)
        allowed.append([
            m for m in range(num_clusters)
            if m == cell[i] or (
                abs(r - centre_token[m] // width) <= (window + .5) * cell_h
                and abs(c - centre_token[m] % width) <= (window + .5) * cell_w)
        ])
    result = []
    for image in x:
        members = [[i for i in range(len(cell)) if cell[i] == m]
                   for m in range(num_clusters)]
        centres = [image[ms].mean(0) for ms in members]

        def assign():
            return [min(allowed[i], key=lambda m: (
                float(((image[i] - centres[m])**2).sum()), m))
                for i in range(len(cell))]

        for _ in range(iterations):
            index = assign()
            for m in range(num_clusters):
                ms = [i for i, a in enumerate(index) if a == m]
                if ms:
                    centres[m] = image[ms].mean(0)
        index = assign()
        for m, token in enumerate(centre_token):
            index[token] = m
        result.append(index)
    return torch.tensor(result)


@pytest.mark.parametrize('num_clusters', [4, 10, 21])
def test_kmeans_matches_reference(num_clusters):
    x = _tokens(channels=4, seed=3).double()
    out = cluster_tokens(x, (6, 7), num_clusters, reducer='kmeans')
    assert torch.equal(out.index, _kmeans_reference(x.float(), (6, 7),
                                                    num_clusters))


def test_kmeans_groups_two_flat_regions():
    # Left half one colour, right half another, grid cells cut across the
    # boundary: k-means moves the cut to the boundary.
    x = torch.zeros(1, 6 * 8, 4)
    x.view(1, 6, 8, 4)[:, :, 3:, 0] = 10.0  # boundary after column 3
    out = cluster_tokens(x, (6, 8), 2, reducer='kmeans')
    labels = out.index.view(6, 8)
    assert (labels[:, :3] == labels[0, 0]).all()
    assert (labels[:, 3:] == labels[0, -1]).all()
    assert labels[0, 0] != labels[0, -1]


# -- ToMe-style bipartite matching -------------------------------------------
def _bipartite_reference(image, num_clusters):
    n = image.shape[0]
    merged = n - num_clusters
    if merged <= (n + 1) // 2:
        src, dst = list(range(0, n, 2)), list(range(1, n, 2))
    else:
        dst = sorted({round(i * (n - 1) / (num_clusters - 1))
                      if num_clusters > 1 else 0
                      for i in range(num_clusters)})
        src = [i for i in range(n) if i not in dst]
    metric = F.normalize(image, dim=-1)
    best = []
    for s in src:
        sims = [float(metric[s] @ metric[d]) for d in dst]
        j = max(range(len(dst)), key=lambda t: (sims[t], -t))
        best.append((sims[j], s, dst[j]))
    # Most similar first; ties keep source order.
    order = sorted(range(len(src)), key=lambda t: -best[t][0])
    target = list(range(n))
    for t in order[:merged]:
        target[best[t][1]] = best[t][2]
    reps = sorted(set(target))
    return [reps.index(target[i]) for i in range(n)]


@pytest.mark.parametrize('num_clusters', [1, 6, 21, 22, 30, 41])
def test_bipartite_matches_reference(num_clusters):
    x = _tokens()
    out = cluster_tokens(x, (6, 7), num_clusters, reducer='tome')
    expected = torch.tensor([_bipartite_reference(image, num_clusters)
                             for image in x])
    assert torch.equal(out.index, expected)


# -- random anchors -------------------------------------------------------
def test_random_anchors_nearest_assignment_reference():
    x = _tokens()
    out = cluster_tokens(x, (6, 7), 9, reducer='random')
    anchors = torch.randperm(
        42, generator=torch.Generator().manual_seed(0))[:9].sort().values
    assert torch.equal(out.anchors, anchors.expand(2, -1))
    anchor_list = anchors.tolist()
    for b, image in enumerate(x):
        for i in range(42):
            if i in anchor_list:  # an anchor is in its own cluster
                expected = anchor_list.index(i)
            else:
                dist = [float((image[i] - image[a]).norm())
                        for a in anchor_list]
                expected = min(range(9), key=lambda m: (dist[m], m))
            assert int(out.index[b, i]) == expected


# -- farthest-point anchors -----------------------------------------------
def _farthest_reference(x, hw, num_clusters, k=5, spatial_weight=1.0):
    from ailurus_mm.ops.density import knn_density
    dist, scale = spatial_aware_distance(x, hw, spatial_weight)
    rho = knn_density(dist, k, scale)
    result = []
    for b in range(x.shape[0]):
        chosen = [max(range(x.shape[1]), key=lambda i: (float(rho[b, i]),
                                                        -i))]
        while len(chosen) < num_clusters:
            far = [min(float(dist[b, i, a]) for a in chosen)
                   if i not in chosen else -1.0 for i in range(x.shape[1])]
            chosen.append(max(range(x.shape[1]), key=lambda i: (far[i], -i)))
        result.append(sorted(chosen))
    return torch.tensor(result)


@pytest.mark.parametrize('num_clusters', [1, 7, 20, 35])
@pytest.mark.parametrize('spatial_weight', [0.0, 1.0])
def test_farthest_point_anchors_match_reference(num_clusters,
                                                spatial_weight):
    x = _tokens()
    out = cluster_tokens(x, (6, 7), num_clusters, reducer='farthest',
                         spatial_weight=spatial_weight)
    assert torch.equal(out.anchors, _farthest_reference(
        x, (6, 7), num_clusters, spatial_weight=spatial_weight))


def test_farthest_point_anchors_cover_every_distinct_group():
    # Five groups of identical tokens: five anchors must hit all five.
    groups = torch.randn(5, 8, generator=torch.Generator().manual_seed(1))
    labels = torch.arange(42) % 5
    x = groups[labels][None] * 10
    out = cluster_tokens(x, (6, 7), 5, reducer='farthest',
                         spatial_weight=0.0)
    assert sorted(labels[out.anchors[0]].tolist()) == [0, 1, 2, 3, 4]
    # ... and nearest assignment then recovers the groups exactly.
    assert torch.equal(out.index[0], labels[out.anchors[0]][out.index[0]]
                       .new_tensor([labels[out.anchors[0]].tolist().index(
                           int(label)) for label in labels]))


# -- the knob on AiluRusViT ---------------------------------------------------
@pytest.mark.parametrize('reducer, knobs, match', [
    ('bogus', {}, r"reducer must be one of \('dpc_cover', 'dpc_knn', .*got "
     r"'bogus'"),
    ('tome', dict(k=7), r"k=7 is not used by reducer='tome' \(it takes: no "
     r"knobs\); k applies to the reducers \('dpc_cover', 'dpc_knn', "
     r"'farthest'\)"),
    ('farthest', dict(window=3), r"window=3 is not used by "
     r"reducer='farthest' \(it takes: k, spatial_weight\)"),
    ('grid', dict(spatial_weight=0.0), r'spatial_weight=0.0 is not used'),
])
def test_ailurus_vit_refuses_a_knob_its_reducer_does_not_take(
        reducer, knobs, match):
    from ailurus_mm.models import AiluRusViT
    with pytest.raises(ValueError, match=match):
        AiluRusViT(img_size=(32, 32), embed_dims=16, num_layers=3,
                   num_heads=2, reducer=reducer, **knobs)


@pytest.mark.parametrize('reducer', list(REDUCERS))
def test_ailurus_vit_runs_every_reducer(reducer):
    from ailurus_mm.models import AiluRusViT
    torch.manual_seed(0)
    backbone = AiluRusViT(img_size=(32, 32), embed_dims=16, num_layers=3,
                          num_heads=2, num_clusters=0.5, reducer=reducer,
                          cluster_layer=0).eval()
    with torch.no_grad():
        out = backbone(torch.randn(2, 3, 64, 64))
    assert out.assignment.sizes.shape == (2, 8)  # 16 patches, half kept
    assert out.features[-1].shape == (2, 8, 16)
