"""ONNX export (ailurus_mm/deploy.py): vanilla, AiluRus at the defaults with
merged decoding, and every reducer (or its refusal), run by ONNX Runtime
against PyTorch on a tiny Segmenter; the tool and the ONNX Runtime
benchmark end to end. Speed is a benchmark figure, not tested here."""
import os.path as osp

import numpy as np
import pytest
import torch

from ailurus_mm.ops import REDUCERS

ort = pytest.importorskip('onnxruntime', reason='the deploy extra '
                          '(pip install -e .[deploy]) is not installed')

AILURUS_T = osp.join(
    osp.dirname(osp.dirname(osp.abspath(__file__))), 'configs', 'segmenter',
    'ailurus_segmenter_vit-t_mask_8xb1-160k_ade20k-512x512.py')
# 96x128: 6x8 = 48 patch tokens, room for every reducer's windows
SHAPE = (96, 128)


@pytest.fixture(scope='module')
def tiny_segmentor():
    """A tiny AiluRus Segmenter (3 layers, clustering after layer 0) with
    random weights, merged decoding on, and its state dict."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    import ailurus_mm.models  # noqa: F401
    cfg = Config.fromfile(AILURUS_T)
    cfg.model.pretrained = None
    cfg.model.data_preprocessor.size = SHAPE
    cfg.model.backbone.update(img_size=SHAPE, embed_dims=32, num_layers=3,
                              num_heads=2, cluster_layer=0)
    cfg.model.decode_head.update(in_channels=32, channels=32, num_heads=2,
                                 embed_dims=32, num_layers=1)
    init_default_scope('mmseg')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).eval()
    return cfg, model


def _compare(model, tmp_path, name):
    from ailurus_mm.deploy import SegmentorLogits, export_onnx

    path = export_onnx(model, SHAPE, str(tmp_path / f'{name}.onnx'))
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    # against mmseg's own encode_decode (its resize: F.interpolate)
    module = SegmentorLogits(model, SHAPE, product_resize=False).eval()
    assert SegmentorLogits(model, SHAPE).product_resize
    import onnx
    assert 'Resize' not in {node.op_type
                            for node in onnx.load(path).graph.node}
    for seed in (1, 2):  # the graph is not the traced input's only
        x = torch.randn(1, 3, *SHAPE,
                        generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            expected = module(x).numpy()
        got = session.run(None, {'inputs': x.numpy()})[0]
        assert got.shape == expected.shape == (1, 150, *SHAPE)
        assert (got.argmax(1) == expected.argmax(1)).mean() >= 0.999
        assert np.abs(got - expected).max() <= 1e-3, name


@pytest.mark.parametrize('align_corners', [False, True])
def test_the_product_resize_is_interpolate(align_corners):
    from ailurus_mm.deploy import bilinear_resize
    generator = torch.Generator().manual_seed(0)
    for small in [(6, 8), (5, 7), (45, 60), (1, 1)]:
        x = torch.randn(2, 3, *small, generator=generator)
        for size in [(96, 128), (17, 9), (2, 3), (1, 1), small]:
            expected = torch.nn.functional.interpolate(
                x, size=size, mode='bilinear', align_corners=align_corners)
            got = bilinear_resize(x, size, align_corners)
            assert got.shape == expected.shape
            assert torch.allclose(got, expected, atol=1e-5, rtol=0), (
                small, size)


def test_the_vanilla_model_exports(tiny_segmentor, tmp_path):
    from mmseg.registry import MODELS

    import ailurus_mm
    cfg, model = tiny_segmentor
    vanilla = ailurus_mm.to_vanilla_config(cfg)
    torch.manual_seed(0)
    plain = MODELS.build(vanilla.model).eval()
    plain.load_state_dict(model.state_dict())
    _compare(plain, tmp_path, 'vanilla')


@pytest.mark.parametrize('reducer', [r for r in REDUCERS
                                     if r != 'farthest'])
def test_every_reducer_exports_with_merged_decoding(tiny_segmentor,
                                                    tmp_path, reducer):
    import ailurus_mm
    _, model = tiny_segmentor
    ailurus_mm.apply(model, reducer=reducer, num_clusters=0.25)
    _compare(model, tmp_path, reducer)


@pytest.mark.parametrize('knobs, match', [
    (dict(reducer='farthest'), r"reducer='farthest' does not export to "
     r'ONNX: its M - 1 sequential'),
    (dict(window=2), r'window=2 does not export to ONNX'),
])
def test_what_does_not_export_is_refused_up_front(tiny_segmentor, knobs,
                                                  match, tmp_path):
    import ailurus_mm
    from ailurus_mm.deploy import export_onnx

    _, model = tiny_segmentor
    ailurus_mm.apply(model, **knobs)
    try:
        with pytest.raises(ValueError, match=match):
            export_onnx(model, SHAPE, str(tmp_path / 'x.onnx'))
        assert not (tmp_path / 'x.onnx').exists()
    finally:
        ailurus_mm.apply(model, reducer='dpc_cover', window=None)


def test_the_exported_median_is_the_median(tmp_path):
    """The exported median (bisection, then a selection of static width)
    is ``torch.median``'s value on distances crowded around their median
    with far outliers and many zeros, where too few bisection steps once
    left the interval wider than the selection (another scale than eager,
    hence other anchors, on 2 of 20 CamVid images)."""
    from ailurus_mm.ops.density import lower_median

    class Median(torch.nn.Module):

        def forward(self, values):
            return lower_median(values)

    def distances(spread, outliers, zeros, seed):
        generator = torch.Generator().manual_seed(seed)
        values = (torch.randn(2, 60000, generator=generator) * spread +
                  0.07).abs()
        values[:, :600] *= outliers
        values[:, 600:600 + zeros] = 0
        return values

    path = str(tmp_path / 'median.onnx')
    torch.onnx.export(Median(), (distances(1e-3, 30, 0, 0), ), path,
                      opset_version=17, dynamo=False, input_names=['values'])
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    for seed, (spread, outliers, zeros) in enumerate(
            [(1e-3, 30, 0), (1e-5, 300, 0), (1e-5, 300, 20000),
             (1e-4, 100, 29000)]):
        values = distances(spread, outliers, zeros, seed + 1)
        if seed == 1:
            values = values.round(decimals=5)  # many equal values
        got = session.run(None, {'values': values.numpy()})[0]
        np.testing.assert_array_equal(got, values.median(dim=1).values)


def test_a_dynamic_batch_runs_two_images(tiny_segmentor, tmp_path):
    import ailurus_mm
    from ailurus_mm.deploy import SegmentorLogits, export_onnx

    _, model = tiny_segmentor
    ailurus_mm.apply(model, reducer='dpc_cover', num_clusters=0.25)
    path = export_onnx(model, SHAPE, str(tmp_path / 'b.onnx'),
                       dynamic_batch=True)
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    x = torch.randn(2, 3, *SHAPE, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = SegmentorLogits(model, SHAPE)(x).numpy()
    got = session.run(None, {'inputs': x.numpy()})[0]
    assert np.abs(got - expected).max() <= 1e-3


@pytest.mark.slow
def test_the_tool_and_the_onnx_benchmark(tmp_path, capsys):
    """tools/export_onnx.py on a config and checkpoint, and
    tools/benchmark.py --runtime onnxruntime (both runtimes, one
    process)."""
    from mmengine.config import Config

    from ailurus_mm.benchmarks.cli import benchmark_main
    from ailurus_mm.deploy import export_main

    config = tmp_path / 'tiny.py'
    config.write_text(
        f'_base_ = [{AILURUS_T!r}]\n'
        'model = dict(pretrained=None, data_preprocessor=dict(size=(64, 64)),'
        ' backbone=dict(img_size=(64, 64), embed_dims=32, num_layers=3, '
        'num_heads=2, cluster_layer=0), decode_head=dict(in_channels=32, '
        'channels=32, num_heads=2, embed_dims=32, num_layers=1))\n')
    from ailurus_mm.benchmarks.variants import build_variants
    models = build_variants(Config.fromfile(str(config)), names=('vanilla', ))
    checkpoint = tmp_path / 'tiny.pth'
    torch.save({'state_dict': models['vanilla'].state_dict()}, checkpoint)
    out = tmp_path / 'm.onnx'
    export_main([str(config), str(checkpoint), '--shape', '64', '64',
                 '--out', str(out)])
    assert out.stat().st_size > 0
    with pytest.raises(SystemExit):  # never replaced silently
        export_main([str(config), str(checkpoint), '--shape', '64', '64',
                     '--out', str(out)])
    result = benchmark_main([str(config), '--checkpoint', str(checkpoint),
                             '--runtime', 'onnxruntime', '--warmup', '0',
                             '--runs', '1', '--threads', '1'])
    assert set(result['seconds']) == {
        f'{runtime}/{name}' for runtime in ('onnxruntime', 'pytorch')
        for name in ('vanilla', 'ailurus', 'ideal')}
    assert result['speedup_ratio'] == pytest.approx(
        result['onnxruntime_speedup'] / result['pytorch_speedup'])
    assert 'ONNX Runtime speed-up / PyTorch speed-up' in \
        capsys.readouterr().out


def test_the_exported_clustering_is_pytorchs_on_near_ties(tmp_path):
    """``cluster_tokens`` at the defaults, exported alone, run by ONNX
    Runtime on tokens in tight groups far from the origin (a matrix
    product's terms cancel there, and ONNX Runtime's product rounds
    otherwise than PyTorch's): the same anchors and clusters, because
    the densities, distance indicators and near ties of the assignment
    are computed from the feature differences."""
    from ailurus_mm.ops import cluster_tokens

    hw = (24, 32)

    class Clusters(torch.nn.Module):

        def forward(self, x):
            out = cluster_tokens(x, hw, 0.25)
            return out.index, out.anchors

    generator = torch.Generator().manual_seed(0)
    groups = 4.0 * torch.randn(2, 96, 64, generator=generator)
    x = groups.repeat_interleave(8, dim=1) + 0.05 * torch.randn(
        2, 768, 64, generator=generator) + 8.0
    path = str(tmp_path / 'clusters.onnx')
    torch.onnx.export(Clusters(), (x[:1], ), path, opset_version=17,
                      dynamo=False, input_names=['x'],
                      dynamic_axes={'x': {0: 'batch'}})
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    for image in x.split(1):
        index, anchors = Clusters()(image)
        got_index, got_anchors = session.run(None, {'x': image.numpy()})
        assert np.array_equal(got_anchors, anchors.numpy())
        assert np.array_equal(got_index, index.numpy())
