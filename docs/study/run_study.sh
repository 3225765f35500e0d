#!/usr/bin/env bash
# The study, second edition, as it is run for docs/study/ (2-core CPU, no GPU). Every
# command resumes: rerunning this script skips finished runs and continues unfinished ones
# from their last checkpoint.
# Usage (needs MNIST): HIGHWAY_STUDY_DATA=/path/to/data bash docs/study/run_study.sh [STEP ...]
# With STEP names (shell patterns such as 'needs_depth*'), only the steps they name run, in
# the script's order; `--list` prints every step's name.
# Each step's output goes to the terminal and to outputs/study_logs/<step>.log, and each
# attempt's start and end (Unix seconds) to outputs/study_logs/<step>.times, so a step's
# wall time adds up over interruptions (`python -m analysis.study.study_times` sums them). The
# script stops at the first step that fails and names it (rerun it to resume from there).
set -uo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python}
POP="hydra/launcher=population"
PAR="hydra/launcher=joblib hydra.launcher.n_jobs=2"   # for nets a population cannot hold
STORAGE=${HIGHWAY_STUDY_OPTUNA_URL:-sqlite:///outputs/optuna.db}
LOGS=outputs/study_logs
HEARTBEAT=${STUDY_HEARTBEAT_S:-60}
mkdir -p "$LOGS"

PATTERNS=("$@")
NAMES=()
LISTING=0

wanted() {  # wanted NAME: whether this call runs step NAME (while listing: note it, run nothing)
    local pattern
    if [ "$LISTING" -eq 1 ]; then
        NAMES+=("$1")
        return 1
    fi
    [ ${#PATTERNS[@]} -eq 0 ] && return 0
    for pattern in "${PATTERNS[@]}"; do
        # shellcheck disable=SC2053  # the pattern is a glob on purpose
        [[ $1 == $pattern ]] && return 0
    done
    return 1
}

step() {  # step NAME COMMAND...: run it, show and log its output, stop the study if it fails
    local name=$1
    wanted "$name" || return 0
    shift
    echo "== $(date '+%H:%M:%S') step $name: $* (log: $LOGS/$name.log)"
    echo "start $(date +%s)" >> "$LOGS/$name.times"
    # An "alive" line every HEARTBEAT seconds: a step killed with the whole machine leaves
    # no end line, and its last alive line says until when it ran (analysis.study.study_times).
    (while sleep "$HEARTBEAT"; do echo "alive $(date +%s)" >> "$LOGS/$name.times"; done) \
        < /dev/null > /dev/null 2>&1 &  # holds none of the script's output open
    local heartbeat=$!
    "$@" 2>&1 | tee -a "$LOGS/$name.log"
    local status=${PIPESTATUS[0]}
    kill "$heartbeat" 2>/dev/null
    echo "end $(date +%s) status $status" >> "$LOGS/$name.times"
    if [ "$status" -ne 0 ]; then
        echo "== step $name failed with exit status $status; see $LOGS/$name.log." \
             "Rerun this script to resume: finished runs are skipped." >&2
        exit "$status"
    fi
}

search() {  # search STUDY TRIALS COMMAND...: run what the Optuna study still lacks of TRIALS
    local study=$1 total=$2 left
    shift 2
    wanted "$study" || return 0
    left=$($PY -m analysis.study_state "$STORAGE" "$study" left "$total") || exit 1
    if [ "$left" -eq 0 ]; then
        echo "== step $study: all $total trials done"
        return
    fi
    step "$study" "$@" hydra.sweeper.n_trials="$left"
}

study() {  # every step, in order (the body is not indented, to read as the protocol)
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
#    The same baselines and softmax regression with the modern setup as the first edition ran
#    it (Glorot weights, zero biases, mean loss, plain SGD at 0.1, batch 128, 5 epochs).
step blog_baselines_modern $PY -m highway_study experiment=blog_baselines setup=modern \
    optimizer=sgd hydra.sweep.dir=outputs/experiments/blog_baselines_modern $POP
step softmax_baseline_modern $PY -m highway_study -m model=softmax data=mnist setup=modern \
    optimizer=sgd seed=0,1,2 hydra.sweep.dir=outputs/experiments/softmax_baseline_modern

# 4. Lesioning where the gates do open: every layer of depth 50 and 100 nets.
step blog_lesion $PY -m highway_study experiment=blog_depth_bias depth=50,100 \
    carry_bias=-2,-3,-5 seed=0,1,2 lesion_every=1 \
    hydra.sweep.dir=outputs/experiments/blog_lesion $POP

# 4b. Residual nets (y = x + H(x)) on MNIST, depths 1-100, 3 seeds: the identity shortcut
#    beside the carry gate, as step 5 has it on the task that needs depth.
step mnist_residual $PY -m highway_study experiment=mnist_residual $PAR
#     The same with the modern recipe (Glorot weights, mean loss, momentum), residual and
#     highway nets side by side: does the blog recipe's verdict hold under another one?
step mnist_residual_modern $PY -m highway_study experiment=mnist_residual_modern $PAR

# 5. A task that needs depth (data=tent, docs/study/needs_depth.md): the shallow baselines,
#    plain and residual nets over depth, then the highway grid up to depth 200, all with 3
#    seeds and 10,000 Adam steps; the 1000-layer net at carry bias -20 comes last (step 9).
step needs_depth_shallow $PY -m highway_study experiment=needs_depth_shallow $PAR
step needs_depth_baselines $PY -m highway_study experiment=needs_depth_baselines $PAR
step needs_depth $PY -m highway_study experiment=needs_depth depth=1,2,5,10,20,50,100,200 $POP

# 5b. The depth task (docs/study/depth_task.md), the third edition's test of the finding:
#    tent k=4, centred, width 8 (no shallow net of that width passes 81.25%), 10 seeds per
#    cell, 3 learning rates; each family with the same budget of settings, populations.
step depth_task_shallow $PY -m highway_study experiment=depth_task_shallow $POP
step depth_task_softmax $PY -m highway_study experiment=depth_task_softmax $POP
step depth_task $PY -m highway_study experiment=depth_task $POP
step depth_task_plain $PY -m highway_study experiment=depth_task_plain $POP
step depth_task_residual $PY -m highway_study experiment=depth_task_residual $POP
step depth_task_deep $PY -m highway_study experiment=depth_task_deep $POP

# 6. The paper's Figure 1: plain (width 71) and highway (width 50) nets of depth 10, 20, 50
#    and 100, SGD with momentum, each network's setting chosen by a TPE search of 16 trials
#    (plain nets, which a population cannot train, as two joblib jobs).
for depth in 10 20 50 100; do
    search "paper_lr_plain_fc_mnist_depth$depth" 16 $PY -m highway_study \
        hparams_search=paper_lr model=plain_fc depth=$depth $PAR
    search "paper_lr_bias_highway_fc_mnist_depth$depth" 16 $PY -m highway_study \
        hparams_search=paper_lr_bias model=highway_fc depth=$depth $POP
done

# 7. The paper's Figure 2 and section 4.2: the best 50-layer highway setting of step 6 trained
#    to convergence (40 epochs, the whole of its cosine-decayed learning rate; stopping early
#    on validation accuracy would stop it while the rate is still high), its gates measured
#    and every layer lesioned.
if wanted paper_fig2; then
    best=$($PY -m analysis.study_state "$STORAGE" paper_lr_bias_highway_fc_mnist_depth50 best) \
        || exit 1
    step paper_fig2 $PY -m highway_study model=highway_fc data=mnist depth=50 $best \
        epochs=40 lesion_every=1 hydra.run.dir=outputs/experiments/paper_fig2
fi

# 8. Optuna per depth at the grid's setup (the blog's SGD, 5,000 steps): TPE over carry bias
#    (-20..-1) and learning rate, 24 trials, 12 per batch trained as one population (TPE's
#    first 10 trials are random: with batches of 12 the second half is guided, with batches
#    of 8 only the last third would be); then the two-objective search at depth 100
#    (validation accuracy and layers used).
for depth in 20 100; do
    search "bias_lr_highway_fc_mnist_depth$depth" 24 $PY -m highway_study \
        hparams_search=bias_lr_optuna data=mnist setup=blog depth=$depth \
        hydra.sweeper.n_jobs=12 hydra.sweep.dir=outputs/experiments/bias_lr_depth$depth $POP
done
search pareto_highway_fc_mnist_depth100 24 $PY -m highway_study hparams_search=pareto_optuna \
    data=mnist setup=blog depth=100 hydra.sweeper.n_jobs=12 \
    hydra.sweep.dir=outputs/experiments/pareto_depth100 $POP

# 9. What costs most comes last: the depth-1000 search (16 trials as one population: fewer
#    than TPE's 10 random startup trials finish before a second batch could be asked, so
#    two batches of 8 would sample the same way, only slower) and, of the needs-depth
#    grid's depths 500 and 1000, the cell the study's question is about: depth 1000 at carry
#    bias -20, 3 seeds. (The whole two rows, experiment=needs_depth depth=500,1000, are 42 runs
#    of 10,000 steps: about 8 hours on this machine at the blog grid's depth-500 rate.)
search bias_lr_highway_fc_mnist_depth1000 16 $PY -m highway_study hparams_search=bias_lr_optuna \
    data=mnist setup=blog depth=1000 hydra.sweeper.n_jobs=16 \
    hydra.sweep.dir=outputs/experiments/bias_lr_depth1000 $POP
step needs_depth_deep $PY -m highway_study experiment=needs_depth depth=1000 carry_bias=-20 \
    $POP
# 10. The 1000-layer net of the blog's grid (carry bias -20, blog setup) trained past the
#    grid's 5,000 steps: up to 30 epochs, stopping after 2 without a better validation
#    accuracy, every tenth layer lesioned.
step depth_1000 $PY -m highway_study experiment=depth_1000 max_steps=null epochs=30 patience=2 \
    lesion_every=10
}

LISTING=1
study
LISTING=0
if [ "${PATTERNS[0]:-}" = "--list" ]; then
    printf '%s\n' "${NAMES[@]}"
    exit 0
fi
for pattern in "${PATTERNS[@]}"; do
    matched=0
    for name in "${NAMES[@]}"; do
        # shellcheck disable=SC2053
        [[ $name == $pattern ]] && matched=1
    done
    if [ "$matched" -eq 0 ]; then
        echo "run_study.sh: no step is named like '$pattern'; the steps are:" \
             "${NAMES[*]} (bash docs/study/run_study.sh --list)" >&2
        exit 2
    fi
done
study
echo "== $(date '+%H:%M:%S') every ${PATTERNS[0]:+chosen }step finished; analyse with" \
     "the commands in docs/study/report.md (with their --out they overwrite the committed" \
     "docs/study/ files)"
