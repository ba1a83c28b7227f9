"""The agent's update against an independent float64 reference (tests/reference_sac.py, written
from the paper): from the same weights, batches and standard-normal draws, every variable of the
agent (actor, critics, target critics, log(alpha), Adam's moments and step counts) after one and
after three updates, on transitions (MLPs) and on sequences (recurrent networks, with padding and
burn-in), with and without XLA.

The seam into the agent (the only private name used): `SACAgent._update_key`, the key of the
update's noise stream. Update n (n = update_counter before it) draws its noise as
stateless N(0, 1) draws of shape rows + (action_dim,) seeded by sac.noise.seed_pair(_update_key, n,
stream), stream 0 for a' in the TD target and stream 1 for the actor's sample, rows [B] for
transitions and [B, T] for sequences; with jit_compile=True the draw is XLA-compiled (XLA's stateless
normals differ from the plain kernels'), and `_draws` below draws them through sac/noise.py too. Everything else is public: train_and_act,
the attributes actor, critic, target_critic, log_alpha, the three optimizers and update_counter
(their variables identified by their Keras paths), and sac.networks' builders and `encode`.

Tolerance. The agent computes in float32, the reference in float64. An Adam step moves a weight by
at most about lr (|m / (sqrt(v) + eps)| <= ~1 in the first steps), and float32's relative rounding
(6e-8) changes that step by a relative ~1e-6, more where a gradient is a sum of terms that nearly
cancel (Adam divides by |g|, so a small gradient's relative error becomes the step's). Measured here
on the weights: at most 1.3e-5 * lr after one update and 6e-5 * lr after three. The weights are
compared with atol = 3e-4 * lr * (updates) + 1e-6 * |w| (float32's storage of weights of size ~1),
15 to 20 times the measured error; Adam's moments relative to their size (rtol 1e-3, and atol 1e-3
times the array's largest entry, for entries where a running mean nearly cancels).

Each of these edits of sac/ was tried and makes a test here fail (issue 19), by moving some weights
by a sizeable fraction of lr, hundreds of times the tolerance: the TD target from the online
critics, the actor's loss on the target critics, the temperature loss on alpha instead of
log(alpha), Polyak averaging with 1 - tau in place of tau, and on sequences the same four and the
next-step features (actor's or target critic's) read at step t instead of t + 1; and, in the case
whose actor's log(std) straddles its upper bound, the clip dropped or let through by its gradient.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from sac import noise
from sac.agent import SACAgent, SACSettings
from sac.networks import build_actor, build_critic
from sac.squashed_gaussian import LOG_STD_MAX

from . import reference_sac as ref

pytestmark = pytest.mark.unit

OBS_DIM = 5
LOW = np.array([-1.0, 0.0], np.float32)  # an asymmetric box: the scale and centre matter
HIGH = np.array([3.0, 0.5], np.float32)
HIDDEN = [16, 16]
# Learning rates large enough that one step of each part moves the weights well past float32's
# rounding, and alpha_lr large enough that alpha changes between steps: Adam's step is invariant
# to a constant scale of the gradient, so a temperature loss on alpha instead of log(alpha)
# (gradient times alpha) shows only once alpha moves (and alpha != 1: initial_alpha 0.5).
SETTINGS = SACSettings(gamma=0.9, tau=0.1, reward_scale=2.0, target_entropy=-1.0, learn_alpha=True, initial_alpha=0.5,
                       actor_lr=1e-2, critic_lr=1e-2, alpha_lr=0.1)
UPDATES = 3


def _hyper() -> ref.Hyper:
    low, high = LOW.astype(np.float64), HIGH.astype(np.float64)
    return ref.Hyper(gamma=SETTINGS.gamma, tau=SETTINGS.tau, reward_scale=SETTINGS.reward_scale,
                     target_entropy=SETTINGS.target_entropy, center=(high + low) / 2, half_range=(high - low) / 2)


def _agent(jit_compile: bool, network: str = "mlp", burn_in: int = 0) -> SACAgent:
    """An agent whose target critics differ from its critics (as they do after any update), so that
    reading one for the other changes the very first update."""
    agent = SACAgent(OBS_DIM, LOW, HIGH, HIDDEN, SETTINGS, seed=4, jit_compile=jit_compile, actor_network=network,
                     critic_network=network, rnn_units=8 if network != "mlp" else 0, burn_in=burn_in)
    rng = np.random.default_rng(1)
    agent.target_critic.set_weights([w + 0.05 * rng.normal(size=w.shape).astype(np.float32)
                                     for w in agent.critic.get_weights()])
    return agent


# --- The agent's state as the reference's State, by the Keras variables' paths ------------------------

def _split(network: object, names: tuple[str, ...]) -> list[list[np.ndarray]]:
    """The network's weights (float64) grouped by the sub-network their path names, in Keras' order."""
    groups: list[list[np.ndarray]] = [[] for _ in names]
    for variable in network.weights:
        owner = [i for i, name in enumerate(names) if f"{name}/" in variable.path]
        assert len(owner) == 1, (variable.path, names)
        groups[owner[0]].append(np.asarray(variable.numpy(), np.float64))
    return groups


def _adam(optimizer: object, lr: float) -> ref.Adam:
    """Keras' Adam variables: [iteration, learning_rate, then momentum, velocity per variable]."""
    variables = optimizer.variables
    assert variables[0].path.endswith("iteration") and variables[1].path.endswith("learning_rate")
    assert all(v.path.endswith("_momentum") for v in variables[2::2])
    assert all(v.path.endswith("_velocity") for v in variables[3::2])
    arrays = [np.asarray(v.numpy(), np.float64) for v in variables]
    return ref.Adam(lr, arrays[2::2], arrays[3::2], int(arrays[0]))


