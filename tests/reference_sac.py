"""An independent float64 numpy reference of one SAC gradient step (Haarnoja et al., "Soft
Actor-Critic Algorithms and Applications", arXiv 1812.05905), written from the paper, not from
sac/agent.py or sac/losses.py; tests/test_reference_update.py compares the agent with it.

Everything is by hand: ReLU MLPs forward and backward, the tanh-squashed Gaussian's sample and
log-density with the Jacobian of the squash and of the box's scale (eq. 26), the losses of the
critics (eq. 5 with the target of eqs. 2-3 and clipped double Q, Section 4.2), of the actor (eq. 12
through the reparameterised sample of eq. 11) and of the temperature (eq. 18, on log(alpha)),
Keras' Adam and Polyak averaging (Algorithm 1). The order within one gradient step is Algorithm 1's,
which the code follows: the critics' step first (its TD target from the actor, the target critics
and alpha before the step), then the actor's step on the *updated* critics, then the temperature's
step from the log-densities of the actor's step (the actor before its step), then Polyak.

The recurrent version (`sequence_update`) works on the per-step features of recurrent encoders,
which it gets from an `Encoders` object (the test runs the agent's own encoder layers there): the
loss and its indexing (step t reads features t, its target reads features t + 1), the mask, and
the losses' normalisation (the mean over the steps that count) are written here, as a loop over the
steps.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

# One ReLU MLP: (kernel [in, out], bias [out]) per layer, ReLU after every layer but the last.
Mlp = list[tuple[np.ndarray, np.ndarray]]

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # the actor's log(std) bounds (TF-Agents / softlearning)
# keras.optimizers.Adam's defaults (Keras 3): beta_1 0.9, beta_2 0.999, epsilon 1e-7.
BETA_1, BETA_2, EPSILON = 0.9, 0.999, 1e-7


# --- ReLU MLPs ---------------------------------------------------------------------------------------

def mlp_forward(layers: Mlp, x: np.ndarray) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """Output [N, out] and, per layer, (its input, its pre-activation) for the backward pass."""
    cache = []
    h = x
    for i, (kernel, bias) in enumerate(layers):
        z = h @ kernel + bias
        cache.append((h, z))
        h = np.maximum(z, 0.0) if i < len(layers) - 1 else z
    return h, cache


def mlp_backward(layers: Mlp, cache: list[tuple[np.ndarray, np.ndarray]], d_out: np.ndarray
                 ) -> tuple[Mlp, np.ndarray]:
    """Gradients of a scalar with respect to every (kernel, bias), and to the input, given its
    gradient d_out with respect to the output. ReLU's derivative is taken as 0 at 0."""
    grads: Mlp = [None] * len(layers)  # type: ignore[list-item]
    g = d_out
    for i in reversed(range(len(layers))):
        h, z = cache[i]
        if i < len(layers) - 1:
            g = g * (z > 0.0)
        grads[i] = (h.T @ g, g.sum(axis=0))
        g = g @ layers[i][0].T
    return grads, g


def q_forward(layers: Mlp, features: np.ndarray, action: np.ndarray) -> tuple[np.ndarray, list]:
    """Q(s, a) [N] of one Q-network on the concatenation (features, action)."""
    out, cache = mlp_forward(layers, np.concatenate([features, action], axis=-1))
    return out[:, 0], cache


def q_backward(layers: Mlp, cache: list, d_q: np.ndarray, feature_dim: int) -> tuple[Mlp, np.ndarray, np.ndarray]:
    """Gradients with respect to the weights, the features and the action, given dL/dQ [N]."""
    grads, d_x = mlp_backward(layers, cache, d_q[:, None])
    return grads, d_x[:, :feature_dim], d_x[:, feature_dim:]


# --- The tanh-squashed Gaussian (paper Appendix C) ------------------------------------------------------

def log_sech_squared(u: np.ndarray) -> np.ndarray:
    """log(1 - tanh(u)^2) = -2 log cosh(u) = -2 (|u| + log(1 + exp(-2|u|)) - log 2)."""
    a = np.abs(u)
    return -2.0 * (a + np.log1p(np.exp(-2.0 * a)) - math.log(2.0))


