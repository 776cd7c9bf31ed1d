"""The benchmark suite's shared core: what the segmentation
(:mod:`..accuracy`) and detection (:mod:`..detection`) benchmarks both use,
so that they are peers importing from here, not from each other.

- :mod:`.settings`: a setting, the grid of settings, the cluster-layer
  study, the checks of the common flags;
- :mod:`.train`: training with mmengine's Runner, schedules, the
  fine-tuning recipe;
- :mod:`.cells`: reading report cells;
- :mod:`.scenes`: the synthetic scenes both proxies are drawn from.
"""
