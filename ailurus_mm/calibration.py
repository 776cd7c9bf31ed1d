"""Calibrating ``anchor_threshold`` on a model and a set of images.

``anchor_threshold`` (a per-image cluster count by content) is a score
threshold, and scores depend on the model and the data. The calibration
runs the model's own ``test_step`` over images (slide windows included),
collects the DPC decision scores of the tokens at ``cluster_layer``, and
returns the threshold that keeps, over those images, as many tokens in
total as a fixed ``num_clusters`` would: an equal mean token count, spread
by content. No labels are used.

    threshold = calibrate_anchor_threshold_on(model, batches, 0.25)
    ailurus_mm.apply(model, num_clusters=1.0, anchor_threshold=threshold)
"""
from typing import Iterable, List

import torch
from torch import nn

from ailurus_mm.ops import anchor_scores, calibrate_anchor_threshold
from ailurus_mm.ops.cluster_config import Count


def _backbone(model: nn.Module) -> nn.Module:
    from ailurus_mm.models import AiluRusViT

    backbone = getattr(model, 'backbone', None)
    if not isinstance(backbone, AiluRusViT):
        raise TypeError('calibration needs a model with an AiluRusViT '
                        f'backbone, got {type(backbone).__name__}')
    return backbone


def cluster_layer_scores(model: nn.Module,
                         batches: Iterable[dict]) -> List[torch.Tensor]:
    """The DPC decision scores (:func:`ailurus_mm.ops.anchor_scores`) of
    the tokens at ``cluster_layer`` in every backbone call of ``model``'s
    ``test_step`` over ``batches`` (an ``AiluRusViT`` segmentor or
    detector; one ``[B, N]`` entry per call, per window with slide
    inference), with the backbone's ``k`` and ``spatial_weight``.

    Build ``model`` with ``num_clusters=1.0`` (nothing merged) for the
    cost of one vanilla pass.
    """
    backbone = _backbone(model)
    clustering = backbone.clustering
    scores: List[torch.Tensor] = []
    grid = {}

    def grid_hook(module, args, output) -> None:
        grid['hw_shape'] = output[1]

    def scores_hook(module, args, output) -> None:
        tokens = output[:, 1:] if backbone.with_cls_token else output
        scores.append(anchor_scores(tokens, grid['hw_shape'], clustering.k,
                                    clustering.spatial_weight).cpu())

    handles = [
        backbone.patch_embed.register_forward_hook(grid_hook),
        backbone.layers[clustering.cluster_layer].register_forward_hook(
            scores_hook)
    ]
    try:
        with torch.no_grad():
            for batch in batches:
                model.test_step(batch)
    finally:
        for handle in handles:
            handle.remove()
    return scores


def calibrate_anchor_threshold_on(model: nn.Module, batches: Iterable[dict],
                                  num_clusters: Count) -> float:
    """The ``anchor_threshold`` for ``model`` whose mean token count over
    ``batches`` equals ``num_clusters``'s (see the module docstring)."""
    return calibrate_anchor_threshold(cluster_layer_scores(model, batches),
                                      num_clusters)
