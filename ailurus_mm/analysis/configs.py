"""Where the package's configs are: a source checkout's ``configs/`` or,
installed, ``ailurus_mm/.mim/configs``."""
import os.path as osp

_PACKAGE = osp.dirname(osp.dirname(osp.abspath(__file__)))


def config_path(relative: str) -> str:
    """Absolute path of ``configs/<relative>``."""
    for root in (osp.join(osp.dirname(_PACKAGE), 'configs'),
                 osp.join(_PACKAGE, '.mim', 'configs')):
        path = osp.join(root, relative)
        if osp.isfile(path):
            return path
    raise FileNotFoundError(f'config {relative!r} is neither in a source '
                            'checkout nor in the installed package')