def _state(agent: SACAgent) -> ref.State:
    actor_mlp, actor_encoder = _split(agent.actor, ("actor", "actor_encoder"))
    q1, q2, critic_encoder = _split(agent.critic, ("critic_q1", "critic_q2", "critic_encoder"))
    t1, t2, target_encoder = _split(agent.target_critic, ("target_critic_q1", "target_critic_q2",
                                                          "target_critic_encoder"))
    s = SETTINGS
    return ref.State(actor=ref.unflat(actor_mlp), q1=ref.unflat(q1), q2=ref.unflat(q2), target_q1=ref.unflat(t1),
                     target_q2=ref.unflat(t2), log_alpha=float(agent.log_alpha.numpy()),
                     actor_adam=_adam(agent.actor_optimizer, s.actor_lr),
                     critic_adam=_adam(agent.critic_optimizer, s.critic_lr),
                     alpha_adam=_adam(agent.alpha_optimizer, s.alpha_lr),
                     actor_encoder=actor_encoder, critic_encoder=critic_encoder, target_encoder=target_encoder)


def _named(state: ref.State) -> dict[str, np.ndarray]:
    """Every array of a State by a readable name, for the comparison."""
    out: dict[str, np.ndarray] = {"log_alpha": np.float64(state.log_alpha)}
    for name, arrays in [("actor", state.actor_params()), ("critic", state.critic_params()),
                         ("target_critic", state.target_params())]:
        out.update({f"{name}[{i}]": a for i, a in enumerate(arrays)})
    for name, adam in [("actor_adam", state.actor_adam), ("critic_adam", state.critic_adam),
                       ("alpha_adam", state.alpha_adam)]:
        out[f"{name}.iterations"] = np.float64(adam.iterations)
        out.update({f"{name}.m[{i}]": np.asarray(a) for i, a in enumerate(adam.m)})
        out.update({f"{name}.v[{i}]": np.asarray(a) for i, a in enumerate(adam.v)})
    return out


def _tolerance(name: str, updates: int) -> tuple[float, float]:
    """(atol, rtol) of one array (see the module docstring). Adam's moments are compared relative
    to their own size: m ~ g and v ~ g^2 carry float32's relative gradient error."""
    if name.endswith("iterations"):
        return 0.0, 0.0
    if ".m[" in name or ".v[" in name:
        return 1e-12, 1e-3
    lr = {"actor": SETTINGS.actor_lr, "critic": SETTINGS.critic_lr, "target_critic": SETTINGS.critic_lr,
          "log_alpha": SETTINGS.alpha_lr}[name.split("[")[0]]
    return 3e-4 * lr * updates, 1e-6


