#!/usr/bin/env bash
# The study as it was run for docs/study/ (2-core CPU, no GPU). Every command resumes:
# rerunning this script skips finished runs and continues unfinished ones.
# Usage: HIGHWAY_STUDY_DATA=/path/to/data bash docs/study/run_study.sh
set -u
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python}
PAR="hydra/launcher=joblib hydra.launcher.n_jobs=2"
mkdir -p outputs/study_logs

# 1. Baselines, 3 seeds: the blog's exact setup, then the project's modern defaults.
$PY -m highway_study experiment=blog_baselines >> outputs/study_logs/blog_baselines.log 2>&1
$PY -m highway_study experiment=blog_baselines setup=modern \
    hydra.sweep.dir=outputs/experiments/blog_baselines_modern \
    >> outputs/study_logs/blog_baselines_modern.log 2>&1

# 1b. Softmax regression (no hidden layer), the likely "shallow network" of the blog's ~91%.
$PY -m highway_study -m model=softmax data=mnist setup=blog,modern seed=0,1,2 \
    hydra.sweep.dir=outputs/experiments/softmax_baseline \
    >> outputs/study_logs/softmax_baseline.log 2>&1

# 2. Depth x carry bias, blog setup, seed 0 everywhere. Budget: 2000 SGD steps of batch 50
#    (about 1.8 epochs) per cell instead of the blog's 5000.
$PY -m highway_study experiment=blog_depth_bias max_steps=2000 $PAR \
    >> outputs/study_logs/blog_depth_bias.log 2>&1

# 3. Seeds 1 and 2 on the 20-layer and 1000-layer rows.
$PY -m highway_study experiment=blog_depth_bias max_steps=2000 depth=20,1000 seed=1,2 $PAR \
    >> outputs/study_logs/blog_depth_bias_seeds.log 2>&1

# 3b. Carry biases outside the blog's grid: positive (0, +1, +3) and very negative (-30, -50).
$PY -m highway_study experiment=blog_depth_bias max_steps=2000 depth=10,20,50,100 \
    carry_bias=3,1,0,-30,-50 hydra.sweep.dir=outputs/experiments/blog_bias_extremes $PAR \
    >> outputs/study_logs/blog_bias_extremes.log 2>&1

# 3c. Lesioning where the gates do open: every layer of depth 50 and 100 nets.
$PY -m highway_study experiment=blog_depth_bias max_steps=2000 depth=50,100 carry_bias=-2,-3,-5 \
    lesion_every=1 hydra.sweep.dir=outputs/experiments/blog_lesion \
    >> outputs/study_logs/blog_lesion.log 2>&1

# 4. 1000 layers at carry bias -20, trained until validation accuracy stops improving.
$PY -m highway_study experiment=depth_1000 max_steps=null epochs=30 patience=2 lesion_every=10 \
    >> outputs/study_logs/depth_1000.log 2>&1
