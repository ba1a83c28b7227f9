#!/bin/bash
# The validation grid of README "Validation", step by step, from the repository root:
#   benchmarks/validation.sh RESULTS      (RESULTS: a folder outside the repository, kept between sessions)
# Run it again after any stop: sac.grid skips finished runs, resumes stopped ones, starts missing ones.
set -euo pipefail
RESULTS=${1:?usage: benchmarks/validation.sh RESULTS_FOLDER}
PY=${PYTHON:-python}

# 1. HalfCheetah, Hopper, Walker2d, Ant (v5), seeds 0-2, to 300,000 steps: two runs at a time, one
#    TensorFlow thread each (the grid splits the cores).
$PY -m sac.grid "$RESULTS" --configs half_cheetah,hopper,walker2d,ant --seeds 0,1,2 --parallel 2 \
    total_steps=300000 checkpoint_every=10000
# 2. Humanoid seed 0 to 300,000 steps, beside HalfCheetah seed 0 taken on to 1,000,000 (a larger
#    total_steps extends the finished run with resume=).
$PY -m sac.grid "$RESULTS" --configs humanoid --seeds 0 --parallel 1 total_steps=300000 checkpoint_every=10000 \
    num_threads=1 &
$PY -m sac.grid "$RESULTS" --configs half_cheetah --seeds 0 --parallel 1 total_steps=1000000 \
    checkpoint_every=10000 num_threads=1
wait
# 3. Curves, overview, table and per-seed CSVs into results/.
$PY -m sac.report "$RESULTS" --out results --steps 100000,300000,1000000
# 4. The README's GIF: the best kept policy of the best HalfCheetah run (seed 0 at 1M: of the
#    checkpoints it keeps, the one with the highest evaluation), one episode, its first 6 seconds at
#    240 pixels.
head=$(ls -d "$RESULTS"/half_cheetah/seed0/runs/[0-9]* | sort -t/ -k1 -V | tail -1)
best=$($PY - "$head" <<'PYEOF'
import sys
from pathlib import Path
from sac import checkpoint, rundirs
head = Path(sys.argv[1])
evals = rundirs.metric_curves([head], ["eval/return_mean"])["eval/return_mean"]
kept = [(value, step) for step, value in zip(evals.steps, evals.values)
        if checkpoint.checkpoint_path(head / "checkpoints", step).exists()]
value, step = max(kept)
print(checkpoint.checkpoint_path(head / "checkpoints", step))
print(f"best kept policy: step {step}, eval return {value:.1f}", file=sys.stderr)
PYEOF
)
$PY -m sac.play "$best" --video /tmp/half_cheetah.mp4
$PY benchmarks/gif.py /tmp/half_cheetah.mp4 results/half_cheetah.gif --seconds 6 --width 240 --every 2
