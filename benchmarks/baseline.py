"""Bit-identity of training across a code change: short runs whose every logged value and final
training state must match exactly between two versions of the code.

    python benchmarks/baseline.py run OUT [--code DIR]     # train the baseline runs into OUT/<name>/
    python benchmarks/baseline.py compare OUT_A OUT_B      # "identical" per run, or what differs

`--code DIR` trains with the package found in DIR (a `git worktree` of another commit), so that
"before" and "after" are trained by the same command from this script:

    git worktree add --detach /tmp/before <commit>
    python benchmarks/baseline.py run /tmp/base-before --code /tmp/before
    python benchmarks/baseline.py run /tmp/base-after
    python benchmarks/baseline.py compare /tmp/base-before /tmp/base-after

The first four are issue 8's baseline runs (Pendulum-v1 1,500 steps seed 5: the default update,
several envs with K-step rounds, plain graphs without XLA; and a Dict-observation env). Their action
boxes are not [-1, 1] (Pendulum's [-2, 2], the Dict env's [-1, 3] x [0, 0.5]), where the default
target entropy changed in issue 18: these runs pin target_entropy to the old default, -dim(A)/2
(taken as given), so that they compare across that change too.
The fifth trains HalfCheetah-v5 ([-1, 1] box) with every default, target entropy included: the
MuJoCo tasks of the validation grid must train alike. Each run takes about a minute here (CPU only,
one TensorFlow thread).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
PENDULUM = ["env_id=Pendulum-v1", "total_steps=1500", "seed=5", "target_entropy=-0.5"]
RUNS = {
    "default": PENDULUM,
    "k_steps": PENDULUM + ["num_envs=2", "train_every=3", "gradient_steps=2"],
    "no_xla": PENDULUM + ["jit_compile=False"],
    "dict_obs": ["env_id=tests.custom_envs:DictObservation-v0", "total_steps=1500", "seed=5", "eval_episodes=2",
                 "target_entropy=-1.0"],
    "half_cheetah": ["env_id=HalfCheetah-v5", "total_steps=1500", "learning_starts=500", "seed=5",
                     "eval_every=750", "eval_episodes=1", "log_every=250"],
}
TIMING = {"train/steps_per_second"}  # wall-clock figures: the only metrics allowed to differ


def run(out: Path, code: Path, only: list[str] | None = None) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(code), str(REPO), os.environ.get("PYTHONPATH")])),
           "CUDA_VISIBLE_DEVICES": "-1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    for name, updates in RUNS.items():
        if only and name not in only:
            continue
        where = out / name
        if (where / "runs").exists():
            raise SystemExit(f"baseline: {where} holds runs already; use an empty OUT")
        where.mkdir(parents=True)
        result = subprocess.run([sys.executable, "-m", "sac.train", "with", *updates, "num_threads=1"],
                                cwd=where, env=env, capture_output=True, text=True)
        (where / "log.txt").write_text(result.stdout + result.stderr)
        if result.returncode != 0:
            raise SystemExit(f"baseline: {name} failed (exit {result.returncode}); see {where / 'log.txt'}")
        print(f"{name}: trained ({code})", flush=True)


def _run_dir(where: Path) -> Path:
    runs = sorted((p for p in (where / "runs").iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    return runs[-1]


def _differences(a: Path, b: Path) -> list[str]:
    sys.path.insert(0, str(REPO))
    from sac import checkpoint

    found = []
    ma, mb = (json.loads((_run_dir(p) / "metrics.json").read_text()) for p in (a, b))
    for name in sorted((set(ma) | set(mb)) - TIMING):
        if name not in ma or name not in mb:
            found.append(f"metric {name} only in one")
        elif ma[name]["steps"] != mb[name]["steps"] or ma[name]["values"] != mb[name]["values"]:
            found.append(f"metric {name}")
    sa, sb = (checkpoint.load_newest_state(_run_dir(p) / "checkpoints")[1] for p in (a, b))
    for group in sorted(set(sa["agent"]) | set(sb["agent"])):
        xa, xb = sa["agent"].get(group, []), sb["agent"].get(group, [])
        if len(xa) != len(xb) or any(not np.array_equal(np.asarray(u), np.asarray(v)) for u, v in zip(xa, xb)):
            found.append(f"final agent state {group}")
    if not all(np.array_equal(sa["replay"][k], sb["replay"][k]) for k in ("obs", "action", "reward")):
        found.append("final replay contents")
    return found


def compare(a: Path, b: Path) -> int:
    bad = 0
    for name in RUNS:
        diffs = _differences(a / name, b / name)
        metrics = len(set(json.loads((_run_dir(a / name) / "metrics.json").read_text())) - TIMING)
        print(f"{name}: " + ("identical" if not diffs else "DIFFERENT: " + ", ".join(diffs))
              + f" ({metrics} metrics, final agent state, replay)")
        bad += bool(diffs)
    return 1 if bad else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="train the baseline runs into OUT/<name>/")
    p_run.add_argument("out", type=Path)
    p_run.add_argument("--code", type=Path, default=REPO, help="the repository whose sac package trains (default: this one)")
    p_run.add_argument("--only", default="", help="these runs only, comma-separated (default: all)")
    p_cmp = sub.add_parser("compare", help="compare two OUT folders run by run")
    p_cmp.add_argument("a", type=Path)
    p_cmp.add_argument("b", type=Path)
    args = parser.parse_args()
    if args.command == "run":
        run(args.out, args.code.resolve(), [n for n in args.only.split(",") if n])
        return 0
    return compare(args.a, args.b)


if __name__ == "__main__":
    sys.exit(main())
