#!/usr/bin/env bash
# The CGAN hyperparameter sweep of docs/results.md (§4.3: learning rates and weight scale of the
# CGAN chosen on validation Parzen log-likelihood), sized for a 2-core CPU: short runs, then the
# validation Parzen estimate of each, then a table. Usage:
#   CMMKIT_DATA=../shared/data bash examples/cgan_sweep.sh [EPOCHS] [OUT_DIR]
# LRS and STDS (space-separated) override the grid; MISMATCH sets model.mismatch_weight (default: the
# model's, 0.5); JUDGE=runs/judge adds the attribute AUC of each setting's faces (cmmkit train-judge).
set -euo pipefail
epochs=${1:-3}
out=${2:-runs/cgan-sweep}
common=(--pair lfw_faces_attrs --model cgan --epochs "$epochs" --no-progress
        --set pair.attributes_file=lfw_attributes_binarized.txt)
runs=()
for lr in ${LRS:-0.0001 0.0002 0.0005}; do
  for std in ${STDS:-0.02 0.05}; do
    run="$out/lr${lr}-std${std}"
    if [ ! -f "$run/checkpoint.safetensors" ]; then
      cmmkit train "${common[@]}" --out "$run" --set model.init_std="$std" ${MISMATCH:+--set model.mismatch_weight=$MISMATCH} \
        --set "train.group_optimizers.discriminator.lr=$lr" --set "train.group_optimizers.generator.lr=$lr"
    fi
    cmmkit evaluate "$run" --split val --parzen-samples 50 --parzen-val-examples 200 --max-examples 500 --no-progress \
      ${JUDGE:+--judge "$JUDGE"}
    runs+=("$run")
  done
done
cmmkit report "${runs[@]}" -o "$out/sweep.md"
