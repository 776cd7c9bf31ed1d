"""The benchmark suite: speed (:mod:`.speed`), accuracy on the synthetic
proxy, CamVid and detection (:mod:`.accuracy`), the sweep of a user's
checkpoint (:mod:`.sweep`), visualisation (:mod:`.visualize`) and the demo.

It sits beside the plugin: it imports ``ailurus_mm.ops``, ``.models``,
``.convert`` and ``.checkpoint``; nothing in the plugin imports it, so
converting a model never loads a training pipeline. The entry scripts are
``tools/*.py`` over :mod:`.cli`.
"""