def _compare(agent: SACAgent, reference: ref.State, updates: int) -> None:
    """Every array of the agent against the reference; the failure lists every array out of tolerance
    (max |difference| and its tolerance), in the order actor, critic, target critic, log(alpha), Adam."""
    got, want = _named(_state(agent)), _named(reference)
    assert set(got) == set(want)
    beyond = []
    for name in want:
        atol, rtol = _tolerance(name, updates)
        if ".m[" in name or ".v[" in name:  # moments: relative to the array's own scale (see _tolerance)
            atol = max(atol, 1e-3 * float(np.max(np.abs(want[name]))))
        excess = np.abs(got[name] - want[name]) - (atol + rtol * np.abs(want[name]))
        if np.any(excess > 0):
            worst = np.unravel_index(np.argmax(excess), np.shape(excess))
            beyond.append(f"{name}: |diff| {np.max(np.abs(got[name] - want[name])):.3g} "
                          f"(tolerance {atol + rtol * np.abs(want[name])[worst]:.3g})")
    assert not beyond, f"after {updates} update(s), beyond tolerance: " + "; ".join(beyond)


# --- The noise seam -------------------------------------------------------------------------------------

# The agent's own stateless N(0, 1) draws and seed arithmetic (sac/noise.py), XLA-compiled or not: the
# noise is the seam, not what is tested (traced once per shape; the seed is an input).
_DRAW = {jit: noise.standard_normal_draws(jit) for jit in (False, True)}


def _draws(agent: SACAgent, rows: tuple[int, ...], jit_compile: bool) -> tuple[np.ndarray, np.ndarray]:
    """The (next-action, actor) standard-normal draws of the agent's next update (module docstring)."""
    key, counter = int(agent._update_key.numpy()), int(agent.update_counter.numpy())
    shape = tuple(int(r) for r in rows) + (agent.action_dim,)

    def draw(stream: int) -> np.ndarray:
        seed = noise.seed_pair(tf.constant(key, tf.int64), tf.constant(counter, tf.int64), stream)
        return _DRAW[jit_compile](shape, seed).numpy().astype(np.float64)

    return draw(0), draw(1)


# --- Transitions -----------------------------------------------------------------------------------------

def _batch(rng: np.random.Generator, n: int = 32) -> dict[str, np.ndarray]:
    return {"obs": rng.normal(size=(n, OBS_DIM)).astype(np.float32),
            "action": rng.uniform(LOW, HIGH, size=(n, 2)).astype(np.float32),
            "reward": rng.normal(size=n).astype(np.float32),
            "next_obs": rng.normal(size=(n, OBS_DIM)).astype(np.float32),
            "terminated": (rng.uniform(size=n) < 0.25).astype(np.float32)}


def _act_obs() -> np.ndarray:
    return np.zeros((1, OBS_DIM), np.float32)


def _raw_log_std(agent: SACAgent, obs: np.ndarray) -> np.ndarray:
    """The MLP actor's log(std) before the clip: the second half of its head's outputs."""
    x = tf.constant(obs)
    for layer in agent.actor.hidden:
        x = layer(x)
    return agent.actor.head(x).numpy()[:, len(LOW):]


