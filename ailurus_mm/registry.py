"""ailurus_mm's scope in mmengine's registry tree.

mmengine imports ``<scope>.registry`` when a config names a type with a scope
prefix, so ``dict(type='ailurus_mm.StrictLoadHook')`` finds the hook without
a ``custom_imports`` entry: this child of mmengine's ``HOOKS`` imports
:mod:`ailurus_mm.engine.hooks` on first use. The models stay in mmseg's
registry (``ailurus_mm.models``).
"""
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import Registry

HOOKS = Registry(
    'hook',
    parent=MMENGINE_HOOKS,
    scope='ailurus_mm',
    locations=['ailurus_mm.engine.hooks'])