@dataclass
class ActorSample:
    action: np.ndarray  # [N, A] in the box
    log_prob: np.ndarray  # [N]
    cache: list
    raw_log_std: np.ndarray
    std: np.ndarray
    noise: np.ndarray
    tanh_u: np.ndarray


def actor_sample(layers: Mlp, features: np.ndarray, noise: np.ndarray, center: np.ndarray,
                 half_range: np.ndarray) -> ActorSample:
    """a = center + half_range * tanh(mean + std * noise) (eq. 11, then the squash and the box), and

        log pi(a|s) = sum_j [log N(u_j; mean_j, std_j) - log(half_range_j) - log(1 - tanh(u_j)^2)]

    (eq. 26 with the box's affine scale). The network's second half of outputs is log(std), clipped."""
    out, cache = mlp_forward(layers, features)
    dim = noise.shape[-1]
    mean, raw = out[:, :dim], out[:, dim:]
    log_std = np.clip(raw, LOG_STD_MIN, LOG_STD_MAX)
    std = np.exp(log_std)
    u = mean + std * noise
    t = np.tanh(u)
    # log N(u; mean, std) with (u - mean) / std = noise.
    gaussian = -0.5 * noise ** 2 - log_std - 0.5 * math.log(2.0 * math.pi)
    log_prob = np.sum(gaussian - np.log(half_range) - log_sech_squared(u), axis=-1)
    return ActorSample(center + half_range * t, log_prob, cache, raw, std, noise, t)


def actor_backward(layers: Mlp, s: ActorSample, d_action: np.ndarray, d_log_prob: np.ndarray,
                   half_range: np.ndarray) -> tuple[Mlp, np.ndarray]:
    """Gradients through the reparameterised sample, given dL/da [N, A] and dL/dlog pi [N]:
    du = dL/da * half_range * (1 - tanh(u)^2) + dL/dlog pi * 2 tanh(u)   (d(-log(1 - tanh^2 u))/du),
    dmean = du, dlog_std = du * std * noise - dL/dlog pi (zero where the clip is active)."""
    du = d_action * half_range * (1.0 - s.tanh_u ** 2) + d_log_prob[:, None] * 2.0 * s.tanh_u
    d_log_std = du * s.std * s.noise - d_log_prob[:, None]
    d_log_std = d_log_std * ((s.raw_log_std >= LOG_STD_MIN) & (s.raw_log_std <= LOG_STD_MAX))
    return mlp_backward(layers, s.cache, np.concatenate([du, d_log_std], axis=-1))


# --- Keras' Adam and Polyak --------------------------------------------------------------------------------

@dataclass
class Adam:
    """keras.optimizers.Adam (Keras 3): m, v the biased moments; the bias correction is folded into
    the step size and epsilon added to sqrt(v) itself, not to the corrected sqrt(v_hat):
        m <- beta_1 m + (1 - beta_1) g,   v <- beta_2 v + (1 - beta_2) g^2,
        w <- w - lr * sqrt(1 - beta_2^t) / (1 - beta_1^t) * m / (sqrt(v) + epsilon)."""

    lr: float
    m: list[np.ndarray]
    v: list[np.ndarray]
    iterations: int = 0

    @classmethod
    def zeros(cls, lr: float, params: list[np.ndarray]) -> "Adam":
        return cls(lr, [np.zeros_like(p) for p in params], [np.zeros_like(p) for p in params])

    def step(self, params: list[np.ndarray], grads: list[np.ndarray]) -> tuple[list[np.ndarray], "Adam"]:
        """The parameters after one step, and the optimizer's state after it (self is unchanged)."""
        t = self.iterations + 1
        m = [BETA_1 * m + (1.0 - BETA_1) * g for m, g in zip(self.m, grads, strict=True)]
        v = [BETA_2 * v + (1.0 - BETA_2) * g * g for v, g in zip(self.v, grads, strict=True)]
        size = self.lr * math.sqrt(1.0 - BETA_2 ** t) / (1.0 - BETA_1 ** t)
        new = [p - size * mi / (np.sqrt(vi) + EPSILON) for p, mi, vi in zip(params, m, v, strict=True)]
        return new, Adam(self.lr, m, v, t)


