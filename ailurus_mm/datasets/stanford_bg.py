"""``StanfordBackgroundDataset``: outdoor scenes in 8 classes.

The Stanford Background Dataset (Gould, Fulton and Koller, "Decomposing a
scene into geometric and semantically consistent regions", ICCV 2009):
outdoor scenes from LabelMe, MSRC, PASCAL VOC and Geometric Context, the
longer side 320 pixels. mmseg 1.2.2 ships no class for it. This one reads
mmseg's layout (``images/<split>/*.jpg``, ``annotations/<split>/*.png``
under ``data_root``), one uint8 class index per pixel with unknown stored
as 255 (mmseg's ``ignore_index``), so ``reduce_zero_label`` stays
``False``. The palette is the one mmsegmentation's Stanford Background
tutorial uses. Research-use data: it is not shipped with ailurus_mm; point
``data_root`` at a copy.
"""
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS


@DATASETS.register_module()
class StanfordBackgroundDataset(BaseSegDataset):
    """Stanford Background, 8 classes (unknown = 255, ignored).

    Args:
        img_suffix: Suffix of the images. Default ``'.jpg'``.
        seg_map_suffix: Suffix of the annotations. Default ``'.png'``.
        reduce_zero_label: Must stay ``False``: class 0 is ``sky``.
        **kwargs: Every argument of mmseg's ``BaseSegDataset``.
    """
    METAINFO = dict(
        classes=('sky', 'tree', 'road', 'grass', 'water', 'building',
                 'mountain', 'foreground object'),
        palette=[[128, 128, 128], [129, 127, 38], [120, 69, 125],
                 [53, 125, 34], [0, 11, 123], [118, 20, 12], [122, 81, 25],
                 [241, 134, 51]])

    def __init__(self,
                 img_suffix: str = '.jpg',
                 seg_map_suffix: str = '.png',
                 reduce_zero_label: bool = False,
                 **kwargs) -> None:
        if reduce_zero_label:
            raise ValueError(
                'StanfordBackgroundDataset: reduce_zero_label must be False '
                "(label 0 is 'sky', and unknown is already stored as 255)")
        super().__init__(
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            reduce_zero_label=False,
            **kwargs)
