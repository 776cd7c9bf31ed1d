"""tools/benchmark.py, visualize.py, sweep.py and demo.py on a tiny model and
a generated ADE20K-layout dataset: they run with every reducer and knob,
write their files, the numbers in them are consistent, and bad settings are
refused before any long pass."""
import csv
import re
import json
import os.path as osp

import cv2
import pytest
import torch

from ailurus_mm.benchmarks.presets import PRESET_NAMES
from ailurus_mm.ops import REDUCERS, ClusterConfig
from conftest import CONFIGS, run_tool, write_tiny_config

AILURUS_B = osp.join(
    CONFIGS, 'segmenter',
    'ailurus_segmenter_vit-b_mask_8xb1-160k_ade20k-512x512.py')


@pytest.fixture(scope='module')
def tiny(tmp_path_factory, ade20k_root):
    """A tiny AiluRus config (64x64 crops: 16 patch tokens, 3 layers,
    clustering after layer 0 to 8 tokens) and a checkpoint of its model."""
    from mmengine.config import Config

    from ailurus_mm.benchmarks.variants import build_variants

    tmp = tmp_path_factory.mktemp('analysis')
    config = write_tiny_config(
        str(tmp / 'tiny.py'), AILURUS_B, ade20k_root,
        backbone=dict(cluster_layer=0, num_clusters=0.5))
    model = build_variants(Config.fromfile(config), names=('vanilla', ))
    checkpoint = str(tmp / 'tiny.pth')
    torch.save({'meta': {}, 'state_dict': model['vanilla'].state_dict()},
               checkpoint)
    return config, checkpoint


def _flops(module, *inputs):
    from mmengine.analysis import FlopAnalyzer

    analyzer = FlopAnalyzer(module, inputs)
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    with torch.no_grad():
        return int(analyzer.total())


class _HeadForward(torch.nn.Module):
    def __init__(self, head):
        super().__init__()
        self.head = head

    def forward(self, x):
        return self.head((x, ))


def test_benchmark_reports_all_variants(tiny, tmp_path, capsys):
    from mmengine.config import Config

    from ailurus_mm.benchmarks.cli import benchmark_main
    from ailurus_mm.benchmarks.variants import build_variants

    config, checkpoint = tiny
    report_path = str(tmp_path / 'report.json')
    benchmark_main([config, '--checkpoint', checkpoint, '--warmup', '0',
                    '--runs', '1', '--out', report_path])
    out = capsys.readouterr().out
    with open(report_path) as f:
        report = json.load(f)
    results = report['results']
    assert list(results) == ['vanilla', 'nothing_merged', 'ideal',
                             'ideal_merged', 'ailurus', 'ailurus_merged']
    # 64x64 input, patch 16: 16 patch tokens + cls; 8 kept after layer 0
    expected_tokens = dict(vanilla=[17] * 3, nothing_merged=[17] * 3,
                           ideal=[17, 9, 9], ideal_merged=[17, 9, 9],
                           ailurus=[17, 9, 9], ailurus_merged=[17, 9, 9])
    assert {name: entry['tokens_per_layer']
            for name, entry in results.items()} == expected_tokens
    assert report['settings']['threads'] == torch.get_num_threads()
    assert report['settings']['shape'] == [64, 64]
    assert (report['settings']['patch_tokens'],
            report['settings']['kept_tokens']) == (16, 8)
    # where the time goes: the parts each variant has
    assert {name: list(entry['stages']) for name, entry in results.items()
            } == dict(
                vanilla=['backbone', 'decode_head', 'post'],
                nothing_merged=['backbone', 'recover', 'decode_head', 'post'],
                ideal=['backbone', 'recover', 'decode_head', 'post'],
                ideal_merged=['backbone', 'decode_head', 'post'],
                ailurus=['backbone', 'recover', 'decode_head', 'post'],
                ailurus_merged=['backbone', 'decode_head', 'post'])
    assert len({e['parameters'] for e in results.values()}) == 1
    assert all(e['peak_memory_bytes'] > 0 for e in results.values())

    # FLOPs against counts of the parts alone: two layers and the final
    # norm on 9 instead of 17 tokens; the decode head on 8 merged tokens
    # instead of the 4 x 4 grid.
    model = build_variants(Config.fromfile(config), checkpoint,
                           names=('vanilla', ))['vanilla']
    layer, norm = model.backbone.layers[1], model.backbone.norm1
    saved_layers = 2 * (_flops(layer, torch.randn(1, 17, 32)) -
                        _flops(layer, torch.randn(1, 9, 32))) + (
                            _flops(norm, torch.randn(1, 17, 32)) -
                            _flops(norm, torch.randn(1, 9, 32)))
    head = _HeadForward(model.decode_head)
    saved_head = _flops(head, torch.randn(1, 32, 4, 4)) - _flops(
        head, torch.randn(1, 32, 1, 8))
    flops = {name: entry['flops'] for name, entry in results.items()}
    assert saved_layers > 0 and saved_head > 0
    assert flops['nothing_merged'] == flops['vanilla']
    assert flops['vanilla'] - flops['ideal'] == saved_layers
    assert flops['ideal'] - flops['ideal_merged'] == saved_head
    assert flops['ailurus'] - flops['ailurus_merged'] == saved_head
    # AiluRus does what the ideal reducer does, plus the clustering
    assert flops['ideal'] < flops['ailurus']
    summary = report['summary']
    assert 0 < summary['cluster_recover_share'] < 1
    assert 0 < summary['cluster_share_merged'] < 1
    assert set(summary['over_ideal']) == {'ailurus', 'ailurus_merged'}
    assert report['settings']['clustering'] == dict(
        ClusterConfig.defaults(), cluster_layer=0, num_clusters=0.5)
    assert 'ailurus time / ideal time' in out
    assert 'ailurus_merged time / ideal_merged time' in out
    assert 'where the time goes' in out
    assert '16 -> 8 patch tokens' in out