def polyak(target: list[np.ndarray], source: list[np.ndarray], tau: float) -> list[np.ndarray]:
    """Algorithm 1's target update: theta_bar <- tau * theta + (1 - tau) * theta_bar."""
    return [tau * s + (1.0 - tau) * t for t, s in zip(target, source, strict=True)]


# --- The whole learning state --------------------------------------------------------------------------------

def flat(mlp: Mlp) -> list[np.ndarray]:
    return [a for layer in mlp for a in layer]


def unflat(arrays: list[np.ndarray]) -> Mlp:
    return [(arrays[i], arrays[i + 1]) for i in range(0, len(arrays), 2)]


@dataclass
class State:
    """Weights in Keras' order within each network (per layer kernel, bias; q1's layers, then q2's);
    a recurrent network's encoder weights are separate lists, in Keras' order too. Adam's moments
    are lists over the same order: actor = actor MLP + actor encoder, critic = q1 + q2 + critic
    encoder, alpha = [log_alpha]."""

    actor: Mlp
    q1: Mlp
    q2: Mlp
    target_q1: Mlp
    target_q2: Mlp
    log_alpha: float
    actor_adam: Adam
    critic_adam: Adam
    alpha_adam: Adam
    actor_encoder: list[np.ndarray] = field(default_factory=list)
    critic_encoder: list[np.ndarray] = field(default_factory=list)
    target_encoder: list[np.ndarray] = field(default_factory=list)

    def critic_params(self) -> list[np.ndarray]:
        return flat(self.q1) + flat(self.q2) + list(self.critic_encoder)

    def target_params(self) -> list[np.ndarray]:
        return flat(self.target_q1) + flat(self.target_q2) + list(self.target_encoder)

    def actor_params(self) -> list[np.ndarray]:
        return flat(self.actor) + list(self.actor_encoder)

    def with_critic(self, params: list[np.ndarray]) -> "State":
        n = len(flat(self.q1))
        return replace(self, q1=unflat(params[:n]), q2=unflat(params[n:2 * n]), critic_encoder=params[2 * n:])

    def with_target(self, params: list[np.ndarray]) -> "State":
        n = len(flat(self.q1))
        return replace(self, target_q1=unflat(params[:n]), target_q2=unflat(params[n:2 * n]),
                       target_encoder=params[2 * n:])

    def with_actor(self, params: list[np.ndarray]) -> "State":
        n = len(flat(self.actor))
        return replace(self, actor=unflat(params[:n]), actor_encoder=params[n:])

    def critic_step(self, grads: list[np.ndarray]) -> "State":
        params, adam = self.critic_adam.step(self.critic_params(), grads)
        return replace(self.with_critic(params), critic_adam=adam)

    def actor_step(self, grads: list[np.ndarray]) -> "State":
        params, adam = self.actor_adam.step(self.actor_params(), grads)
        return replace(self.with_actor(params), actor_adam=adam)

    def alpha_step(self, grad: float) -> "State":
        params, adam = self.alpha_adam.step([np.float64(self.log_alpha)], [np.float64(grad)])
        return replace(self, log_alpha=float(params[0]), alpha_adam=adam)


@dataclass(frozen=True)
class Hyper:
    gamma: float
    tau: float
    reward_scale: float
    target_entropy: float
    center: np.ndarray
    half_range: np.ndarray


