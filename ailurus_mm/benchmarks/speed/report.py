"""A :class:`~ailurus_mm.benchmarks.speed.run.BenchmarkReport` as text
and JSON (what ``tools/benchmark.py`` prints and writes)."""
import json
from typing import List

import dataclasses

from ..paths import strict_json
from .run import DET_STAGES, SEG_STAGES, BenchmarkReport
from .measure import describe_tokens

STAGE_HEADERS = dict(backbone='backbone', recover='recover',
                     decode_head='head', post='post',
                     pyramid='pyramid', rpn='rpn', roi_heads='roi heads')


def write_json(report: BenchmarkReport, path: str) -> None:
    with open(path, 'w') as f:
        json.dump(strict_json(dataclasses.asdict(report)), f, indent=2,
                  allow_nan=False)


def _settings_lines(report: BenchmarkReport) -> List[str]:
    settings = report.settings
    knobs = ', '.join(f'{name}={value!r}'
                      for name, value in settings['clustering'].items())
    return [
        f"config: {settings['config']}",
        f"mode: {settings['mode']}, input {settings['shape'][0]}x"
        f"{settings['shape'][1]}, batch 1, {settings['threads']} threads on "
        f"{settings['device']} ({settings['machine']}), warm-up "
        f"{settings['warmup']}, min of {settings['runs']} interleaved runs",
        f"AiluRus: {settings['patch_tokens']} -> {settings['kept_tokens']} "
        f'patch tokens; {knobs}',
        '',
    ]


def format_table(report: BenchmarkReport) -> str:
    """The report as plain-text tables: speed, FLOPs, memory and tokens per
    variant, then where the time goes, then the summary ratios."""
    results = report.results
    first = next(iter(results.values()))
    has_flops = first.flops is not None
    has_memory = first.peak_memory_bytes is not None
    has_ratio = first.speedup is not None
    lines = _settings_lines(report)

    header = f"{'variant':<18}{'img/s':>9}{'speed-up':>10}{'whole ms':>10}"
    if has_flops:
        header += f"{'GFLOPs':>9}{'FLOP ratio':>12}"
    header += f"{'params M':>10}"
    if has_memory:
        header += f"{'peak MB':>9}"
    lines.append(header + '  tokens per layer')
    for name, result in results.items():
        row = f'{name:<18}{result.images_per_second:>9.3f}'
        row += f'{result.speedup:>9.2f}x' if has_ratio else f"{'-':>10}"
        row += f'{1000 * result.seconds.min:>10.1f}'
        if has_flops:
            row += f'{result.flops / 1e9:>9.1f}'
            row += f'{result.flop_ratio:>11.2f}x' if has_ratio else \
                f"{'-':>12}"
        row += f'{result.parameters / 1e6:>10.1f}'
        if has_memory:
            row += f'{result.peak_memory_bytes / 2**20:>9.0f}'
        lines.append(row + '  ' + describe_tokens(result.tokens_per_layer))

    parts = [part for part in dict.fromkeys(SEG_STAGES + DET_STAGES)
             if any(part in r.stages for r in results.values())]
    if parts:
        lines += ['', 'where the time goes (ms, each part timed alone; '
                  'backbone includes clustering):']
        header = f"{'variant':<18}" + ''.join(
            f'{STAGE_HEADERS[part]:>12}' for part in parts) + \
            f"{'sum':>10}{'whole':>10}"
        lines.append(header)
        for name, result in results.items():
            row = f'{name:<18}'
            for part in parts:
                seconds = result.stages.get(part)
                row += f'{1000 * seconds.min:>12.1f}' if seconds else \
                    f"{'-':>12}"
            total = sum(s.min for s in result.stages.values())
            row += f'{1000 * total:>10.1f}{1000 * result.seconds.min:>10.1f}'
            lines.append(row)

    lines += [''] + _summary_lines(report)
    return '\n'.join(lines)


def _summary_lines(report: BenchmarkReport) -> List[str]:
    summary, results = report.summary, report.results
    lines = []
    for ailurus, ideal in (('ailurus', 'ideal'),
                           ('ailurus_merged', 'ideal_merged')):
        if ailurus in summary.over_ideal:
            lines.append(f'{ailurus} time / {ideal} time: '
                         f'{summary.over_ideal[ailurus]:.3f}')
    if summary.nothing_merged_speedup is not None:
        lines.append('layers alone (nothing merged vs vanilla): '
                     f'{summary.nothing_merged_speedup:.3f}x')
    for name, speedups in summary.stage_speedups.items():
        parts = [f'{STAGE_HEADERS[part]} {speedups[part]:.2f}x'
                 for part in dict.fromkeys(SEG_STAGES + DET_STAGES)
                 if part in speedups]
        if parts and results[name].speedup is not None:
            lines.append(f'{name} vs vanilla: ' + ', '.join(parts) +
                         f', whole {results[name].speedup:.2f}x')
    if summary.merged_head_all_tokens_time_ratio is not None:
        lines.append(
            'attention kernel alone: merged-decoding head on all N tokens '
            '(sizes 1) / vanilla head: '
            f'{summary.merged_head_all_tokens_time_ratio:.3f}')
    if summary.after_backbone_bound is not None:
        lines.append('speed-up if the backbone cost nothing and the parts '
                     'after it stayed as in the vanilla model: '
                     f'{summary.after_backbone_bound:.2f}x')
    if summary.cluster_recover_share is not None:
        line = (
            f'clustering+merge {1000 * summary.cluster_merge_seconds:.1f}'
            f' ms, recovery {1000 * summary.recover_seconds:.1f} ms: '
            f'{100 * summary.cluster_recover_share:.2f}% of the AiluRus '
            'forward')
        if summary.cluster_share_merged is not None:
            line += (f'; clustering+merge is '
                     f'{100 * summary.cluster_share_merged:.2f}% of the '
                     'merged-decoding forward')
        lines.append(line)
    return lines