def test_benchmark_train_mode(tiny, tmp_path):
    from ailurus_mm.benchmarks.cli import benchmark_main

    config, _ = tiny
    report_path = str(tmp_path / 'train.json')
    benchmark_main([config, '--mode', 'train', '--warmup', '0', '--runs',
                    '1', '--no-flops', '--no-memory', '--out', report_path])
    with open(report_path) as f:
        report = json.load(f)
    assert report['settings']['mode'] == 'train'
    assert report['results']['ailurus']['tokens_per_layer'] == [17, 9, 9]
    assert report['results']['vanilla']['flops'] is None


def test_visualize_writes_one_png_per_image(tiny, tmp_path, ade20k_root,
                                            capsys):
    from ailurus_mm.benchmarks.cli import visualize_main

    config, checkpoint = tiny
    images = [
        osp.join(ade20k_root, 'images', 'validation',
                 f'ADE_val_{i:08d}.jpg') for i in (1, 2)
    ]
    # A wide image: the test pipeline keeps its aspect ratio.
    wide = str(tmp_path / 'wide.jpg')
    cv2.imwrite(wide, cv2.resize(cv2.imread(images[0]), (480, 270)))
    visualize_main([config, checkpoint, *images, wide, '--out-dir',
                    str(tmp_path / 'vis')])
    out = capsys.readouterr().out
    # 128x96 images resized into the pipeline's (128, 64): 85x64, shown in
    # 2 x 2 panels under 28-pixel captions; two 64x64 slide windows of
    # 4 x 4 patches, half of them kept in each
    for i in (1, 2):
        png = cv2.imread(str(tmp_path / 'vis' /
                             f'ADE_val_{i:08d}_ailurus.png'))
        assert png.shape == (2 * (64 + 28), 2 * 85, 3)
    assert out.count('85x64 input, 32 -> 16 tokens') == 2
    # 480x270: 114x64, three windows
    png = cv2.imread(str(tmp_path / 'vis' / 'wide_ailurus.png'))
    assert png.shape == (2 * (64 + 28), 2 * 114, 3)
    assert '114x64 input, 48 -> 24 tokens' in out


def test_visualize_names_missing_and_corrupt_images(tiny, tmp_path,
                                                    capsys):
    from ailurus_mm.benchmarks.cli import visualize_main

    config, checkpoint = tiny
    corrupt = tmp_path / 'corrupt.jpg'
    corrupt.write_bytes(b'\xff\xd8\xff\xe0 not really a jpeg')
    missing = tmp_path / 'nope.jpg'
    with pytest.raises(SystemExit) as exit_info:
        visualize_main([config, checkpoint, str(missing), str(corrupt),
                        '--out-dir', str(tmp_path / 'vis')])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f'{missing}: no such file' in err
    assert f'{corrupt}: not an image OpenCV can decode' in err
    assert not (tmp_path / 'vis').exists()


