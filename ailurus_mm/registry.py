"""ailurus_mm's scope in mmengine's registry tree.

mmengine imports ``<scope>.registry`` when a config names a type with a scope
prefix, so ``dict(type='ailurus_mm.StrictLoadHook')`` finds the hook (and
``dict(type='ailurus_mm.AutocastOptimWrapper')`` the optimizer wrapper)
without a ``custom_imports`` entry: these children of mmengine's registries
import their modules on first use. The models and datasets stay in mmseg's
registries (``ailurus_mm.models``, ``ailurus_mm.datasets``).
"""
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import Registry

HOOKS = Registry(
    'hook',
    parent=MMENGINE_HOOKS,
    scope='ailurus_mm',
    locations=['ailurus_mm.engine.hooks'])
OPTIM_WRAPPERS = Registry(
    'optim_wrapper',
    parent=MMENGINE_OPTIM_WRAPPERS,
    scope='ailurus_mm',
    locations=['ailurus_mm.engine.optim'])
