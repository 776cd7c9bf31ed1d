"""The pure clustering core: invariants, a slow reference of the paper's
``dpc_knn`` (``dpc_cover`` has its own in test_cover.py), gradients."""
import functools
import math

import pytest
import torch

from ailurus_mm.ops import cluster_tokens as _cluster_tokens
from ailurus_mm.ops import merge_tokens, recover_tokens, resolve_num_clusters
from ailurus_mm.ops.window import sampled_median_distance


# The paper's clustering, which the reference below writes with loops.
cluster_tokens = functools.partial(_cluster_tokens, reducer='dpc_knn')


def _tokens(batch=2, hw=(6, 7), channels=8, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, hw[0] * hw[1], channels, generator=generator)


def reference_clustering(x, hw_shape, num_clusters, k, spatial_weight,
                         window=None):
    """docs/method.md steps 1-5 written with loops over tokens, one image.

    Returns (anchors sorted, index) as Python lists.
    """
    num_tokens, channels = x.shape
    height, width = hw_shape
    pos = [(i // width, i % width) for i in range(num_tokens)]

    def feat(i, j):
        return math.sqrt(sum((float(x[i, c]) - float(x[j, c]))**2
                             for c in range(channels))) / math.sqrt(channels)

    def candidates(i):
        if window is None:
            return [j for j in range(num_tokens) if j != i]
        return [
            j for j in range(num_tokens) if j != i
            and abs(pos[i][0] - pos[j][0]) <= window
            and abs(pos[i][1] - pos[j][1]) <= window
        ]

    if window is None:
        all_d = sorted(feat(i, j) for i in range(num_tokens)
                       for j in range(num_tokens))
        scale = all_d[(len(all_d) - 1) // 2]  # torch.median: lower median
    else:
        scale = float(sampled_median_distance(x[None])[0])

    def dist(i, j):
        spatial = math.dist(pos[i], pos[j]) / max(hw_shape)
        return feat(i, j) + spatial_weight * scale * spatial

    rho = []
    for i in range(num_tokens):
        near = sorted(dist(i, j) for j in candidates(i))[:k]
        rho.append(math.exp(-sum((d / scale)**2 for d in near) / len(near)))
    # strict order: higher density first, ties by lower index
    order = sorted(range(num_tokens), key=lambda i: (-rho[i], i))
    rank = {token: r for r, token in enumerate(order)}
    delta = []
    largest_window = max(
        dist(i, j) for i in range(num_tokens) for j in candidates(i))
    for i in range(num_tokens):
        denser = [dist(i, j) for j in candidates(i) if rank[j] < rank[i]]
        if denser:
            delta.append(min(denser))
        elif window is None:
            delta.append(max(dist(i, j) for j in candidates(i)))
        else:
            delta.append(largest_window)
    score = [rho[i] * delta[i] for i in range(num_tokens)]
    by_score = sorted(range(num_tokens), key=lambda i: (-score[i], i))
    anchors = sorted(by_score[:num_clusters])
    index = []
    for i in range(num_tokens):
        if i in anchors:
            index.append(anchors.index(i))
            continue
        near = [a for a in anchors if a in candidates(i)]
        # window: only anchors in the window, unless there are none
        pool = near if window is not None and near else anchors
        feats = [feat(i, a) for a in pool]
        index.append(anchors.index(pool[feats.index(min(feats))]))
    return anchors, index


@pytest.mark.parametrize('window', [None, 1, 2])
@pytest.mark.parametrize('spatial_weight', [0.0, 1.0])
def test_matches_slow_reference(window, spatial_weight):
    x = _tokens(batch=2, hw=(5, 6), channels=6, seed=3).double()
    result = cluster_tokens(
        x, (5, 6), 12, k=4, spatial_weight=spatial_weight, window=window)
    for b in range(2):
        anchors, index = reference_clustering(x[b], (5, 6), 12, 4,
                                              spatial_weight, window)
        assert result.anchors[b].tolist() == anchors
        assert result.index[b].tolist() == index


@pytest.mark.parametrize('window', [None, 2])
@pytest.mark.parametrize('num_clusters', [1, 7, 0.5, 41])
def test_every_token_in_exactly_one_cluster(num_clusters, window):
    x = _tokens()
    result = cluster_tokens(x, (6, 7), num_clusters, window=window)
    num_anchors = resolve_num_clusters(num_clusters, 42)
    assert result.index.shape == (2, 42)
    assert result.sizes.shape == (2, num_anchors)
    assert result.index.min() >= 0 and result.index.max() < num_anchors
    for b in range(2):
        counts = torch.bincount(result.index[b], minlength=num_anchors)
        assert torch.equal(counts.float(), result.sizes[b])
    assert torch.equal(result.sizes.sum(1), torch.full((2, ), 42.))
    assert (result.sizes >= 1).all()  # no empty cluster


@pytest.mark.parametrize('window', [None, 1])
def test_anchors_map_to_themselves(window):
    x = _tokens()
    result = cluster_tokens(x, (6, 7), 10, window=window)
    cluster_of_anchor = result.index.gather(1, result.anchors)
    assert torch.equal(cluster_of_anchor,
                       torch.arange(10).expand(2, -1))


def test_duplicate_tokens_keep_anchors_in_own_cluster():
    x = torch.zeros(1, 16, 4)  # every token identical: all distances tie
    result = cluster_tokens(x, (4, 4), 5)
    assert torch.equal(
        result.index.gather(1, result.anchors), torch.arange(5)[None])
    assert result.sizes.sum() == 16


def test_all_tokens_kept_is_identity():
    x = _tokens()
    result = cluster_tokens(x, (6, 7), 1.0)
    assert torch.equal(result.index, torch.arange(42).expand(2, -1))
    merged = merge_tokens(x, result.index, result.sizes)
    assert torch.equal(merged, x)


@pytest.mark.parametrize('window', [None, 2])
def test_deterministic(window):
    x = _tokens(seed=5)
    first = cluster_tokens(x, (6, 7), 0.4, window=window)
    second = cluster_tokens(x.clone(), (6, 7), 0.4, window=window)
    assert torch.equal(first.index, second.index)
    assert torch.equal(first.anchors, second.anchors)


@pytest.mark.parametrize('window', [None, 2])
def test_batch_equals_single_images(window):
    x = _tokens(batch=3, seed=7)
    batched = cluster_tokens(x, (6, 7), 0.3, window=window)
    for b in range(3):
        single = cluster_tokens(x[b:b + 1], (6, 7), 0.3, window=window)
        assert torch.equal(batched.index[b], single.index[0])
        assert torch.equal(batched.anchors[b], single.anchors[0])


def test_merge_recover_round_trip():
    x = _tokens()
    result = cluster_tokens(x, (6, 7), 9)
    merged = merge_tokens(x, result.index, result.sizes)
    # Features constant within clusters survive merge and recover unchanged.
    piecewise = recover_tokens(merged, result.index)
    again = merge_tokens(piecewise, result.index, result.sizes)
    torch.testing.assert_close(again, merged)
    torch.testing.assert_close(recover_tokens(again, result.index), piecewise)


def test_merge_is_size_weighted_mean():
    x = torch.tensor([[[1.], [3.], [10.]]])
    index = torch.tensor([[0, 0, 1]])
    token_sizes = torch.tensor([[1., 3., 2.]])
    sizes = torch.tensor([[4., 2.]])
    merged = merge_tokens(x, index, sizes, token_sizes)
    torch.testing.assert_close(merged, torch.tensor([[[2.5], [10.]]]))


def test_merge_and_recover_are_differentiable():
    x = _tokens(batch=1, hw=(3, 4), channels=3).double().requires_grad_()
    result = cluster_tokens(x, (3, 4), 5)
    assert not result.sizes.requires_grad

    def merge_then_recover(features):
        merged = merge_tokens(features, result.index, result.sizes)
        return recover_tokens(merged, result.index)

    assert torch.autograd.gradcheck(merge_then_recover, (x, ))


@pytest.mark.parametrize('value,error,match', [
    (0, ValueError, r'num_clusters must be >= 1'),
    (-3, ValueError, r'num_clusters must be >= 1'),
    (0.0, ValueError, r'in \(0, 1\], got 0.0'),
    (1.5, ValueError, r'in \(0, 1\], got 1.5'),
    (True, TypeError, r'int count or a float fraction'),
    ('half', TypeError, r'int count or a float fraction'),
])
def test_resolve_num_clusters_rejects(value, error, match):
    with pytest.raises(error, match=match):
        resolve_num_clusters(value, 100)


@pytest.mark.parametrize('value,expected', [(1, 1), (60, 60), (500, 100),
                                            (0.65, 65), (1.0, 100),
                                            (0.001, 1)])
def test_resolve_num_clusters(value, expected):
    assert resolve_num_clusters(value, 100) == expected


def test_hw_shape_must_match_tokens():
    with pytest.raises(ValueError, match=r'hw_shape \(4, 4\) does not match'):
        cluster_tokens(_tokens(), (4, 4), 0.5)


def test_window_never_builds_token_by_token_matrix(monkeypatch):
    import ailurus_mm.ops.reducers as reducers

    def forbidden(*args, **kwargs):
        raise AssertionError('global N x N distance used with a window')

    monkeypatch.setattr(reducers, 'density_peaks', forbidden)
    monkeypatch.setattr(reducers, 'spatial_aware_distance', forbidden)
    result = cluster_tokens(_tokens(), (6, 7), 0.5, window=2)
    assert result.sizes.sum() == 84


def test_segment_sum_is_scatter_add_bit_for_bit():
    """``segment_sum`` (``index_add_`` over flattened rows, for speed)
    gives exactly ``scatter_add_``'s floats and gradient, per image."""
    from ailurus_mm.ops.merge import segment_sum

    generator = torch.Generator().manual_seed(0)
    values = torch.randn(3, 500, 64, generator=generator) * 100
    index = torch.randint(0, 37, (3, 500), generator=generator)
    values.requires_grad_(True)
    got = segment_sum(values, index, 37)
    expected = values.new_zeros(3, 37, 64).scatter_add(
        1, index.unsqueeze(-1).expand(-1, -1, 64), values)
    assert torch.equal(got, expected)
    weights = torch.randn(3, 37, 64, generator=generator)
    grad_got, = torch.autograd.grad((got * weights).sum(), values)
    grad_expected, = torch.autograd.grad((expected * weights).sum(), values)
    assert torch.equal(grad_got, grad_expected)


def test_densities_do_not_depend_on_the_products_rounding():
    """Tokens in tight groups far apart: ``|x|^2 + |y|^2 - 2 x.y`` cancels
    for neighbours, so the matrix's near distances carry its rounding; the
    densities and distance indicators take theirs from the feature
    differences, as float64 would."""
    from ailurus_mm.ops.density import density_peaks
    generator = torch.Generator().manual_seed(0)
    centres = torch.randn(1, 24, 64, generator=generator)
    x = centres.repeat_interleave(8, dim=1) + 0.03 * torch.randn(
        1, 192, 64, generator=generator)
    rho, delta, _ = density_peaks(x, (12, 16), 5, 1.0)
    rho64, delta64, _ = density_peaks(x.double(), (12, 16), 5, 1.0)
    assert torch.allclose(rho.double(), rho64, rtol=1e-6, atol=0)
    assert torch.allclose(delta.double(), delta64, rtol=1e-6, atol=0)
