"""Recurrent actors and critics: shapes, where gradients flow, the acting state, the policy's
density, and save/load round trips compared over whole episodes."""
from __future__ import annotations

import itertools
import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf  # noqa: E402

from sac import squashed_gaussian  # noqa: E402
from sac.agent import SACAgent  # noqa: E402
from sac.kinds import NETWORK_KINDS  # noqa: E402
from sac.networks import build_actor, build_critic  # noqa: E402
from sac.replay import ReplayBuffer  # noqa: E402

from .conftest import sac_settings  # noqa: E402

pytestmark = pytest.mark.unit

OBS_DIM = 3
LOW, HIGH = np.array([-2.0, 0.0], np.float32), np.array([2.0, 1.0], np.float32)
NETWORKS = NETWORK_KINDS


def _buffer(steps: int = 120, seed: int = 0) -> ReplayBuffer:
    rng = np.random.default_rng(seed)
    buffer = ReplayBuffer(400, OBS_DIM, 2, seed=seed, num_streams=2)
    for t in range(steps):
        terminated = rng.uniform(size=2) < 0.05
        truncated = (t % 25 == 24) & ~terminated
        buffer.add_batch(rng.normal(size=(2, OBS_DIM)), rng.uniform(LOW, HIGH, (2, 2)), rng.normal(size=2),
                         rng.normal(size=(2, OBS_DIM)), terminated, np.full(2, truncated))
    return buffer


def _agent(actor: str, critic: str, burn_in: int = 0, seed: int = 1, jit_compile: bool = True) -> SACAgent:
    return SACAgent(OBS_DIM, LOW, HIGH, [16, 16], sac_settings(), seed=seed, jit_compile=jit_compile,
                    actor_network=actor, critic_network=critic, rnn_units=8, burn_in=burn_in)


@pytest.mark.parametrize("actor, critic", list(itertools.product(NETWORKS, NETWORKS)))
def test_every_combination_trains_and_acts_with_the_right_shapes(actor, critic):
    agent = _agent(actor, critic, burn_in=2)
    assert agent.sequences == (actor != "mlp" or critic != "mlp") and agent.policy.recurrent == (actor != "mlp")
    buffer = _buffer()
    before = [w.copy() for w in agent.critic.get_weights()]
    batches = (buffer.sample_sequence_stack(2, 6, 5, burn_in=2) if agent.sequences else buffer.sample_stack(2, 6))
    obs = np.zeros((4, OBS_DIM), np.float32)
    state = agent.policy.initial_state(4)
    metrics, actions, new_state = agent.train_and_act(batches, obs, state, np.ones(4, bool))
    assert actions.shape == (4, 2) and np.all((actions >= LOW) & (actions <= HIGH))
    assert all(np.isfinite(float(v)) for v in metrics.values())
    assert int(agent.update_counter.numpy()) == 2
    assert any(not np.array_equal(a, b) for a, b in zip(before, agent.critic.get_weights()))
    units = {"mlp": [], "lstm": [(4, 8), (4, 8)], "gru": [(4, 8)]}[actor]
    assert [s.shape for s in new_state] == ([(4, 2)] + units if actor != "mlp" else [])
    if actor != "mlp":
        np.testing.assert_array_equal(new_state[0], actions)  # the next step's previous action
    # Every variable of a recurrent network (its LSTM/GRU too) is in the saved state.
    # (two hidden layers and the head: 6 arrays; an LSTM or GRU adds kernel, recurrent kernel, bias)
    assert len(agent.get_state()["actor"]) == 6 + (3 if actor != "mlp" else 0)
    assert len(agent.get_state()["critic"]) == 12 + (3 if critic != "mlp" else 0)
    assert agent.actor.recurrent == (actor != "mlp") and agent.critic.recurrent == (critic != "mlp")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _numpy_recurrence(network: str, weights: list[np.ndarray], x: np.ndarray, state: list[np.ndarray]) -> np.ndarray:
    """Outputs [B, T, units] in float64, from the equations (Keras' gate layouts): an LSTM (Hochreiter
    and Schmidhuber 1997, with forget gate) with kernel columns [input, forget, cell, output]; a GRU
    (Cho et al. 2014) with columns [update, reset, candidate] and the reset applied after the
    recurrent product (Keras' reset_after), the new state z * h + (1 - z) * candidate."""
    kernel, recurrent, bias = (np.asarray(w, np.float64) for w in weights)
    h, c = state[0].astype(np.float64), (state[1].astype(np.float64) if network == "lstm" else None)
    outputs = []
    for t in range(x.shape[1]):
        if network == "lstm":
            i, f, g, o = np.split(x[:, t] @ kernel + h @ recurrent + bias, 4, axis=-1)
            c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
            h = _sigmoid(o) * np.tanh(c)
        else:
            xz, xr, xh = np.split(x[:, t] @ kernel + bias[0], 3, axis=-1)
            hz, hr, hh = np.split(h @ recurrent + bias[1], 3, axis=-1)
            z, r = _sigmoid(xz + hz), _sigmoid(xr + hr)
            h = z * h + (1.0 - z) * np.tanh(xh + r * hh)
        outputs.append(h)
    return np.stack(outputs, axis=1)


