"""Known upstream warnings the suite's tools filter from their console.

Each is a deprecation notice of the pinned mm stack (or of what it imports)
that a user cannot act on; our own warnings are never filtered. Only the
entry scripts (``tools/*.py``) call :func:`quiet_upstream_warnings`, before
anything imports the mm stack: this module imports nothing else.
"""
import warnings

UPSTREAM_MODULES = ('mmengine', 'mmcv', 'mmseg', 'mmdet', 'torch',
                    'pkg_resources', 'setuptools', 'numpy', 'importlib')
UPSTREAM_WARNINGS = (
    (UserWarning, r'pkg_resources is deprecated'),
    (DeprecationWarning, r''),
    (FutureWarning, r''),
    (UserWarning, r".*``build_loss`` would be deprecated"),
    (UserWarning, r'.*Default ``avg_non_ignore`` is False'),
    (UserWarning, r'.*`reduce_zero_label` will be deprecated'),
    (UserWarning, r'.*pretrained is deprecated'),
    (UserWarning, r'.*torch.utils.checkpoint: the use_reentrant parameter'),
)


def quiet_upstream_warnings() -> None:
    """Ignore :data:`UPSTREAM_WARNINGS` when the mm stack, torch or the
    packaging tools raise them (by the module the warning is attributed
    to; a warning from ailurus_mm itself is shown)."""
    modules = '|'.join(UPSTREAM_MODULES)
    for category, message in UPSTREAM_WARNINGS:
        warnings.filterwarnings('ignore', message=message,
                                category=category,
                                module=rf'({modules})(\..*)?$')
    # numpy reports its float limits once flush-to-zero is on, which the
    # tools switch on for CPU training (torch.set_flush_denormal); the
    # report names no module of its own (it is raised while numpy loads).
    warnings.filterwarnings('ignore', category=UserWarning,
                            message=r'The value of the smallest subnormal')
