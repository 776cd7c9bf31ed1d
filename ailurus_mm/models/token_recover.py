"""``TokenRecover``: restore the full token grid before the decode head."""
from typing import Optional, Tuple, Union

from mmengine.model import BaseModule
from mmseg.registry import MODELS
from torch import Tensor
from torch.profiler import record_function

from ailurus_mm.ops import recover_tokens
from .outputs import AiluRusOutputs, Feature


def tokens_to_map(tokens: Tensor, hw_shape: Tuple[int, int]) -> Tensor:
    """``[B, H * W, C]`` tokens to a ``[B, C, H, W]`` map (as mmseg does)."""
    batch, _, channels = tokens.shape
    return tokens.reshape(batch, hw_shape[0], hw_shape[1],
                          channels).permute(0, 3, 1, 2).contiguous()


@MODELS.register_module()
class TokenRecover(BaseModule):
    """Turn :class:`AiluRusViT` outputs into ``VisionTransformer`` outputs.

    Every merged output gets one token per grid position again, the feature of
    the cluster the position was merged into, and is reshaped to a
    ``[B, C, H, W]`` map; outputs taken before clustering pass through
    untouched. The result is exactly what mmseg's ``VisionTransformer``
    returns (a tuple of maps, or of ``[map, cls_token]`` pairs), so any decode
    head or neck built for it works unchanged. Has no parameters.

    Args:
        init_cfg: Unused; accepted for registry compatibility.
    """

    def __init__(self, init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)

    def forward(self, inputs: Union[AiluRusOutputs, tuple]) -> tuple:
        if isinstance(inputs, (tuple, list)):
            # Already plain VisionTransformer outputs: nothing to restore.
            return tuple(inputs)
        if not isinstance(inputs, AiluRusOutputs):
            raise TypeError('TokenRecover expects the output of AiluRusViT, '
                            f'got {type(inputs).__name__}')
        with record_function('ailurus::recover'):
            return tuple(
                self._recover(feature, inputs) if merged else feature
                for feature, merged in zip(inputs.features, inputs.merged))

    @staticmethod
    def _recover(feature: Feature, inputs: AiluRusOutputs) -> Feature:
        with_cls = isinstance(feature, (list, tuple))
        tokens = feature[0] if with_cls else feature
        full = recover_tokens(tokens, inputs.assignment.index)
        feature_map = tokens_to_map(full, inputs.hw_shape)
        return [feature_map, feature[1]] if with_cls else feature_map