def test_sweep_csv_and_plot(tiny, tmp_path):
    from mmengine.config import Config

    from ailurus_mm.benchmarks.cli import sweep_main

    config, checkpoint = tiny
    out_dir = tmp_path / 'sweep'
    sweep_main([config, checkpoint, '--num-clusters', '0.25', '0.5', '1.0',
                '--cluster-layer', '0', '1', '--out-dir', str(out_dir)])
    with open(out_dir / 'sweep.csv') as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 + 2 * 3
    assert rows[0]['setting'] == 'vanilla'
    assert [(r['cluster_layer'], r['num_clusters']) for r in rows[1:]] == [
        ('0', '0.25'), ('0', '0.5'), ('0', '1.0'), ('1', '0.25'),
        ('1', '0.5'), ('1', '1.0')
    ]
    assert all(int(r['images']) == 2 for r in rows)  # the validation split
    # Every knob of the measured model; prop_attn unset is the config's
    # (AiluRusViT's default), not False.
    assert set(ClusterConfig.names()) <= set(rows[1])
    backbone = Config.fromfile(config).model.backbone
    assert {r['prop_attn'] for r in rows[1:]} == {
        str(ClusterConfig.from_mapping(backbone).prop_attn)}
    # nothing merged: exactly the vanilla model, so exactly its mIoU
    for row in rows[1:]:
        if row['num_clusters'] == '1.0':
            assert row['mIoU'] == rows[0]['mIoU']
    png = cv2.imread(str(out_dir / 'sweep.png'))
    assert png is not None and png.shape == (480, 640, 3)


@pytest.mark.slow
def test_demo_prints_speed_tokens_and_agreement(tiny, tmp_path):
    from mmengine.config import Config

    from ailurus_mm.benchmarks.variants import build_variants
    from ailurus_mm.benchmarks.speed.inputs import make_batch

    config, checkpoint = tiny
    out = run_tool('demo', [
        '--config', config, '--checkpoint', checkpoint, '--warmup', '0',
        '--runs', '1', '--threads', '1', '--accuracy-images', '2'
    ], cwd=str(tmp_path))
    assert 'tokens: 16 patch tokens -> 8 after layer 0' in out
    # The shipped proxy model at 640x640 (40 x 40 patches), at the default
    # keep ratio.
    from ailurus_mm.ops import ClusterConfig
    kept = ClusterConfig().num_anchors(1600)
    assert re.search(r'accuracy \(synthetic proxy, not ADE20K\): .* 2 '
                     r'generated scenes at 640x640, 1600 -> '
                     rf'{kept} tokens .*: '
                     r'vanilla mIoU [0-9.]+, AiluRus mIoU [0-9.]+', out)
    assert 'Warning' not in out  # upstream noise filtered
    assert 'vanilla 3x17, AiluRus 1x17 + 2x9' in out
    assert 'timing both models in this process' in out and '1 threads' in out
    assert len(re.findall(r'vanilla: [0-9.]+ img/s, AiluRus: [0-9.]+ img/s, '
                          r'speed-up [0-9.]+x', out)) == 1
    agreement = float(re.search(r'agreement of the two predictions: '
                                r'([0-9.]+)%', out).group(1))
    # the two models' predictions, made here
    cfg = Config.fromfile(config)
    models = build_variants(cfg, checkpoint, names=('vanilla', 'ailurus'))
    inputs, samples = make_batch(cfg, models['vanilla'], (64, 64), 1,
                                 torch.device('cpu'))
    with torch.no_grad():
        preds = [model(inputs, samples, mode='predict')[0].pred_sem_seg.data
                 for model in models.values()]
    expected = 100 * (preds[0] == preds[1]).float().mean().item()
    assert agreement == pytest.approx(expected, abs=0.006)
    assert agreement < 100  # half the tokens merged: some pixels change


def test_demo_with_merged_decoding_predicts_the_same(tiny):
    """The config's own AiluRus model is used; merged decoding changes the
    speed, not the predictions."""
    from ailurus_mm.benchmarks.cli import demo_main

    config, checkpoint = tiny
    common = ['--config', config, '--checkpoint', checkpoint, '--warmup',
              '0', '--runs', '1', '--accuracy-images', '0']
    plain = demo_main(common + ['--cfg-options', 'model.merged_decode=False'])
    merged = demo_main(common)  # our configs decode on the merged tokens
    assert torch.equal(merged['predictions']['ailurus'],
                       plain['predictions']['ailurus'])
    assert merged['pixel_agreement'] == plain['pixel_agreement']


