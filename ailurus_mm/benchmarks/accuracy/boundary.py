"""Where the anchors fall: the share of kept tokens within one token of a
ground-truth class boundary, against a uniform grid (the paper's claim:
"more tokens on contours").

A token is a boundary token when its patch, or one of its 8 neighbours',
holds two or more labelled classes (the label map resized to the model
input, nearest neighbour; void ignored). A uniform grid of kept tokens
would have the boundary share of all tokens; AiluRus's anchors (and any
reducer's representatives) are compared with it.
"""
from typing import Dict, List

import torch
import torch.nn.functional as F
from torch import nn


def boundary_tokens(label: torch.Tensor, input_hw, patch_size: int,
                    ignore_index: int = 255) -> torch.Tensor:
    """Boundary tokens of one image.

    Args:
        label: ``[H, W]`` class indices of the original image.
        input_hw: The model input size ``(H_in, W_in)`` (before padding to
            the patch size).
        patch_size: The ViT's patch size.

    Returns:
        ``[rows * cols]`` bool, row-major on the token grid.
    """
    height, width = input_hw
    resized = F.interpolate(label[None, None].float(), size=(height, width),
                            mode='nearest')[0, 0].long()
    rows, cols = -(-height // patch_size), -(-width // patch_size)
    padded = torch.full((rows * patch_size, cols * patch_size),
                        ignore_index, dtype=torch.long)
    padded[:height, :width] = resized
    patches = padded.reshape(rows, patch_size, cols, patch_size).permute(
        0, 2, 1, 3).reshape(rows, cols, -1)
    valid = patches != ignore_index
    big = torch.iinfo(torch.long).max
    low = torch.where(valid, patches, big).amin(-1)
    high = torch.where(valid, patches, -1).amax(-1)
    mixed = (high > low) & valid.any(-1)
    near = F.max_pool2d(mixed[None, None].float(), 3, stride=1,
                        padding=1)[0, 0] > 0
    return near.reshape(-1)


def anchor_boundary_share(model: nn.Module, batches: List[Dict],
                          patch_size: int = 16) -> Dict[str, float]:
    """The share of kept tokens (every cluster's anchor) that are
    boundary tokens, and the share of all tokens (a uniform grid), over
    the images of ``batches`` (batch size 1).

    Returns:
        ``{'anchors': share, 'uniform': share, 'images': n}``.
    """
    captured = {}

    def hook(module, args, output) -> None:
        captured['assignment'] = output.assignment

    handle = model.backbone.register_forward_hook(hook)
    kept = kept_on_boundary = tokens = tokens_on_boundary = 0
    try:
        with torch.no_grad():
            for batch in batches:
                # the backbone sees what it sees in test_step (the same
                # preprocessing); the head does not change the anchors
                data = model.data_preprocessor(batch, False)
                model.backbone(data['inputs'])
                assignment = captured['assignment']
                if assignment is None:
                    continue
                sample = batch['data_samples'][0]
                label = sample.gt_sem_seg.data[0]
                near = boundary_tokens(label, sample.img_shape, patch_size)
                if near.numel() != assignment.index.shape[1]:
                    raise ValueError(
                        f'boundary map has {near.numel()} tokens, the model '
                        f'{assignment.index.shape[1]}')
                real = assignment.sizes[0] > 0
                anchors = assignment.anchors[0][real.to(
                    assignment.anchors.device)].cpu()
                kept += int(anchors.numel())
                kept_on_boundary += int(near[anchors].sum())
                tokens += int(near.numel())
                tokens_on_boundary += int(near.sum())
    finally:
        handle.remove()
    return dict(anchors=kept_on_boundary / max(kept, 1),
                uniform=tokens_on_boundary / max(tokens, 1),
                images=len(batches))
