"""Training the benchmarks' models with mmengine's Runner: the vanilla
model, its schedule, and the fine-tuning recipe."""
import dataclasses
import os.path as osp
from typing import Optional

from mmengine.config import Config

from ailurus_mm.ops import ClusterConfig


def train(cfg: Config) -> str:
    """Train with mmengine's Runner; returns the last checkpoint's path.

    On a CPU, call ``torch.set_flush_denormal(True)`` in the entry script
    first (denormal floats slow training several-fold).
    """
    from mmengine.runner import Runner

    import ailurus_mm.datasets  # noqa: F401  (registration)
    import ailurus_mm.models  # noqa: F401
    Runner.from_cfg(cfg).train()
    return osp.join(cfg.work_dir, f'iter_{cfg.train_cfg.max_iters}.pth')


def set_schedule(cfg: Config, iters: int, lr: Optional[float] = None,
                 warmup: bool = True) -> Config:
    """Set a config's schedule to ``iters`` iterations (warm-up over the
    first fifth, at most 500, then a linear decay; without warm-up a poly
    decay, as mmseg's fine-tuning schedules), validated and checkpointed
    at the end."""
    if iters < 1:
        raise ValueError(f'iters must be >= 1, got {iters}')
    cfg.train_cfg.max_iters = iters
    cfg.train_cfg.val_interval = iters
    cfg.default_hooks.checkpoint.interval = iters
    if lr is not None:
        cfg.optim_wrapper.optimizer.lr = lr
    warm = min(500, max(1, iters // 5)) if warmup else 0
    schedule = [dict(type='PolyLR', power=1.0 if warmup else 0.9,
                     eta_min=0.0 if warmup else 1e-6, begin=warm, end=iters,
                     by_epoch=False)]
    if warm:
        schedule.insert(0, dict(type='LinearLR', start_factor=0.01, begin=0,
                                end=warm, by_epoch=False))
    cfg.param_scheduler = schedule
    return cfg


# The ``ailurus-ft_`` recipe: a quarter of the schedule at 0.3x the
# learning rate (a tenth at a tenth did not close the gap on the proxy).
FT_SCHEDULE_FRACTION = 0.25
FT_LR_FACTOR = 0.3


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A fine-tuning recipe relative to the vanilla training."""
    fraction: float = FT_SCHEDULE_FRACTION
    lr_factor: float = FT_LR_FACTOR
    train_keep: Optional[float] = None  # default: the evaluated keep

    def __post_init__(self) -> None:
        if not 0 < self.fraction:
            raise ValueError(f'ft fraction must be > 0, got {self.fraction}')
        if not 0 < self.lr_factor:
            raise ValueError(f'ft lr factor must be > 0, got '
                             f'{self.lr_factor}')
        if self.train_keep is not None:
            ClusterConfig(num_clusters=self.train_keep)  # validates