def test_ideal_reducer_is_not_registered():
    from mmseg.registry import MODELS

    import ailurus_mm.benchmarks.variants  # noqa: F401
    assert MODELS.get('IdealReducerViT') is None


def test_benchmark_ailurus_alone(tiny):
    from mmengine.config import Config

    from ailurus_mm.benchmarks.speed.report import format_table
    from ailurus_mm.benchmarks.speed.run import BenchmarkSpec, run_benchmark

    config, checkpoint = tiny
    report = run_benchmark(Config.fromfile(config), BenchmarkSpec(
        checkpoint, warmup=0, runs=1, variants=('ailurus', ), flops=False,
        memory=False, stages=False))
    assert list(report.results) == ['ailurus']
    assert report.results['ailurus'].speedup is None
    assert report.settings['patch_tokens'] == 16
    table = format_table(report)
    assert 'ailurus' in table and 'vanilla' not in table.split('\n', 4)[-1]


@pytest.mark.parametrize('variants,match', [
    (('vanilla', ), 'variants must include an AiluRus one'),
    (('ailurus', 'fastest'), 'variants must include an AiluRus one'),
])
def test_benchmark_rejects_variants(tiny, variants, match):
    from mmengine.config import Config

    from ailurus_mm.benchmarks.speed.run import BenchmarkSpec, run_benchmark

    with pytest.raises(ValueError, match=match):
        run_benchmark(Config.fromfile(tiny[0]),
                      BenchmarkSpec(variants=variants))


def test_sweep_and_visualize_with_merged_decoding(tiny, tmp_path,
                                                  ade20k_root):
    """A config with merged decoding: the sweep's AiluRus settings and the
    visualized predictions use it, and give what TokenRecover gives."""
    from mmengine.config import Config

    from ailurus_mm.benchmarks.sweep import SweepSpec, run_sweep
    from ailurus_mm.benchmarks.visualize import visualize_images

    config, checkpoint = tiny
    image = osp.join(ade20k_root, 'images', 'validation',
                     'ADE_val_00000001.jpg')
    results = {}
    for merged in (False, True):
        cfg = Config.fromfile(config)
        if merged:
            cfg.merge_from_dict({'model.type': 'AiluRusEncoderDecoder',
                                 'model.merged_decode': True})
        rows = run_sweep(cfg, checkpoint, SweepSpec((0.5, )),
                         out_dir=str(tmp_path / f'sweep{merged}'))
        records = visualize_images(cfg, checkpoint, [image],
                                   [str(tmp_path / f'vis{merged}.png')])
        results[merged] = (rows[1]['mIoU'], records[0]['pixel_agreement'])
    assert results[True] == results[False]


def test_variants_of_a_merged_decoding_config(tiny):
    from mmengine.config import Config

    from ailurus_mm.benchmarks.variants import (config_variant,
                                                supports_merged_decode,
                                                variant_model_cfgs)

    cfg = Config.fromfile(tiny[0])
    # Our Segmenter configs decode on the merged tokens.
    assert config_variant(cfg.model) == 'ailurus_merged'
    assert supports_merged_decode(cfg.model)
    cfg.merge_from_dict({'model.merged_decode': False})
    assert config_variant(cfg.model) == 'ailurus'
    cfg.merge_from_dict({'model.merged_decode': True})
    assert config_variant(cfg.model) == 'ailurus_merged'
    cfgs = variant_model_cfgs(cfg.model, ('vanilla', 'ailurus',
                                          'ailurus_merged'))
    assert (cfgs['vanilla'].type, cfgs['vanilla'].get('merged_decode')) == (
        'EncoderDecoder', None)
    assert cfgs['vanilla'].backbone.type == 'VisionTransformer'
    assert 'neck' not in cfgs['vanilla']
    assert cfgs['ailurus'].type == 'EncoderDecoder'
    assert 'merged_decode' not in cfgs['ailurus']
    assert cfgs['ailurus_merged'].merged_decode is True
    cfg.model.decode_head = dict(type='FCNHead', in_channels=32,
                                 channels=32, num_convs=1, num_classes=150)
    assert not supports_merged_decode(cfg.model)


