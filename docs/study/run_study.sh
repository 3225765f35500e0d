#!/usr/bin/env bash
# The study, second edition, as it is run for docs/study/ (2-core CPU, no GPU). Every
# command resumes: rerunning this script skips finished runs and continues unfinished ones
# from their last checkpoint.
# Usage (needs MNIST): HIGHWAY_STUDY_DATA=/path/to/data bash docs/study/run_study.sh
# Each step's output goes to the terminal and to outputs/study_logs/<step>.log, and each
# attempt's start and end (Unix seconds) to outputs/study_logs/<step>.times, so a step's
# wall time adds up over interruptions. The script stops at the first step that fails and
# names it (rerun it to resume from there).
set -uo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python}
POP="hydra/launcher=population"
LOGS=outputs/study_logs
mkdir -p "$LOGS"

step() {  # step NAME COMMAND...: run it, show and log its output, stop the study if it fails
    local name=$1
    shift
    echo "== $(date '+%H:%M:%S') step $name: $* (log: $LOGS/$name.log)"
    echo "start $(date +%s)" >> "$LOGS/$name.times"
    "$@" 2>&1 | tee -a "$LOGS/$name.log"
    local status=${PIPESTATUS[0]}
    echo "end $(date +%s) status $status" >> "$LOGS/$name.times"
    if [ "$status" -ne 0 ]; then
        echo "== step $name failed with exit status $status; see $LOGS/$name.log." \
             "Rerun this script to resume: finished runs are skipped." >&2
        exit "$status"
    fi
}

# 1. The blog's grid at its own protocol: depth x carry bias, 3 seeds, 5,000 SGD steps of
#    batch 50 (210 runs), each depth's 21 runs trained as one population.
step blog_depth_bias $PY -m highway_study experiment=blog_depth_bias seed=0,1,2 $POP

# 2. Carry biases outside the blog's grid: positive (0, +1, +3) and very negative (-30, -50).
step blog_bias_extremes $PY -m highway_study experiment=blog_depth_bias \
    depth=10,20,50,100 carry_bias=3,1,0,-30,-50 seed=0,1,2 \
    hydra.sweep.dir=outputs/experiments/blog_bias_extremes $POP

# 3. Baselines, 3 seeds: plain 20 layers, highway 18 (+ 2 dense) and the shallow net, then
#    softmax regression (no hidden layer), all with the blog's setup.
step blog_baselines $PY -m highway_study experiment=blog_baselines $POP
step softmax_baseline $PY -m highway_study -m model=softmax data=mnist setup=blog \
    seed=0,1,2 hydra.sweep.dir=outputs/experiments/softmax_baseline

# 4. Lesioning where the gates do open: every layer of depth 50 and 100 nets.
step blog_lesion $PY -m highway_study experiment=blog_depth_bias depth=50,100 \
    carry_bias=-2,-3,-5 seed=0,1,2 lesion_every=1 \
    hydra.sweep.dir=outputs/experiments/blog_lesion $POP

echo "== $(date '+%H:%M:%S') every step finished; analyse with the commands in" \
     "docs/study/report.md (with their --out they overwrite the committed docs/study/ files)"
