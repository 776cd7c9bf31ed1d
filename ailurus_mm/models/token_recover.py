"""``TokenRecover``: restore the full token grid before the decode head."""
from typing import Optional, Tuple, Union

from mmengine.model import BaseModule
from mmseg.registry import MODELS
from torch import Tensor, nn
from torch.profiler import record_function

from ailurus_mm.ops import ClusterAssignment, recover_tokens
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
    head or neck built for it works unchanged.

    Detectors take a single neck (mmdet's ``TwoStageDetector`` builds
    ``model.neck`` with one ``MODELS.build`` call), so the neck a plain ViT
    needs there (e.g. ``SimpleFPN``) goes inside: ``dict(type='TokenRecover',
    neck=dict(type='SimpleFPN', ...))`` recovers the grid, then applies the
    inner neck. The inner neck is built in the current default scope (mmdet's
    for mmdet configs, mmseg's for mmseg configs).

    TokenRecover has no parameters of its own, and it is transparent in the
    state dict: the inner neck's entries keep the names they have in the
    vanilla model (``neck.<name>``, not ``neck.neck.<name>``), so checkpoints
    of the vanilla model load strictly into the AiluRus model and back.

    Args:
        neck: Optional neck applied after recovery: its config, or an
            already built module (used as it is, e.g. by ``ailurus_mm.apply``
            to wrap a built detector's neck).
        init_cfg: Unused; accepted for registry compatibility.
    """

    def __init__(self,
                 neck: Optional[Union[dict, nn.Module]] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if isinstance(neck, nn.Module) or neck is None:
            self.neck = neck
        else:
            self.neck = MODELS.build(neck)
        if self.neck is not None:
            self.register_state_dict_post_hook(_hide_inner_prefix)

    @property
    def with_neck(self) -> bool:
        return self.neck is not None

    def recover(self, inputs: Union[AiluRusOutputs, tuple]) -> tuple:
        """Only the recovery (what ``forward`` does before the inner neck).

        Args:
            inputs: :class:`AiluRusOutputs`, or plain ``VisionTransformer``
                outputs (returned as they are).

        Returns:
            A tuple of ``[B, C, H, W]`` maps (or ``[map, cls_token]`` pairs),
            one per backbone output index.
        """
        if isinstance(inputs, (tuple, list)):
            # Already plain VisionTransformer outputs: nothing to restore.
            return tuple(inputs)
        if not isinstance(inputs, AiluRusOutputs):
            raise TypeError('TokenRecover expects the output of AiluRusViT, '
                            f'got {type(inputs).__name__}')
        with record_function('ailurus::recover'):
            return tuple(
                self._recover(feature, inputs.assignment_of(i), inputs)
                if inputs.merged[i] else feature
                for i, feature in enumerate(inputs.features))

    def forward(self, inputs: Union[AiluRusOutputs, tuple]):
        """Recover, then apply the inner neck if there is one."""
        outputs = self.recover(inputs)
        return self.neck(outputs) if self.neck is not None else outputs

    @staticmethod
    def _recover(feature: Feature, assignment: ClusterAssignment,
                 inputs: AiluRusOutputs) -> Feature:
        with_cls = isinstance(feature, (list, tuple))
        tokens = feature[0] if with_cls else feature
        full = recover_tokens(tokens, assignment.index)
        if inputs.detail is not None:
            full = full + inputs.detail.to(full.dtype)
        feature_map = tokens_to_map(full, inputs.hw_shape)
        return [feature_map, feature[1]] if with_cls else feature_map

    def _load_from_state_dict(self, state_dict, prefix, local_metadata,
                              strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        if self.neck is not None:
            # Vanilla names (``<prefix><name>``) -> ``<prefix>neck.<name>``;
            # names already in the inner form load as they are.
            inner = prefix + 'neck.'
            for name in self.neck.state_dict():
                if prefix + name in state_dict and \
                        inner + name not in state_dict:
                    state_dict[inner + name] = state_dict.pop(prefix + name)
        super()._load_from_state_dict(state_dict, prefix, local_metadata,
                                      strict, missing_keys, unexpected_keys,
                                      error_msgs)


def _hide_inner_prefix(module: TokenRecover, state_dict, prefix: str,
                       local_metadata) -> None:
    """State dict post-hook: ``<prefix>neck.<name>`` -> ``<prefix><name>``,
    in place and in order (the hook may not return a new dict)."""
    inner = prefix + 'neck.'
    items = list(state_dict.items())
    state_dict.clear()
    for key, value in items:
        if key.startswith(inner):
            key = prefix + key[len(inner):]
        state_dict[key] = value
