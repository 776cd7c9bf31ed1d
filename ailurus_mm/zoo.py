"""The config zoo: finding and loading our configs (the one place the tools
and the API do it), and switching the strict-loading hook on.

The configs ship inside the package as ``ailurus_mm/.mim/configs`` (as
OpenMMLab packages ship theirs; ``setup.py`` copies them there when the
package is built, or links them in an editable install), so they are found
the same way from a source checkout, an editable install and a regular
``pip install .``. mmengine 0.10 resolves ``package::`` bases only for
OpenMMLab's own packages, so a user's config inherits ours by path:
``python -c "import ailurus_mm; print(ailurus_mm.config_dir())"`` prints
where they are.
"""
import os.path as osp
from typing import Optional

from mmengine.config import Config
from mmengine.utils import import_modules_from_strings

PACKAGE_DIR = osp.dirname(osp.abspath(__file__))
# The hook every AiluRus config switches on (see ailurus_mm.engine.hooks).
STRICT_LOAD_HOOK = 'ailurus_mm.StrictLoadHook'


def config_dir() -> str:
    """The folder of ailurus_mm's configs: the installed copy
    (``ailurus_mm/.mim/configs``), else the source tree's ``configs/``."""
    installed = osp.join(PACKAGE_DIR, '.mim', 'configs')
    if osp.isdir(installed):
        return installed
    source = osp.join(osp.dirname(PACKAGE_DIR), 'configs')
    if osp.isdir(source):
        return source
    raise FileNotFoundError(
        f'ailurus_mm configs are neither in {installed} (a built package) '
        f'nor in {source} (a source checkout): reinstall ailurus_mm')


def find_config(name: str) -> str:
    """The path of a config: an existing file as given, else ``name``
    inside :func:`config_dir` (e.g. ``'segmenter_vitl_ailurus.py'``)."""
    if osp.isfile(name):
        return name
    path = osp.join(config_dir(), name)
    if osp.isfile(path):
        return path
    raise FileNotFoundError(
        f'config {name!r} is neither a file nor one of ailurus_mm\'s '
        f'configs (looked in {config_dir()})')


def register_config_types(cfg: Config) -> Config:
    """Import the config's ``custom_imports`` now, so that every type it
    names is registered: mmengine runs them only when it reads a config
    file, and ``mmseg.apis.init_model`` or ``MODELS.build`` on an in-memory
    config would not find our types. Returns ``cfg``."""
    imports = cfg.get('custom_imports', None)
    if imports:
        import_modules_from_strings(**imports)
    return cfg


def load_config(config: str,
                cfg_options: Optional[dict] = None,
                work_dir: Optional[str] = None) -> Config:
    """Read a config (a path, or one of ours by name) and apply
    ``--cfg-options`` and ``--work-dir`` as mmseg's and mmdet's tools do
    (``./work_dirs/<config name>`` when neither the flag nor the config
    sets one). The types it names are registered
    (:func:`register_config_types`)."""
    path = find_config(config)
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(path))[0])
    return register_config_types(cfg)


def enable_strict_loading(cfg: Config) -> Config:
    """Add ``StrictLoadHook`` to ``cfg.custom_hooks`` unless it is there;
    returns ``cfg``."""
    hooks = list(cfg.get('custom_hooks', None) or [])
    if not any(hook.get('type') in (STRICT_LOAD_HOOK, 'StrictLoadHook')
               for hook in hooks):
        hooks.append(dict(type=STRICT_LOAD_HOOK))
    cfg.custom_hooks = hooks
    return cfg
