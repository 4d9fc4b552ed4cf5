#!/bin/bash
# Hopper, laptop preset: does SMAC -> SAC drop because of the handed-over temperature (0.004)?
# Both arms 5,000 online steps (J(pi_1) at 1,000 updates is the figure), one change: the initial temperature.
# Needs the smac_laptop offline checkpoints: python experiments/smac_ab.py run --only smac_laptop
cd "$(dirname "$0")/.."  # the repository root
R=results/smac_ab/hopper-medium-replay/smac_laptop
for s in 0 1 2 3; do
  echo "$s handover"; echo "$s temp1"
done | xargs -P 2 -L 1 bash -c '
  s=$0; arm=$1; extra=""
  [ "$arm" = temp1 ] && extra="--no-ent-coef-from-checkpoint --init-ent-coef 1.0"
  OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 MUJOCO_GL=egl .venv/bin/python -m smacrl.cli finetune --algo sac \
    --checkpoint '"$R"'/s$s/offline --task hopper-medium-replay --seed $s --out '"$R"'/s$s/online5k_$arm \
    --preset laptop --steps 5000 --eval-episodes 10 --no-progress --trajectory-points 0 $extra \
    >> '"$R"'/s$s/log.txt 2>&1
  echo "s$s $arm rc=$?"'