def test_sweep_over_reducers_and_prop_attn(tiny, tmp_path):
    """Every reducer, with and without proportional attention, keeping all
    the tokens is the vanilla model: the same mIoU."""
    from mmengine.config import Config

    from ailurus_mm.benchmarks.sweep import SweepSpec, run_sweep

    config, checkpoint = tiny
    names = ('dpc_knn', 'tome', 'dpc_cover_detail')
    rows = run_sweep(Config.fromfile(config), checkpoint, SweepSpec(
        (1.0, 0.5), presets=names, prop_attn=(False, True)),
        out_dir=str(tmp_path))
    assert [(r['preset'], r['prop_attn'], r['num_clusters'])
            for r in rows[1:]] == [
        (name, attn, keep)
        for name in names for attn in (False, True) for keep in (1.0, 0.5)]
    assert rows[1]['reducer'] == 'dpc_knn' and rows[5]['reducer'] == 'tome'
    assert rows[9]['recover_detail'] is True
    for row in rows[1:]:
        if row['num_clusters'] == 1.0:
            assert row['mIoU'] == rows[0]['mIoU']
    assert (tmp_path / 'sweep.png').stat().st_size > 0


# ------------------------------------------ every reducer, every tool
SETTINGS = [dict(reducer=name) for name in REDUCERS] + [
    dict(recover_detail=True), dict(window=1)]


@pytest.mark.parametrize('knobs', SETTINGS, ids=str)
def test_every_tool_runs_every_reducer_and_knob(tiny, tmp_path, knobs,
                                                ade20k_root):
    """benchmark, sweep, visualize and test --no-finetune on a config that
    sets each reducer or knob; each measures (and reports) that model."""
    from ailurus_mm.benchmarks.cli import (benchmark_main, sweep_main,
                                           visualize_main)
    from ailurus_mm.launch import run

    config, checkpoint = tiny
    options = ['--cfg-options'] + [
        f'model.backbone.{k}={v}'.replace(' ', '') for k, v in
        knobs.items()]
    expected = ClusterConfig(cluster_layer=0, num_clusters=0.5, **knobs)
    report = benchmark_main([config, '--warmup', '0', '--runs', '1',
                             '--no-flops', '--no-memory', '--variants',
                             'vanilla', 'ideal', 'ailurus', *options])
    assert report.settings['clustering'] == expected.to_dict()
    rows = sweep_main([config, checkpoint, '--num-clusters', '0.5',
                       '--out-dir', str(tmp_path / 'sweep'), *options])
    assert {k: rows[1][k] for k in knobs} == knobs
    records = visualize_main([config, checkpoint, osp.join(
        ade20k_root, 'images', 'validation', 'ADE_val_00000001.jpg'),
        '--out-dir', str(tmp_path / 'vis'), *options])
    assert (records[0]['windows'], records[0]['patch_tokens']) == (2, 32)
    run('test', [config, checkpoint, '--no-finetune', '--work-dir',
                 str(tmp_path / 'test'), *options])


def test_presets_cover_every_reducer():
    assert set(REDUCERS) <= set(PRESET_NAMES)
    assert {'dpc_knn_plain', 'dpc_cover_detail',
            'dpc_cover_window'} <= set(PRESET_NAMES)


# --------------------------------------- refused before the long pass
@pytest.mark.parametrize('flags, match', [
    (['--cluster-layer', '7'], r'cluster_layer must be an int \[0, 1\]'),
    (['--num-clusters', '1.5'], r'num_clusters as a fraction must be in '
     r'\(0, 1\], got 1\.5'),
    (['--num-clusters', '0'], r'num_clusters as a fraction must be in '
     r'\(0, 1\], got 0\.0'),
    (['--device', 'cuda'], r'--device cuda: CUDA is not available here'),
    (['--threads', '0'], r'--threads must be >= 1, got 0'),
])
def test_sweep_refuses_settings_before_evaluating(tiny, tmp_path,
                                                  monkeypatch, capsys,
                                                  flags, match):
    import ailurus_mm.benchmarks.sweep as sweep
    from ailurus_mm.benchmarks.cli import sweep_main

    if 'cuda' in flags and torch.cuda.is_available():
        pytest.skip('CUDA is available here')

    def never(*args, **kwargs):
        raise AssertionError('evaluated before the settings were checked')

    monkeypatch.setattr(sweep, 'evaluate_model', never)
    config, checkpoint = tiny
    args = [config, checkpoint, '--num-clusters', '0.5', '--out-dir',
            str(tmp_path / 'sweep')] + flags
    with pytest.raises(SystemExit) as exit_info:
        sweep_main(args)
    assert exit_info.value.code == 2
    assert re.search(match, capsys.readouterr().err)


