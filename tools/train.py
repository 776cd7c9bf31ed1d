"""Train an mmseg or mmdet model: ``python tools/train.py CONFIG [flags]``.

mmseg's and mmdet's flags in one tool (--work-dir, --resume [CKPT], --amp,
--auto-scale-lr, --cfg-options, --launcher). Distributed: ``torchrun
--nproc_per_node=N tools/train.py CONFIG --launcher pytorch`` (NCCL on GPUs;
gloo, started by the tool, without CUDA). See ``ailurus_mm/apis/runner.py``.
"""
from ailurus_mm.apis.runner import train

if __name__ == '__main__':
    train()
