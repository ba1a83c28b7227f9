#!/bin/bash
# The validation grid of docs/validation.md, step by step, from the repository root:
#   pipenv run benchmarks/validation.sh RESULTS [STEP ...]
# RESULTS: a folder outside the repository. STEP: studies, 1m, record, report, gif (default: all five,
# in that order). Run it again after any stop: sac.grid skips finished runs, resumes stopped ones
# (resume=), starts missing ones; a larger total_steps extends finished runs. On a machine that kept
# nothing (a new session's), the runs recorded in $RECORD are skipped (sac.grid --recorded): the
# `record` step adds the curves of this machine's runs to it, for the repository to keep.
# Every step runs two runs at a time with one TensorFlow thread each (our machines have 2 cores).
set -euo pipefail
RESULTS=${1:?usage: pipenv run benchmarks/validation.sh RESULTS_FOLDER [studies] [1m] [record] [report] [gif]}
shift
STEPS=${*:-studies 1m record report gif}
PY=${PYTHON:-python}
# Fail before any step, not at the report after hours of runs, if $PY is not the project's environment
# (run the script under `pipenv run`, or set PYTHON=.venv/bin/python).
if ! $PY -c "import tensorflow, gymnasium, matplotlib, sac" 2>/dev/null; then
  echo "validation.sh: '$PY' lacks the project's packages: run 'pipenv run benchmarks/validation.sh ...' or set PYTHON" >&2
  exit 2
fi
# Issue 18's runs, per task and seed (sac.report's CSVs, the furthest curve of each): the studies of
# parts 1 and 2, HalfCheetah seed 0 to 1M (issue 11's grid: the same training code), the 1M grid.
RECORD=benchmarks/issue18
grid() { $PY -m sac.grid "$RESULTS" --parallel 2 --recorded "$RECORD" checkpoint_every=10000 num_threads=1 "$@"; }

for step in $STEPS; do
  case $step in
  studies)
    # Issue 18, parts 1 and 2, to 300k: Humanoid with the default target entropy (-dim(A)/2 in
    # [-1, 1] units), and Ant-v5 without the contact forces in its observation. The Ant study ran
    # under the config name ant_no_cfrc (commit 6064978), the settings `ant` has had since.
    grid --configs humanoid,ant --seeds 0,1,2 total_steps=300000 ;;
  1m)
    # Issue 18, part 3: the five tasks, seeds 0-2, to 1M. A 1M run takes 2-4 hours here two at a
    # time (docs/validation.md): on machines that keep nothing between sessions, run only the cells
    # that the session can finish (`python -m sac.grid RESULTS --recorded benchmarks/issue18 --configs
    # hopper --seeds 0 total_steps=1000000 checkpoint_every=10000 num_threads=1`), then record them.
    grid --configs half_cheetah,hopper,walker2d,ant,humanoid --seeds 0,1,2 total_steps=1000000 ;;
  record)
    # This machine's curves into the record (a run there and here: the furthest of the two), with
    # its curves and table: commit $RECORD afterwards.
    $PY -m sac.report "$RESULTS" "$RECORD" --out "$RECORD" --steps 100000,300000,1000000 ;;
  report)
    # The validation table from the record: curves, overview, table and per-seed CSVs into results/
    # (issue 11's rows there, Ant-v5 with contact forces observed and Humanoid-v5 with the old
    # target among them, make way: their copy is benchmarks/issue11/, which docs/validation.md cites).
    rm -rf results/*/ results/*.png results/table.md
    $PY -m sac.report "$RECORD" --out results --steps 100000,300000,1000000 ;;
  gif)
    # The README's GIF: the best kept policy of the HalfCheetah runs (of the checkpoints each keeps,
    # the one with the highest evaluation), one episode, its first 6 seconds at 240 pixels. The
    # committed GIF is seed 0's 970k policy from the grid before (eval 12,740); this step replaces it
    # only if a run here keeps a better one.
    best=$($PY - "$RESULTS" <<'PYEOF'
import sys
from pathlib import Path
from sac import checkpoint, rundirs
kept = []
for cell in sorted(Path(sys.argv[1]).glob("half_cheetah/seed*")):
    parts = rundirs.chain(cell)
    if not parts:
        continue
    head = parts[-1]
    evals = rundirs.metric_curves(parts, ["eval/return_mean"])["eval/return_mean"]
    kept += [(value, step, head) for step, value in zip(evals.steps, evals.values)
             if checkpoint.checkpoint_path(head / "checkpoints", step).exists()]
if kept:
    value, step, head = max(kept)
    print(checkpoint.checkpoint_path(head / "checkpoints", step) if value > 12740 else "")
    print(f"best kept policy: {head}, step {step}, eval return {value:.1f}", file=sys.stderr)
PYEOF
)
    if [ -n "$best" ]; then
      $PY -m sac.play "$best" --video /tmp/half_cheetah.mp4
      $PY benchmarks/gif.py /tmp/half_cheetah.mp4 results/half_cheetah.gif --seconds 6 --width 240 --every 2
    fi ;;
  *) echo "validation.sh: unknown step '$step' (choose from studies, 1m, record, report, gif)" >&2; exit 2 ;;
  esac
done