@pytest.mark.parametrize('flags, match', [
    (['--shape', '0', '0'], r'shape must be two sizes >= 1'),
    (['--threads', '0'], r'--threads must be >= 1, got 0'),
    (['--device', 'cuda'], r'--device cuda: CUDA is not available here'),
    (['--runs', '0'], r'need warmup >= 0 and runs >= 1'),
    (['--checkpoint', 'nowhere.pth'], r'checkpoint nowhere\.pth does not '
     r'exist'),
    (['--cfg-options', 'model.backbone.reducer=fastest'],
     r"reducer must be one of \('dpc_cover'"),
])
def test_benchmark_refuses_settings_in_one_line(tiny, capsys, flags, match):
    from ailurus_mm.benchmarks.cli import benchmark_main

    if 'cuda' in flags and torch.cuda.is_available():
        pytest.skip('CUDA is available here')
    with pytest.raises(SystemExit) as exit_info:
        benchmark_main([tiny[0]] + flags)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert re.search(match, err), err
    assert 'Traceback' not in err


# ----------------------------------- outputs: never an input, never lost
def test_visualize_never_overwrites_an_input_and_keeps_every_panel(
        tiny, tmp_path, ade20k_root):
    """An input inside --out-dir stays as it is; two inputs with one name
    get two panels; a panel that cannot be written is an error."""
    import shutil

    from ailurus_mm.benchmarks.cli import visualize_main

    config, checkpoint = tiny
    source = osp.join(ade20k_root, 'images', 'validation',
                      'ADE_val_00000001.jpg')
    shots = tmp_path / 'shots'
    (shots / 'a').mkdir(parents=True)
    (shots / 'b').mkdir()
    frame = shots / 'frame.png'
    cv2.imwrite(str(frame), cv2.imread(source))
    shutil.copy(source, shots / 'a' / 'x.jpg')
    shutil.copy(source, shots / 'b' / 'x.jpg')
    before = frame.read_bytes()
    records = visualize_main([config, checkpoint, str(frame),
                              str(shots / 'a' / 'x.jpg'),
                              str(shots / 'b' / 'x.jpg'),
                              '--out-dir', str(shots)])
    assert frame.read_bytes() == before
    assert sorted(osp.basename(r['path']) for r in records) == [
        'frame_ailurus.png', 'x-2_ailurus.png', 'x_ailurus.png']
    with pytest.raises(SystemExit):  # a second run would replace them
        visualize_main([config, checkpoint, str(frame), '--out-dir',
                        str(shots)])


def test_a_panel_that_cannot_be_written_is_an_error(
        tiny, tmp_path, ade20k_root, monkeypatch):
    from mmengine.config import Config

    from ailurus_mm.benchmarks.visualize import visualize_images

    config, checkpoint = tiny
    monkeypatch.setattr(cv2, 'imwrite', lambda *args: False)
    with pytest.raises(OSError, match=r'could not write .*x\.png'):
        visualize_images(Config.fromfile(config), checkpoint, [osp.join(
            ade20k_root, 'images', 'validation', 'ADE_val_00000001.jpg')],
            [str(tmp_path / 'x.png')])


@pytest.mark.parametrize('tool, flag', [('benchmark', '--out'),
                                        ('sweep', '--out-dir')])
def test_an_output_path_under_a_file_is_refused_before_any_work(
        tiny, tmp_path, capsys, tool, flag):
    from ailurus_mm.benchmarks.cli import benchmark_main, sweep_main

    config, checkpoint = tiny
    blocker = tmp_path / 'file'
    blocker.write_text('x')
    if tool == 'benchmark':
        argv = [config, '--out', str(blocker / 'r.json')]
        main = benchmark_main
    else:
        argv = [config, checkpoint, '--num-clusters', '0.5', '--out-dir',
                str(blocker / 'sweep')]
        main = sweep_main
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert f'{flag} {blocker}' in capsys.readouterr().err


def test_benchmark_creates_the_folder_of_its_json(tiny, tmp_path):
    from ailurus_mm.benchmarks.cli import benchmark_main

    config, _ = tiny
    out = tmp_path / 'missing' / 'r.json'
    benchmark_main([config, '--warmup', '0', '--runs', '1', '--no-flops',
                    '--no-memory', '--no-stage-times', '--variants',
                    'vanilla', 'ailurus', '--out', str(out)])
    assert out.is_file()
