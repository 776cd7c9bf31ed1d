"""The detection accuracy benchmark: the synthetic COCO scenes and the
vanilla plain-ViT Mask R-CNN trained on them."""
import hashlib

from ailurus_mm.testing.scenes import render_scene

# sha256 of render_scene's image and label bytes at these (seed, size),
# computed from render_scene before its painting was split into
# SceneCanvas and friends for the detection scenes. The segmentation
# benchmark's shipped model was trained on these scenes: they must not
# change (numpy 1.26, OpenCV 4.11).
RENDER_SCENE_SHA256 = (
    '588af25075657dad466563e3524c42bca02fa1a36bd95d7828f246b4036218e2')


def test_render_scene_is_unchanged():
    digest = hashlib.sha256()
    for seed, size in ((0, 64), (7, 80), (3, 160), (500000, 96), (1, 320)):
        image, label = render_scene(seed, size, size)
        digest.update(image.tobytes())
        digest.update(label.tobytes())
    assert digest.hexdigest() == RENDER_SCENE_SHA256
