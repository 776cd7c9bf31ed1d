#!/usr/bin/env bash
# Every speed figure in README.md and docs/speed.md comes from this script:
# it runs tools/benchmark.py on the real configs (random weights: speed does
# not depend on them; the CamVid row uses the shipped CamVid model) and
# writes one table (.txt) and one report (.json) per run into
# docs/benchmarks/. Run it on an otherwise idle machine. Pass names to run
# only some, e.g.
#   bash tools/run_benchmarks.sh vitl_640_defaults camvid_2x_defaults
# Runs named *_defaults use AiluRusViT's defaults (what every Segmenter
# config uses); the Mask R-CNN runs use the detection configs' settings.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=docs/benchmarks
mkdir -p "$out"
threads=${THREADS:-2}
py=${PYTHON:-.venv/bin/python}
B=configs/segmenter/ailurus_segmenter_vit-b_mask_8xb1-160k_ade20k-512x512.py
L=configs/segmenter/ailurus_segmenter_vit-l_mask_8xb1-160k_ade20k-640x640.py
C=configs/camvid/ailurus_segmenter_vit-t_mask_1xb8-8k_camvid-256x256.py
CKPT=ailurus_mm/checkpoints/segmenter_vit-t_mask_1xb8-8k_camvid-256x256.pth
DET=configs/mask_rcnn/ailurus_mask-rcnn_vit-b_simplefpn_8xb2-lsj-1x_coco-1024x1024.py

run() {  # name, then tools/benchmark.py arguments
  local name=$1; shift
  if [[ ${#selected[@]} -gt 0 && ! " ${selected[*]} " =~ " $name " ]]; then
    return
  fi
  echo "== $name: tools/benchmark.py $*"
  "$py" tools/benchmark.py "$@" --threads "$threads" \
    --out "$out/$name.json" --overwrite 2>/dev/null | tee "$out/$name.txt"
}
selected=("$@")

# Inference at the defaults, every variant (vanilla, layers alone, ideal
# reducer and AiluRus, each with the decode head on the recovered grid and
# with merged decoding), with where the time goes.
run vitl_640_defaults "$L" --warmup 1 --runs 3
run vitb_512_defaults "$B" --warmup 1 --runs 3
# CamVid at 2x (960x720, 60x45 = 2700 tokens) with the benchmark's model.
run camvid_2x_defaults "$C" --checkpoint "$CKPT" --shape 720 960 \
  --warmup 1 --runs 3
# The clustering's cost on longer sequences (ViT-B): 2700 tokens (720x960)
# and 4096 tokens (1024x1024) in one window (mode=whole: the ADE20K config
# would slide 512x512 windows of 1024 tokens), against the ideal reducer.
run vitb_2700_defaults "$B" --shape 720 960 --warmup 1 --runs 2 \
  --no-flops --no-memory --variants vanilla ideal_merged ailurus_merged \
  --cfg-options model.test_cfg.mode=whole
run vitb_4096_defaults "$B" --shape 1024 1024 --warmup 1 --runs 2 \
  --no-flops --no-memory --variants vanilla ideal_merged ailurus_merged \
  --cfg-options model.test_cfg.mode=whole
# Expedite-style k-means at the same keep ratio: its cost over the ideal
# reducer's, against dpc_cover's.
run vitl_640_kmeans "$L" --warmup 1 --runs 2 --no-flops --no-memory \
  --variants vanilla ideal_merged ailurus_merged \
  --cfg-options model.backbone.reducer=kmeans
# ONNX Runtime (CPU) against PyTorch, vanilla and AiluRus at the defaults,
# both exported by tools/export_onnx.py's code, in one process.
run onnx_vitb_512 "$B" --runtime onnxruntime --warmup 1 --runs 8
run onnx_vitl_640 "$L" --runtime onnxruntime --warmup 1 --runs 5
# Fine-tuning: one optimizer step, vanilla vs AiluRus at the defaults (the
# ailurus-ft_ configs train with them).
for model in vitb_512:$B vitl_640:$L; do
  run "${model%%:*}_train_defaults" "${model#*:}" --mode train \
    --variants vanilla ailurus --warmup 1 --runs 2 --no-flops --no-memory
done
# Detection: whole detector, backbone and neck+heads at 1024x1024, at the
# Mask R-CNN configs' settings.
run det_vitb_1024 "$DET" --variants vanilla ideal ailurus --warmup 1 \
  --runs 2 --no-flops --no-memory
