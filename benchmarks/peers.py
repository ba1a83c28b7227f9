#!/usr/bin/env python3
"""Training speed of peer SAC implementations, for side-by-side comparison with sac.

    python benchmarks/peers.py [--env HalfCheetah-v5] [--steps 6000] [--peers sb3,sbx] [--venv PATH] [--json]

What it measures: the steady-state environment steps per second of Stable-Baselines3 SAC (PyTorch,
CPU, one intra-op thread) and SBX SAC (JAX, CPU) on one environment, with the workload of sac's
default: 'MlpPolicy' with two hidden layers of 256 units for the actor and each critic (the default
net_arch of both libraries, passed explicitly here), batch 256, one gradient step per environment
step (train_freq 1, gradient_steps 1), learning_starts 1000, a replay buffer of 100,000, seed 0.

How: the peers live in their own virtual environment, built with `python -m venv` and pip on the
first call (a few minutes; the project's .venv is never touched) at --venv, else $SAC_PEERS_VENV,
else `sac-peers-venv` in the temp folder, with the pinned versions of PEER_PINS; later calls reuse
it. Each peer then runs in its own child process inside that venv, one after the other (they would
share the two cores otherwise): it learns for WARMUP_STEPS steps first, past learning_starts and
past the compilation of its update, then `--steps` further steps are timed.

Output: one line with the installed versions, then exactly one line per peer,
`peer=NAME env=ENV sps=FLOAT` (benchmarks/speed.py parses these), and with --json one JSON object
last. The figures depend on the machine and its load, which is noisy: compare them only as ratios
measured in the same run or window (e.g. against benchmarks/speed.py run right before), never
against figures from another run.

This file also serves as the child (`--child NAME`): it is run by the peers' venv Python, so
everything above `run_peer` uses the standard library only.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NoReturn

# The versions pip resolved for this benchmark (CPython 3.11, Linux x86-64, 2026-11), pinned so that
# every clone measures the same code and an upgrade is a deliberate edit here. SBX's speed follows
# jax/jaxlib/flax/optax and SB3's follows torch, so those are pinned too. torch==2.13.0 also matches
# the CPU-only build `2.13.0+cpu` where pip can see one (a local wheel folder, say); from PyPI alone,
# Linux x86-64 gets the default wheel, which pulls in NVIDIA's CUDA libraries (some GB) but runs on
# the CPU just the same (device="cpu").
PEER_PINS: dict[str, str] = {
    "torch": "2.13.0",
    "stable-baselines3": "2.9.2",
    "sbx-rl": "0.28.0",
    "gymnasium[mujoco]": "1.4.0",
    "mujoco": "4.0.0",
    "jax": "0.10.2",
    "jaxlib": "0.10.2",
    "flax": "0.12.8",
    "optax": "0.2.8",
    "tfp-nightly": "0.26.0.dev20261027",  # what sbx-rl 0.28.0 requires for its distributions
    "numpy": "2.4.6",
}
PEERS = ("sb3", "sbx")
# sac's default workload (see the module docstring); the same for every peer.
WORKLOAD: dict[str, object] = {
    "learning_starts": 1000,
    "batch_size": 256,
    "buffer_size": 100_000,
    "train_freq": 1,
    "gradient_steps": 1,
    "seed": 0,
}
NET_ARCH = [256, 256]
WARMUP_STEPS = 1200  # past learning_starts (1000) and the first updates' compilation
READY_FILE = ".sac-peers-ready"  # written only after a successful install; holds the pins
INSTALL_TIMEOUT_S = 3600


def fail(message: str) -> NoReturn:
    """One clear line on stderr and a non-zero exit."""
    print(f"peers.py: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def requirements() -> list[str]:
    return [f"{name}=={version}" for name, version in PEER_PINS.items()]


def default_venv() -> Path:
    return Path(os.environ.get("SAC_PEERS_VENV") or Path(tempfile.gettempdir(), "sac-peers-venv"))


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def ensure_venv(venv: Path) -> Path:
    """The peers' venv Python, building the venv first unless it is ready with the current pins."""
    ready = venv / READY_FILE
    wanted = "\n".join(requirements()) + "\n"
    if ready.is_file() and ready.read_text() == wanted and venv_python(venv).exists():
        return venv_python(venv)
    # Refuse a non-empty folder that is not a venv: a mistyped --venv must not fill someone's
    # directory with packages.
    if venv.exists() and any(venv.iterdir()) and not (venv / "pyvenv.cfg").exists():
        fail(f"{venv} exists and is not a virtual environment; pass another --venv")
    print(f"peers.py: building the peers' venv in {venv} (first call only; a few minutes)",
          file=sys.stderr, flush=True)
    ready.unlink(missing_ok=True)  # pins changed: not ready until the new install succeeds
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, text=True)
    except subprocess.CalledProcessError as err:
        last = ((err.stderr or err.stdout or "").strip().splitlines() or [f"exit {err.returncode}"])[-1]
        fail(f"could not create the venv {venv} with '{sys.executable} -m venv': {last}")
    log = venv / "pip-install.log"
    python = venv_python(venv)
    try:
        with open(log, "w") as out:
            subprocess.run([str(python), "-m", "pip", "install", "--disable-pip-version-check", *requirements()],
                           check=True, stdout=out, stderr=subprocess.STDOUT, timeout=INSTALL_TIMEOUT_S)
    except subprocess.CalledProcessError as err:
        fail(f"pip install of the peers failed (exit {err.returncode}); see {log}")
    except subprocess.TimeoutExpired:
        fail(f"pip install of the peers took over {INSTALL_TIMEOUT_S} s and was stopped; see {log}")
    ready.write_text(wanted)
    return python