@pytest.mark.parametrize("network", ["lstm", "gru"])
def test_the_encoder_equals_a_float64_recurrence_written_from_the_equations(network):
    """Features = [the recurrence's outputs over (observation, previous action), the observation],
    from a given state, with or without burn-in (which cuts gradients, never values)."""
    actor = build_actor(OBS_DIM, LOW, HIGH, [16], seed=4, network=network, rnn_units=8)
    rng = np.random.default_rng(7)
    obs, prev = rng.normal(size=(4, 6, OBS_DIM)), rng.uniform(LOW, HIGH, size=(4, 6, 2))
    state = [0.5 * rng.normal(size=(4, 8)) for _ in range(2 if network == "lstm" else 1)]
    actor.encode(tf.constant(obs, tf.float32), tf.constant(prev, tf.float32))  # builds the layer
    # Every weight random, the biases too (Keras starts them at 0, or 1 for the forget gate).
    actor.encoder.set_weights([rng.normal(scale=0.5, size=w.shape).astype(np.float32)
                               for w in actor.encoder.get_weights()])
    weights = actor.encoder.get_weights()
    outputs = _numpy_recurrence(network, weights, np.concatenate([obs, prev], -1), state)
    expected = np.concatenate([outputs, obs], -1)
    for burn_in in (0, 2):
        features, final = actor.encode(tf.constant(obs, tf.float32), tf.constant(prev, tf.float32),
                                   [tf.constant(s, tf.float32) for s in state], burn_in=burn_in,
                                   warm=tf.constant([1.0, 0.0, 1.0, 0.0]))
        np.testing.assert_allclose(features.numpy(), expected, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(final[0].numpy(), outputs[:, -1], rtol=1e-5, atol=1e-5)  # h, what acting carries


def _encoder_gradients(burn_in: int, warm: float) -> np.ndarray:
    """|d loss / d input| per step, for a loss on the outputs of the steps after burn-in."""
    actor = build_actor(OBS_DIM, LOW, HIGH, [16], seed=4, network="lstm", rnn_units=8)
    obs = tf.random.stateless_normal([1, 6, OBS_DIM], seed=[1, 2])
    prev = tf.random.stateless_normal([1, 6, 2], seed=[3, 4])
    with tf.GradientTape() as tape:
        tape.watch(obs)
        features, _ = actor.encode(obs, prev, burn_in=burn_in, warm=tf.constant([warm]))
        mean, _ = actor(features)
        loss = tf.reduce_sum(mean[:, burn_in:])
    return np.abs(tape.gradient(loss, obs).numpy()[0]).sum(axis=-1)


def test_burn_in_steps_get_no_gradient_unless_the_sequence_starts_its_episode():
    warm = _encoder_gradients(burn_in=3, warm=1.0)
    assert np.all(warm[:3] == 0.0) and np.all(warm[3:] > 0.0)
    at_start = _encoder_gradients(burn_in=3, warm=0.0)  # zero state exact: the gradient goes through
    assert np.all(at_start > 0.0)
    np.testing.assert_allclose(at_start[3:], warm[3:], rtol=1e-5)


@pytest.mark.parametrize("network", ["lstm", "gru"])
def test_a_loss_at_the_last_step_reaches_the_weights_through_the_first_step(network):
    """The critic loss on only the last step of sequences: its gradient depends on what was
    observed at the first step (back-propagation through time reaches it)."""
    agent = _agent(network, network)
    batch = {k: tf.constant(v[0]) for k, v in _buffer().sample_sequence_stack(1, 8, 6).items()}
    last_only = np.zeros((8, 6), np.float32)
    last_only[:, 5] = 1.0
    batch["mask"] = tf.constant(last_only)
    batch["warm"] = tf.zeros([8])
    noise = tf.zeros([8, 6, 2])
    grads, _ = agent._critic_gradients(batch, noise, agent.alpha)
    changed = dict(batch)
    changed["obs"] = tf.concat([batch["obs"][:, :1] + 1.0, batch["obs"][:, 1:]], axis=1)
    grads_changed, _ = agent._critic_gradients(changed, noise, agent.alpha)
    recurrent = [i for i, v in enumerate(agent.critic.trainable_variables) if network in v.path]
    assert recurrent
    for i in recurrent:
        assert np.abs(grads[i].numpy()).max() > 0.0
        assert not np.allclose(grads[i].numpy(), grads_changed[i].numpy())


@pytest.mark.parametrize("network", ["lstm", "gru"])
def test_the_acting_state_resets_at_an_episode_start_and_persists_within_it_per_env(network):
    policy = _agent(network, "mlp").policy
    rng = np.random.default_rng(7)
    observations = rng.normal(size=(5, 2, OBS_DIM)).astype(np.float32)

    def fresh(rows: np.ndarray) -> np.ndarray:  # a new episode's first action for these observations
        return policy.act_with_state(rows, policy.initial_state(len(rows)), np.ones(len(rows), bool))[0]

    policy.reset()
    actions = [policy.act(observations[t]) for t in range(3)]
    np.testing.assert_array_equal(actions[0], fresh(observations[0]))
    assert not np.allclose(actions[2], fresh(observations[2]))  # the state carried the episode so far
    policy.reset([1])  # env 1's episode ends; env 0's goes on
    step3 = policy.act(observations[3])
    np.testing.assert_array_equal(step3[1], fresh(observations[3])[1])
    assert not np.allclose(step3[0], fresh(observations[3])[0])
    # Env 0 continued exactly as if env 1 had not been reset: the rows are independent.
    state = policy.initial_state(2)
    first = np.ones(2, bool)
    for t in range(4):
        reference, state = policy.act_with_state(observations[t], state, first)
        first = np.zeros(2, bool)
    np.testing.assert_array_equal(step3[0], reference[0])
    # The same observation after a reset gives the same action: nothing else was kept.
    policy.reset()
    np.testing.assert_array_equal(policy.act(observations[0]), actions[0])


def test_the_recurrent_policys_density_integrates_to_one():
    """The recurrent actor parameterises the same squashed Gaussian: at a step of an episode, the
    density of its actions integrates to 1 over the action interval, and a sample's log-density
    equals the density at that action (1-D action, trapezoidal rule on a fine grid)."""
    low, high = np.array([-2.0], np.float32), np.array([3.0], np.float32)
    actor = build_actor(OBS_DIM, low, high, [16], seed=9, network="lstm", rnn_units=8)
    obs = tf.random.stateless_normal([1, 4, OBS_DIM], seed=[5, 6])
    features, _ = actor.encode(obs, tf.zeros([1, 4, 1]))
    mean, log_std = actor(features[:, 3])
    u = np.linspace(-12.0, 12.0, 400_001)  # pre-tanh values: the box's interior, to float64 precision
    action = 0.5 + 2.5 * np.tanh(u)
    density = np.exp(squashed_gaussian.log_prob(
        tf.constant(action[:, None], tf.float64), tf.cast(mean, tf.float64), tf.cast(log_std, tf.float64),
        tf.constant([0.5], tf.float64), tf.constant([2.5], tf.float64)).numpy())
    # integral over a of p(a) = integral over u of p(a(u)) * da/du
    assert abs(np.trapezoid(density * 2.5 * (1 - np.tanh(u) ** 2), u) - 1.0) < 1e-4
    sampled, log_prob = actor.sample(features[:, 3], tf.constant([[0.3]]))
    direct = squashed_gaussian.log_prob(sampled, mean, log_std, actor.center, actor.half_range)
    np.testing.assert_allclose(log_prob.numpy(), direct.numpy(), rtol=1e-4)


@pytest.mark.parametrize("actor, critic", [("lstm", "gru"), ("gru", "mlp"), ("mlp", "lstm")])
def test_networks_built_apart_hold_the_same_weights_for_the_same_seed(actor, critic):
    """Rebuilding from a seed is deterministic, and an MLP actor's weights do not depend on the
    critic's kind (its layers keep their own seeds)."""
    a, b = _agent(actor, critic), _agent(actor, critic)
    for x, y in zip(a.actor.get_weights() + a.critic.get_weights(), b.actor.get_weights() + b.critic.get_weights()):
        np.testing.assert_array_equal(x, y)
    if actor == "mlp":
        for x, y in zip(a.actor.get_weights(), _agent("mlp", "mlp").actor.get_weights()):
            np.testing.assert_array_equal(x, y)


def test_a_critic_built_from_plain_weights_gives_the_same_values():
    critic = build_critic(OBS_DIM, 2, [16], seed=2, network="gru", rnn_units=8)
    copy = build_critic(OBS_DIM, 2, [16], seed=99, network="gru", rnn_units=8)
    copy.set_weights(critic.get_weights())
    obs, prev = tf.random.stateless_normal([2, 5, OBS_DIM], seed=[1, 1]), tf.zeros([2, 5, 2])
    action = tf.random.stateless_uniform([2, 5, 2], seed=[2, 2])
    for x, y in zip(critic(critic.encode(obs, prev)[0], action), copy(copy.encode(obs, prev)[0], action)):
        np.testing.assert_array_equal(x.numpy(), y.numpy())