def _clipped_double_q_grads(q1: np.ndarray, q2: np.ndarray, d_min: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Route dL/dmin(Q1, Q2) to the smaller of the two (ties, of probability 0, to Q1)."""
    first = q1 <= q2
    return d_min * first, d_min * ~first


# --- One update on transitions (feed-forward networks) -----------------------------------------------------

def update(state: State, batch: dict[str, np.ndarray], next_noise: np.ndarray, noise: np.ndarray,
           hp: Hyper) -> tuple[State, dict[str, float]]:
    """One gradient step of Algorithm 1 on a batch of transitions; `next_noise` is the standard-normal
    draw behind a' ~ pi(.|s') in the TD target, `noise` the one behind the actor's sample."""
    obs, action, next_obs = batch["obs"], batch["action"], batch["next_obs"]
    reward, terminated = batch["reward"], batch["terminated"]
    n, obs_dim = obs.shape
    alpha = math.exp(state.log_alpha)

    # TD target (eqs. 2-3, clipped double Q of Section 4.2), from the *target* critics and the
    # next action's log-density; a constant for the critic's gradient:
    #   y = reward_scale * r + gamma * (1 - terminated) * (min_i Qbar_i(s', a') - alpha * log pi(a'|s'))
    nxt = actor_sample(state.actor, next_obs, next_noise, hp.center, hp.half_range)
    qt1, _ = q_forward(state.target_q1, next_obs, nxt.action)
    qt2, _ = q_forward(state.target_q2, next_obs, nxt.action)
    y = hp.reward_scale * reward + hp.gamma * (1.0 - terminated) * (np.minimum(qt1, qt2) - alpha * nxt.log_prob)

    # Critics (eq. 5): J_Q = mean_batch[0.5 (Q1(s, a) - y)^2] + mean_batch[0.5 (Q2(s, a) - y)^2].
    q1, c1 = q_forward(state.q1, obs, action)
    q2, c2 = q_forward(state.q2, obs, action)
    critic_loss = float(np.mean(0.5 * (q1 - y) ** 2) + np.mean(0.5 * (q2 - y) ** 2))
    g1, _, _ = q_backward(state.q1, c1, (q1 - y) / n, obs_dim)
    g2, _, _ = q_backward(state.q2, c2, (q2 - y) / n, obs_dim)
    state = state.critic_step(flat(g1) + flat(g2))

    # Actor (eq. 12) on the updated critics, alpha as before this step:
    #   J_pi = mean_batch[alpha * log pi(a~|s) - min_i Q_i(s, a~)],  a~ = f(noise; s) (eq. 11).
    smp = actor_sample(state.actor, obs, noise, hp.center, hp.half_range)
    p1, pc1 = q_forward(state.q1, obs, smp.action)
    p2, pc2 = q_forward(state.q2, obs, smp.action)
    actor_loss = float(np.mean(alpha * smp.log_prob - np.minimum(p1, p2)))
    d1, d2 = _clipped_double_q_grads(p1, p2, np.full(n, -1.0 / n))
    _, _, da1 = q_backward(state.q1, pc1, d1, obs_dim)
    _, _, da2 = q_backward(state.q2, pc2, d2, obs_dim)
    ga, _ = actor_backward(state.actor, smp, da1 + da2, np.full(n, alpha / n), hp.half_range)

    # Temperature (eq. 18, on log alpha): J = mean_batch[-log alpha * (log pi(a~|s) + target_entropy)],
    # with the actor step's log-densities (those of the actor before its step).
    alpha_grad = -float(np.mean(smp.log_prob + hp.target_entropy))
    state = state.actor_step(flat(ga))
    state = state.alpha_step(alpha_grad)

    # Target critics trail the critics (Algorithm 1).
    state = state.with_target(polyak(state.target_params(), state.critic_params(), hp.tau))
    return state, {"loss/critic": critic_loss, "loss/actor": actor_loss}


# --- One update on sequences (recurrent networks) ----------------------------------------------------------

class Encoders(Protocol):
    """Per-step features of a recurrent encoder (or the observations themselves, for an MLP network)
    over a whole batch of sequences, and the gradient of a scalar with respect to the encoder's
    weights given its gradient with respect to those features (a vector-Jacobian product)."""

    def features(self, network: str, weights: list[np.ndarray], batch: dict[str, np.ndarray]) -> np.ndarray:
        """[B, T + 1, F] for `network` in ("actor", "critic") with encoder `weights`."""

    def weight_gradients(self, network: str, weights: list[np.ndarray], batch: dict[str, np.ndarray],
                         d_features: np.ndarray) -> list[np.ndarray]:
        """Gradients of sum(features * d_features) with respect to the encoder's weights."""