def installed_versions(python: Path) -> dict[str, str]:
    """What the venv really holds, e.g. torch's local label '+cpu' that the pin leaves open."""
    names = [name.split("[")[0] for name in PEER_PINS]
    code = ("import importlib.metadata as m, json, sys; "
            "print(json.dumps({n: m.version(n) for n in sys.argv[1:]}))")
    out = subprocess.run([str(python), "-c", code, *names], check=True, capture_output=True, text=True, timeout=120)
    return json.loads(out.stdout)


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # nothing of the project's environment leaks into the peers'
    env["JAX_PLATFORMS"] = "cpu"  # CPU for both peers, as sac is measured
    env["CUDA_VISIBLE_DEVICES"] = ""
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return env


def measure(python: Path, name: str, env_id: str, steps: int, timeout: float) -> float:
    """Steps per second of one peer, run to completion in its own child process."""
    cmd = [str(python), str(Path(__file__).resolve()), "--child", name, "--env", env_id, "--steps", str(steps)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=child_env())
    except subprocess.TimeoutExpired:
        fail(f"peer {name} on {env_id} did not finish within --timeout {timeout:g} s and was stopped")
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        fail(f"peer {name} on {env_id} failed (exit {done.returncode}): {last}")
    return float(json.loads(done.stdout.strip().splitlines()[-1])["sps"])


# --- the child: runs inside the peers' venv ---------------------------------------------------------

def run_peer(name: str, env_id: str, steps: int) -> float:
    import gymnasium as gym

    if name == "sb3":
        import torch

        torch.set_num_threads(1)  # 2 threads run 3-4x slower on 2-core machines
        from stable_baselines3 import SAC
        extra: dict[str, object] = {"device": "cpu"}
    elif name == "sbx":
        from sbx import SAC  # JAX; CPU through JAX_PLATFORMS
        extra = {}
    else:
        raise ValueError(f"unknown peer {name!r}")
    model = SAC("MlpPolicy", gym.make(env_id), policy_kwargs={"net_arch": NET_ARCH}, verbose=0, **WORKLOAD, **extra)
    model.learn(WARMUP_STEPS)
    start = time.perf_counter()
    # reset_num_timesteps=False goes on from the warm-up's state: no env reset, no new compilation.
    model.learn(steps, reset_num_timesteps=False)
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="HalfCheetah-v5", help="a Gymnasium env id")
    parser.add_argument("--steps", type=int, default=6000, help="timed env steps after the warm-up")
    parser.add_argument("--peers", default=",".join(PEERS), help="comma-separated, from: " + ", ".join(PEERS))
    parser.add_argument("--venv", type=Path, default=None,
                        help="the peers' venv (default: $SAC_PEERS_VENV or <tempdir>/sac-peers-venv)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed to each peer's child")
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object last")
    parser.add_argument("--child", choices=PEERS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.steps < 1:
        parser.error("--steps must be at least 1")
    if args.child:
        print(json.dumps({"sps": run_peer(args.child, args.env, args.steps)}), flush=True)
        return
    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    unknown = sorted(set(peers) - set(PEERS))
    if unknown or not peers:
        parser.error(f"--peers takes names from {', '.join(PEERS)}; got {args.peers!r}")

    venv = (args.venv or default_venv()).expanduser().resolve()
    python = ensure_venv(venv)
    versions = installed_versions(python)
    print("versions " + " ".join(f"{k}={v}" for k, v in versions.items()) + f" venv={venv}", flush=True)
    results: dict[str, float] = {}
    for name in peers:  # one at a time: they would share the cores otherwise
        results[name] = measure(python, name, args.env, args.steps, args.timeout)
        print(f"peer={name} env={args.env} sps={results[name]:.1f}", flush=True)
    if args.json:
        print(json.dumps({"env": args.env, "steps": args.steps, "warmup_steps": WARMUP_STEPS,
                          "workload": {**WORKLOAD, "net_arch": NET_ARCH}, "sps": results,
                          "versions": versions, "venv": str(venv)}))


if __name__ == "__main__":
    main()
