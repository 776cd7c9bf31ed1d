"""``dpc_cover`` (ailurus_mm.ops.cover): the vectorised steps against loop
references on small inputs, and the properties the design promises."""
import math

import pytest
import torch

from ailurus_mm.ops import cluster_tokens
from ailurus_mm.ops.cover import (assign_in_windows, cover_anchors,
                                  cover_clusters, covering_radii,
                                  disk_rectangles, suppress,
                                  suppression_radii, token_priority,
                                  window_layout)


def _tokens(batch=2, hw=(7, 9), channels=6, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, hw[0] * hw[1], channels, generator=generator)


def _chebyshev(a: int, b: int, width: int) -> int:
    return max(abs(a // width - b // width), abs(a % width - b % width))


# -- loop references ---------------------------------------------------------
def _greedy(order, width, radius2):
    taken = []
    for token in order:
        if all((token // width - t // width)**2 +
               (token % width - t % width)**2 > radius2 for t in taken):
            taken.append(token)
    return taken


def _anchors_reference(score, hw, num_anchors):
    """Per image: the widest candidate disk whose greedy pass in score
    order (ties: lower index) takes at least M tokens (else the smallest),
    its M best, then the best skipped tokens."""
    width = hw[1]
    radii2 = suppression_radii(math.sqrt(hw[0] * hw[1] / num_anchors))
    result, chosen = [], []
    for row in score.tolist():
        order = sorted(range(len(row)), key=lambda i: (-row[i], i))
        passes = [(r2, _greedy(order, width, r2)) for r2 in radii2]
        enough = [p for p in passes if len(p[1]) >= num_anchors]
        radius2, taken = enough[-1] if enough else passes[0]
        skipped = [t for t in order if t not in taken]
        result.append(sorted((taken + skipped)[:num_anchors]))
        chosen.append(radius2)
    return torch.tensor(result), torch.tensor(chosen)


def _assign_reference(x, centres, anchors, hw, radii):
    width = hw[1]
    index = []
    for b in range(x.shape[0]):
        row = []
        for token in range(x.shape[1]):
            best = None
            for m, anchor in enumerate(anchors[b].tolist()):
                ring = _chebyshev(token, anchor, width)
                if ring > int(radii[b]):
                    continue
                dy = token // width - anchor // width
                dx = token % width - anchor % width
                dist = float((x[b, token].double() -
                              centres[b, m].double()).pow(2).sum())
                key = (dist, ring, dy, dx)
                if best is None or key < best[0]:
                    best = (key, m)
            row.append(best[1])
        index.append(row)
    return torch.tensor(index)


def test_the_rectangles_make_up_the_disk():
    for radius2 in range(1, 60):
        half = math.isqrt(radius2)
        disk = {(dy, dx) for dy in range(-half, half + 1)
                for dx in range(-half, half + 1)
                if dy * dy + dx * dx <= radius2}
        union = {(dy, dx) for a, b in disk_rectangles(radius2)
                 for dy in range(-a, a + 1) for dx in range(-b, b + 1)}
        assert union == disk, radius2


def test_suppression_radii_are_the_distinct_disks():
    assert suppression_radii(1.0) == [1]
    assert suppression_radii(2.0) == [1, 2, 4]  # 1.2 * 4 = 4.8
    assert suppression_radii(2.6) == [1, 2, 4, 5, 8]  # 8.11


@pytest.mark.parametrize('num_anchors', [1, 4, 11, 20, 30, 63])
def test_anchors_equal_the_sequential_greedy_pass(num_anchors):
    score = torch.rand(3, 63, generator=torch.Generator().manual_seed(1))
    score[2] = score[2].round(decimals=1)  # ties: the lower index first
    got = cover_anchors(score, (7, 9), num_anchors)
    anchors, radius2 = _anchors_reference(score, (7, 9), num_anchors)
    assert torch.equal(got.anchors, anchors)
    assert torch.equal(got.radius2, radius2)


@pytest.mark.parametrize('radius2', [1, 2, 4, 5, 9])
def test_suppression_rounds_on_a_monotone_grid(radius2):
    """Scores falling along the raster order need many rounds (a
    wavefront); the result is still the greedy pass."""
    score = -torch.arange(8 * 10, dtype=torch.float32)[None]
    taken = suppress(token_priority(score), (8, 10), [radius2])[0, 0]
    expected = _greedy(range(80), 10, radius2)
    assert taken.nonzero().flatten().tolist() == expected


@pytest.mark.parametrize('minimum', [1, 2])
def test_windowed_assignment_equals_the_loop(minimum):
    x = _tokens()
    score = torch.rand(2, 63, generator=torch.Generator().manual_seed(2))
    anchors = cover_anchors(score, (7, 9), 8).anchors
    radii = covering_radii(anchors, (7, 9), minimum)
    centres = _tokens(2, (2, 4), 6, seed=3)
    got = assign_in_windows(window_layout(x, anchors, (7, 9), radii),
                            centres)
    assert torch.equal(got, _assign_reference(x, centres, anchors, (7, 9),
                                              radii))


@pytest.mark.parametrize('exporting', [False, True])
def test_near_ties_are_decided_on_the_features(monkeypatch, exporting):
    """Tokens and centres far from the origin: the matrix product's terms
    cancel and its rounding is far above the gaps between a token's
    nearest centres, which the feature differences still resolve (eager,
    on the few close tokens, and the exported graph's static path, on
    all)."""
    from ailurus_mm.ops import cover
    monkeypatch.setattr(cover, 'exporting', lambda: exporting)
    offset = 1000.0 * torch.randn(
        6, generator=torch.Generator().manual_seed(4))
    x = _tokens() + offset
    score = torch.rand(2, 63, generator=torch.Generator().manual_seed(2))
    anchors = cover_anchors(score, (7, 9), 8).anchors
    radii = covering_radii(anchors, (7, 9), 2)
    centres = _tokens(2, (2, 4), 6, seed=3) + offset
    got = assign_in_windows(window_layout(x, anchors, (7, 9), radii, 2),
                            centres)
    assert torch.equal(got, _assign_reference(x, centres, anchors, (7, 9),
                                              radii))


@pytest.mark.parametrize('side', [1, 3, 5, 40])
def test_the_tile_size_changes_nothing(monkeypatch, side):
    from ailurus_mm.ops import cover
    x = _tokens(hw=(12, 17))
    score = torch.rand(2, 12 * 17,
                       generator=torch.Generator().manual_seed(2))
    default = cover_clusters(x, (12, 17), score, 30)
    monkeypatch.setattr(cover, 'tile_side', lambda reach: side)
    assert all(torch.equal(a, b) for a, b in zip(
        default, cover_clusters(x, (12, 17), score, 30)))


# -- properties --------------------------------------------------------------
def _pairwise_chebyshev(anchors, width):
    rows, cols = anchors // width, anchors % width
    return torch.maximum((rows[:, None] - rows[None]).abs(),
                         (cols[:, None] - cols[None]).abs())


@pytest.mark.parametrize('num_clusters', [0.5, 0.25, 0.15, 0.05])
@pytest.mark.parametrize('hw', [(12, 16), (23, 30)])
def test_anchors_keep_the_suppression_radius_apart(num_clusters, hw):
    """No two anchors within the chosen disk, unless even the smallest disk
    leaves fewer than M tokens: then only the fillers (the best skipped
    tokens) are nearer."""
    num_tokens = hw[0] * hw[1]
    num_anchors = round(num_clusters * num_tokens)
    score = torch.rand(2, num_tokens,
                       generator=torch.Generator().manual_seed(4))
    got = cover_anchors(score, hw, num_anchors)
    for b in range(2):
        anchors = got.anchors[b]
        rows, cols = anchors // hw[1], anchors % hw[1]
        near = (rows[:, None] - rows[None])**2 + (
            cols[:, None] - cols[None])**2 <= got.radius2[b]
        near.fill_diagonal_(False)
        kept = ~got.filled[b]
        assert not near[kept][:, kept].any()
        if got.filled[b].any():
            assert int(got.radius2[b]) == 1  # the smallest disk
    if num_clusters <= 0.25:  # M small enough: suppression alone
        assert not got.filled.any()
        assert (got.radius2 > 1).any() or num_clusters == 0.25


@pytest.mark.parametrize('num_clusters', [0.5, 0.25, 0.15, 3])
def test_every_token_joins_an_anchor_within_its_window(num_clusters):
    hw = (12, 16)
    x = _tokens(batch=2, hw=hw, channels=8)
    num_tokens = hw[0] * hw[1]
    out = cluster_tokens(x, hw, num_clusters, reducer='dpc_cover')
    num_anchors = out.sizes.shape[1]
    spacing = math.sqrt(num_tokens / num_anchors)
    radii = covering_radii(out.anchors, hw, max(1, int(1.5 * spacing)))
    anchor_of = out.anchors.gather(1, out.index)  # [B, N]
    tokens = torch.arange(num_tokens)
    ring = torch.maximum((tokens // hw[1] - anchor_of // hw[1]).abs(),
                         (tokens % hw[1] - anchor_of % hw[1]).abs())
    assert (ring <= radii[:, None]).all()


def test_the_window_widens_until_every_token_is_reached():
    anchors = torch.tensor([[0], [27]])  # a corner; the centre of 7x8
    radii = covering_radii(anchors, (7, 8), 1)
    assert radii.tolist() == [7, 4]
    index, _ = cover_clusters(_tokens(2, (7, 8)), (7, 8),
                              torch.rand(2, 56), 1)
    assert (index == 0).all()


def test_a_batch_equals_its_images():
    x = _tokens(batch=3, hw=(12, 16), channels=16)
    whole = cluster_tokens(x, (12, 16), 0.25, reducer='dpc_cover')
    for b in range(3):
        one = cluster_tokens(x[b:b + 1], (12, 16), 0.25, reducer='dpc_cover')
        assert torch.equal(one.index, whole.index[b:b + 1])
        assert torch.equal(one.anchors, whole.anchors[b:b + 1])


def test_lloyd_iterations_lower_the_within_cluster_spread():
    x = _tokens(batch=2, hw=(16, 16), channels=8, seed=5)
    score = torch.rand(2, 256, generator=torch.Generator().manual_seed(6))

    def spread(index):
        total = 0.0
        for b in range(2):
            for m in index[b].unique():
                members = x[b, index[b] == m]
                total += float((members - members.mean(0)).pow(2).sum())
        return total

    before = spread(cover_clusters(x, (16, 16), score, 40, iterations=0)[0])
    after = spread(cover_clusters(x, (16, 16), score, 40, iterations=3)[0])
    assert after < before