@pytest.mark.parametrize("jit_compile, clipped", [(False, False), (True, False), (False, True)])
def test_updates_equal_the_float64_reference(jit_compile: bool, clipped: bool):
    agent = _agent(jit_compile)
    rng = np.random.default_rng(0)
    batches = [_batch(rng) for _ in range(UPDATES)]
    if clipped:  # log(std) centred on its upper bound over the first batch: the clip holds half the entries
        bias = agent.actor.head.bias.numpy()
        bias[len(LOW):] += LOG_STD_MAX - np.median(_raw_log_std(agent, batches[0]["obs"]), axis=0)
        agent.actor.head.bias.assign(bias)
        assert 0.3 < np.mean(_raw_log_std(agent, batches[0]["obs"]) > LOG_STD_MAX) < 0.7
    reference = start = _state(agent)
    for n, batch in enumerate(batches, start=1):
        next_noise, noise = _draws(agent, (len(batch["obs"]),), jit_compile)
        reference, ref_metrics = ref.update(reference, {k: v.astype(np.float64) for k, v in batch.items()},
                                            next_noise, noise, _hyper())
        metrics, _, _ = agent.train_and_act({k: v[None] for k, v in batch.items()}, _act_obs())
        if n in (1, UPDATES):
            _compare(agent, reference, n)
        for name in ("loss/critic", "loss/actor"):
            assert float(metrics[name]) == pytest.approx(ref_metrics[name], rel=1e-4, abs=1e-5), name
    # The comparison is not vacuous: every part moved by many times its tolerance.
    moved = {name: float(np.max(np.abs(a - _named(start)[name]))) for name, a in _named(reference).items()
             if not name.startswith(("actor_adam", "critic_adam", "alpha_adam"))}
    for prefix in ("actor", "critic", "target_critic", "log_alpha"):
        atol, _ = _tolerance(f"{prefix}[0]" if prefix != "log_alpha" else prefix, UPDATES)
        assert max(v for k, v in moved.items() if k.split("[")[0] == prefix) > 20 * atol, prefix


# --- Sequences --------------------------------------------------------------------------------------------

class AgentEncoders:
    """The reference's features: the agent's own encoder layers (sac.networks), run on scratch copies
    of the networks that hold the reference's current encoder weights, over all T + 1 steps. Those
    layers' values are checked apart, against a float64 recurrence written from the equations
    (tests/test_recurrent.py); their weight gradients here are TensorFlow's autodiff of them."""

    def __init__(self, network: str, burn_in: int) -> None:
        self.burn_in = burn_in
        self.nets = {"actor": build_actor(OBS_DIM, LOW, HIGH, HIDDEN, network=network, rnn_units=8),
                     "critic": build_critic(OBS_DIM, 2, HIDDEN, network=network, rnn_units=8),
                     "target_critic": build_critic(OBS_DIM, 2, HIDDEN, network=network, rnn_units=8)}

    def _encode(self, network: str, weights: list[np.ndarray], batch: dict[str, np.ndarray]) -> tuple:
        net = self.nets[network]
        net.encoder.set_weights([w.astype(np.float32) for w in weights])
        return net, lambda: net.encode(tf.constant(batch["obs"], tf.float32), tf.constant(batch["prev_action"], tf.float32),
                                       burn_in=self.burn_in, warm=tf.constant(batch["warm"], tf.float32))[0]

    def features(self, network: str, weights: list[np.ndarray], batch: dict[str, np.ndarray]) -> np.ndarray:
        _, encode = self._encode(network, weights, batch)
        return encode().numpy().astype(np.float64)

    def weight_gradients(self, network: str, weights: list[np.ndarray], batch: dict[str, np.ndarray],
                         d_features: np.ndarray) -> list[np.ndarray]:
        net, encode = self._encode(network, weights, batch)
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(encode() * tf.constant(d_features, tf.float32))
        grads = tape.gradient(loss, net.encoder.trainable_variables)
        assert [v.path.split("/", 1)[1] for v in net.encoder.trainable_variables] == [
            v.path.split("/", 1)[1] for v in net.encoder.weights]
        return [g.numpy().astype(np.float64) for g in grads]


def _sequences(rng: np.random.Generator, b: int = 6, t: int = 5) -> dict[str, np.ndarray]:
    """Sequences of t steps, some cut short by padding (mask 0 after their end), some warmed up by
    burn-in (warm 1), with step t's next observation as obs[:, t]."""
    mask = np.ones((b, t))
    for row, length in enumerate(rng.integers(2, t + 1, size=b)):
        mask[row, length:] = 0.0
    action = rng.uniform(LOW, HIGH, size=(b, t, 2))
    batch = {"obs": rng.normal(size=(b, t + 1, OBS_DIM)), "action": action,
             "prev_action": np.concatenate([rng.uniform(LOW, HIGH, size=(b, 1, 2)), action], axis=1),
             "reward": rng.normal(size=(b, t)), "terminated": (rng.uniform(size=(b, t)) < 0.2) * 1.0,
             "mask": mask, "warm": (np.arange(b) % 2) * 1.0}
    return {k: v.astype(np.float32) for k, v in batch.items()}


