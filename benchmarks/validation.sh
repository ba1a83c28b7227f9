#!/bin/bash
# The validation grid of docs/validation.md, step by step, from the repository root:
#   benchmarks/validation.sh RESULTS      (RESULTS: a folder outside the repository, kept between sessions)
# Run it again after any stop: sac.grid skips finished runs, resumes stopped ones, starts missing ones.
set -euo pipefail
RESULTS=${1:?usage: benchmarks/validation.sh RESULTS_FOLDER}
PY=${PYTHON:-python}

# Issue 18's grid, in two lanes of one run at a time (one TensorFlow thread each), as it was run:
#   lane A: Ant-v5 without the contact forces in its observation (ant_no_cfrc), seeds 0-2, to 300k;
#   lane B: Humanoid with the default target entropy (-dim(A)/2 in [-1, 1] units), seeds 0-2, to
#           300k, then HalfCheetah seeds 1-2 (seed 0 went to 1M in the grid before: results/), Hopper
#           and Walker2d seeds 0-2 to 1M.
# Then every task to 1M: a larger total_steps carries the finished 300k runs on with resume=.
lane() { $PY -m sac.grid "$RESULTS" --parallel 1 checkpoint_every=10000 num_threads=1 "$@"; }
(lane --configs ant_no_cfrc --seeds 0,1,2 total_steps=300000 &&
 lane --configs ant_no_cfrc --seeds 0,1,2 total_steps=1000000) &
lane --configs humanoid --seeds 0,1,2 total_steps=300000
lane --configs half_cheetah --seeds 1,2 total_steps=1000000
lane --configs hopper,walker2d --seeds 0,1,2 total_steps=1000000
lane --configs humanoid --seeds 0,1,2 total_steps=1000000
wait
# Curves, overview, table and per-seed CSVs into results/. HalfCheetah seed 0 comes from the grid
# before (its 1M curve, committed as results/HalfCheetah-v5/seed0.csv; its training state is gone).
mkdir -p "$RESULTS/carried/HalfCheetah-v5"
[ -f "$RESULTS/carried/HalfCheetah-v5/seed0.csv" ] || cp results/HalfCheetah-v5/seed0.csv "$RESULTS/carried/HalfCheetah-v5/"
$PY -m sac.report "$RESULTS" "$RESULTS/carried" --out results --steps 100000,300000,1000000
# The README's GIF: the best kept policy of the HalfCheetah runs (of the checkpoints each keeps, the
# one with the highest evaluation), one episode, its first 6 seconds at 240 pixels. The committed GIF
# is seed 0's 970k policy from the grid before (eval 12,740); this step replaces it only if a run
# here keeps a better one.
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
fi
