#!/usr/bin/env bash
# The reward along the line from each pre-trained checkpoint to its SAC fine-tune (the paper's figure 4),
# every offline algorithm of a reproduction sweep, every seed, one group per offline algorithm.
#   experiments/repro/lines.sh results/repro-pointmaze [EPISODES]
# Needs the sweep's checkpoints (they are not committed: rerun the sweep first). Writes
# RESULTS/landscape/line.png and line.json.
set -euo pipefail
root=${1:?usage: lines.sh RESULTS_DIR [EPISODES]}
episodes=${2:-10}
args=()
for online in "$root"/runs/*/*-s*/online-sac; do
  [ -f "$online/checkpoints/final.safetensors" ] || continue
  args+=(--from "$(dirname "$online")/offline" --to "$online")
done
[ ${#args[@]} -gt 0 ] || { echo "$root: no finished online-sac runs with checkpoints" >&2; exit 1; }
smacrl landscape line "${args[@]}" --points 11 --episodes "$episodes" --out "$root/landscape" --no-progress