def sequence_update(state: State, batch: dict[str, np.ndarray], next_noise: np.ndarray, noise: np.ndarray,
                    hp: Hyper, encoders: Encoders) -> tuple[State, dict[str, float]]:
    """One gradient step on sequences: obs / prev_action [B, T + 1, ...] (step T's next observation
    last), action / reward / terminated / mask [B, T], warm [B]; noise and next_noise [B, T, A].

    Step t's critic and actor losses read the features of step t; its TD target reads those of step
    t + 1. Every loss is the mean over the steps whose mask is 1 (as if those steps were a batch of
    transitions), computed by a loop over the steps."""
    mask = batch["mask"]
    n_valid = float(mask.sum())
    b, steps = mask.shape
    alpha = math.exp(state.log_alpha)
    fa = encoders.features("actor", state.actor_encoder, batch)
    ft = encoders.features("target_critic", state.target_encoder, batch)
    fc = encoders.features("critic", state.critic_encoder, batch)
    f_dim = fc.shape[-1]

    # Critics: per step t, y_t from the features of step t + 1 (eqs. 2-3), Q from those of step t.
    g_critic = [np.zeros_like(p) for p in flat(state.q1) + flat(state.q2)]
    d_fc = np.zeros_like(fc)
    critic_loss = 0.0
    for t in range(steps):
        m = mask[:, t]
        nxt = actor_sample(state.actor, fa[:, t + 1], next_noise[:, t], hp.center, hp.half_range)
        qt1, _ = q_forward(state.target_q1, ft[:, t + 1], nxt.action)
        qt2, _ = q_forward(state.target_q2, ft[:, t + 1], nxt.action)
        y = hp.reward_scale * batch["reward"][:, t] + hp.gamma * (1.0 - batch["terminated"][:, t]) * (
            np.minimum(qt1, qt2) - alpha * nxt.log_prob)
        q1, c1 = q_forward(state.q1, fc[:, t], batch["action"][:, t])
        q2, c2 = q_forward(state.q2, fc[:, t], batch["action"][:, t])
        critic_loss += float(np.sum(m * 0.5 * ((q1 - y) ** 2 + (q2 - y) ** 2))) / n_valid
        g1, df1, _ = q_backward(state.q1, c1, m * (q1 - y) / n_valid, f_dim)
        g2, df2, _ = q_backward(state.q2, c2, m * (q2 - y) / n_valid, f_dim)
        g_critic = [a + g for a, g in zip(g_critic, flat(g1) + flat(g2), strict=True)]
        d_fc[:, t] = df1 + df2
    g_critic += encoders.weight_gradients("critic", state.critic_encoder, batch, d_fc)
    state = state.critic_step(g_critic)

    # Actor on the updated critics (their features too, but no gradient into the critic's encoder).
    fc = encoders.features("critic", state.critic_encoder, batch)
    g_actor = [np.zeros_like(p) for p in flat(state.actor)]
    d_fa = np.zeros_like(fa)
    actor_loss, alpha_grad = 0.0, 0.0
    for t in range(steps):
        m = mask[:, t]
        smp = actor_sample(state.actor, fa[:, t], noise[:, t], hp.center, hp.half_range)
        p1, pc1 = q_forward(state.q1, fc[:, t], smp.action)
        p2, pc2 = q_forward(state.q2, fc[:, t], smp.action)
        actor_loss += float(np.sum(m * (alpha * smp.log_prob - np.minimum(p1, p2)))) / n_valid
        d1, d2 = _clipped_double_q_grads(p1, p2, -m / n_valid)
        _, _, da1 = q_backward(state.q1, pc1, d1, f_dim)
        _, _, da2 = q_backward(state.q2, pc2, d2, f_dim)
        ga, d_fa[:, t] = actor_backward(state.actor, smp, da1 + da2, m * alpha / n_valid, hp.half_range)
        g_actor = [a + g for a, g in zip(g_actor, flat(ga), strict=True)]
        alpha_grad -= float(np.sum(m * (smp.log_prob + hp.target_entropy))) / n_valid  # eq. 18
    g_actor += encoders.weight_gradients("actor", state.actor_encoder, batch, d_fa)
    state = state.actor_step(g_actor)
    state = state.alpha_step(alpha_grad)
    state = state.with_target(polyak(state.target_params(), state.critic_params(), hp.tau))
    return state, {"loss/critic": critic_loss, "loss/actor": actor_loss}
