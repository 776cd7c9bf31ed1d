#!/usr/bin/env bash
# Every speed figure in README.md comes from this script: it runs
# tools/benchmark.py on the real configs (random weights: speed does not
# depend on them) and writes one table (.txt) and one report (.json) per run
# into docs/benchmarks/. Run it on an otherwise idle machine; on 2 CPU cores
# it takes about 75 minutes. Pass names to run only some, e.g.
#   bash tools/run_benchmarks.sh vitb_512_0.65 vitl_640_train_0.25
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=docs/benchmarks
mkdir -p "$out"
threads=${THREADS:-2}
py=${PYTHON:-.venv/bin/python}
B=configs/segmenter/ailurus_segmenter_vit-b_mask_8xb1-160k_ade20k-512x512.py
L=configs/segmenter/ailurus_segmenter_vit-l_mask_8xb1-160k_ade20k-640x640.py
DET=configs/mask_rcnn/ailurus_mask-rcnn_vit-b_simplefpn_8xb2-lsj-1x_coco-1024x1024.py

run() {  # name, then tools/benchmark.py arguments
  local name=$1; shift
  if [[ ${#selected[@]} -gt 0 && ! " ${selected[*]} " =~ " $name " ]]; then
    return
  fi
  echo "== $name: tools/benchmark.py $*"
  "$py" tools/benchmark.py "$@" --threads "$threads" \
    --out "$out/$name.json" 2>/dev/null | tee "$out/$name.txt"
}
selected=("$@")

# Inference, every variant (vanilla, layers alone, ideal reducer and AiluRus,
# each with the decode head on the recovered grid and with merged decoding),
# at the no-fine-tuning (0.65) and the fine-tuning (0.25) settings and
# between, with where the time goes (backbone, recovery, head, post).
for keep in 0.65 0.5 0.25; do
  run "vitb_512_$keep" "$B" --warmup 1 --runs 3 \
    --cfg-options model.backbone.num_clusters=$keep
done
for keep in 0.65 0.5 0.25; do
  run "vitl_640_$keep" "$L" --warmup 1 --runs 2 \
    --cfg-options model.backbone.num_clusters=$keep
done
# Proportional attention: backbone time with prop_attn on vs off.
# prop_attn is on by default: the ailurus variant turns it off here, so the
# two rows compare without and with it.
run vitl_640_0.5_prop_attn "$L" --variants ailurus ailurus_prop_attn \
  --warmup 1 --runs 3 --no-flops --no-memory \
  --cfg-options model.backbone.num_clusters=0.5 model.backbone.prop_attn=False
# 4096 tokens: share of clustering + recovery in the AiluRus forward.
run vitl_1024_0.65 "$L" --shape 1024 1024 --variants ailurus --warmup 1 \
  --runs 1 --no-flops --no-memory --no-stage-times
# The window option: clustering time at 1024 vs 4096 tokens.
for size in 512 1024; do
  run "vitb_${size}_window3" "$B" --shape $size $size --variants ailurus \
    --warmup 1 --runs 2 --no-flops --no-memory --no-stage-times \
    --cfg-options model.backbone.window=3
done
# Fine-tuning: one optimizer step, vanilla vs AiluRus at the fine-tuning
# setting (the ailurus-ft_ configs keep 0.25 of the tokens).
for model in vitb_512:$B vitl_640:$L; do
  run "${model%%:*}_train_0.25" "${model#*:}" --mode train \
    --variants vanilla ailurus --warmup 1 --runs 2 --no-flops --no-memory \
    --cfg-options model.backbone.num_clusters=0.25
done
# Detection: whole detector, backbone and neck+heads at 1024x1024.
run det_vitb_1024_0.65 "$DET" --variants vanilla ailurus --warmup 1 \
  --runs 2 --no-flops --no-memory