@pytest.mark.parametrize("network, burn_in, jit_compile", [("lstm", 2, False), ("gru", 0, True)])
def test_sequence_updates_equal_a_per_step_float64_reference(network: str, burn_in: int, jit_compile: bool):
    agent = _agent(jit_compile, network, burn_in)
    encoders = AgentEncoders(network, burn_in)
    reference = _state(agent)
    assert reference.actor_encoder and reference.critic_encoder  # the recurrent weights are compared too
    rng = np.random.default_rng(2)
    obs, state, first = _act_obs(), agent.policy.initial_state(1), np.ones(1, bool)
    for n in range(1, UPDATES + 1):
        batch = _sequences(rng)
        if burn_in:
            batch["mask"][batch["warm"] > 0, :burn_in] = 0.0  # burn-in steps of warmed rows do not count
        next_noise, noise = _draws(agent, batch["mask"].shape, jit_compile)
        reference, ref_metrics = ref.sequence_update(reference, {k: v.astype(np.float64) for k, v in batch.items()},
                                                     next_noise, noise, _hyper(), encoders)
        metrics, _, _ = agent.train_and_act({k: v[None] for k, v in batch.items()}, obs, state, first)
        if n in (1, UPDATES):
            _compare(agent, reference, n)
        for name in ("loss/critic", "loss/actor"):
            assert float(metrics[name]) == pytest.approx(ref_metrics[name], rel=1e-4, abs=1e-5), name


# --- The reference's own backward pass, against central finite differences -----------------------------

def test_the_references_gradients_match_central_finite_differences():
    """The hand-written backward passes (MLP, Q on (s, a), the squashed Gaussian's sample and
    log-density) against central differences of the same float64 forward pass, so that a mistake in
    the reference cannot hide behind one in the agent."""
    rng = np.random.default_rng(5)
    hp = _hyper()

    def mlp(sizes: list[int]) -> ref.Mlp:
        return [(rng.normal(size=(i, o)) / math.sqrt(i), 0.1 * rng.normal(size=o)) for i, o in zip(sizes, sizes[1:])]

    actor, q = mlp([OBS_DIM, 16, 16, 4]), mlp([OBS_DIM + 2, 16, 16, 1])
    obs, noise = rng.normal(size=(8, OBS_DIM)), rng.normal(size=(8, 2))
    alpha = 0.7

    def loss(actor_arrays: list[np.ndarray], q_arrays: list[np.ndarray]) -> float:
        smp = ref.actor_sample(ref.unflat(actor_arrays), obs, noise, hp.center, hp.half_range)
        value, _ = ref.q_forward(ref.unflat(q_arrays), obs, smp.action)
        return float(np.mean(alpha * smp.log_prob - value + 0.3 * value ** 2))

    smp = ref.actor_sample(actor, obs, noise, hp.center, hp.half_range)
    value, cache = ref.q_forward(q, obs, smp.action)
    d_value = (-1.0 + 0.6 * value) / len(obs)
    g_q, _, d_action = ref.q_backward(q, cache, d_value, OBS_DIM)
    g_actor, _ = ref.actor_backward(actor, smp, d_action, np.full(len(obs), alpha / len(obs)), hp.half_range)
    for which, arrays, grads in [("actor", ref.flat(actor), ref.flat(g_actor)), ("q", ref.flat(q), ref.flat(g_q))]:
        for i, (array, grad) in enumerate(zip(arrays, grads)):
            for index in list(np.ndindex(array.shape))[::7]:
                def at(delta: float) -> float:
                    changed = [a.copy() for a in arrays]
                    changed[i][index] += delta
                    return loss(changed, ref.flat(q)) if which == "actor" else loss(ref.flat(actor), changed)
                numeric = (at(1e-6) - at(-1e-6)) / 2e-6
                assert grad[index] == pytest.approx(numeric, rel=1e-5, abs=1e-8), (which, i, index)
