#!/usr/bin/env bash
# The study as it was run for docs/study/ (2-core CPU, no GPU). Every command resumes:
# rerunning this script skips finished runs and continues unfinished ones.
# Usage (needs MNIST): HIGHWAY_STUDY_DATA=/path/to/data bash docs/study/run_study.sh
# Each step's output goes to the terminal and to outputs/study_logs/<step>.log; the script
# stops at the first step that fails and names it (rerun it to resume from there).
set -uo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python}
PAR="hydra/launcher=joblib hydra.launcher.n_jobs=2"
LOGS=outputs/study_logs
mkdir -p "$LOGS"

step() {  # step NAME COMMAND...: run it, show and log its output, stop the study if it fails
    local name=$1
    shift
    echo "== $(date '+%H:%M:%S') step $name: $* (log: $LOGS/$name.log)"
    "$@" 2>&1 | tee -a "$LOGS/$name.log"
    local status=${PIPESTATUS[0]}
    if [ "$status" -ne 0 ]; then
        echo "== step $name failed with exit status $status; see $LOGS/$name.log." \
             "Rerun this script to resume: finished runs are skipped." >&2
        exit "$status"
    fi
}

# 1. Baselines, 3 seeds: the blog's exact setup, then the project's modern defaults.
step blog_baselines $PY -m highway_study experiment=blog_baselines
step blog_baselines_modern $PY -m highway_study experiment=blog_baselines setup=modern \
    hydra.sweep.dir=outputs/experiments/blog_baselines_modern

# 1b. Softmax regression (no hidden layer), the likely "shallow network" of the blog's ~91%.
step softmax_baseline $PY -m highway_study -m model=softmax data=mnist setup=blog,modern \
    seed=0,1,2 hydra.sweep.dir=outputs/experiments/softmax_baseline

# 2. Depth x carry bias, blog setup, seed 0 everywhere. Budget: 2000 SGD steps of batch 50
#    (about 1.8 epochs) per cell instead of the blog's 5000.
step blog_depth_bias $PY -m highway_study experiment=blog_depth_bias max_steps=2000 $PAR

# 3. Seeds 1 and 2 on the 20-layer and 1000-layer rows.
step blog_depth_bias_seeds $PY -m highway_study experiment=blog_depth_bias max_steps=2000 \
    depth=20,1000 seed=1,2 $PAR

# 3b. Carry biases outside the blog's grid: positive (0, +1, +3) and very negative (-30, -50).
step blog_bias_extremes $PY -m highway_study experiment=blog_depth_bias max_steps=2000 \
    depth=10,20,50,100 carry_bias=3,1,0,-30,-50 \
    hydra.sweep.dir=outputs/experiments/blog_bias_extremes $PAR

# 3c. Lesioning where the gates do open: every layer of depth 50 and 100 nets.
step blog_lesion $PY -m highway_study experiment=blog_depth_bias max_steps=2000 depth=50,100 \
    carry_bias=-2,-3,-5 lesion_every=1 hydra.sweep.dir=outputs/experiments/blog_lesion

# 4. 1000 layers at carry bias -20, trained until validation accuracy stops improving.
step depth_1000 $PY -m highway_study experiment=depth_1000 max_steps=null epochs=30 patience=2 \
    lesion_every=10

echo "== $(date '+%H:%M:%S') every step finished; analyse with the commands in" \
     "docs/study/report.md (with their --out they overwrite the committed docs/study/ files)"
