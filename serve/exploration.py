r"""Exploration around a policy's probabilities, and sampling of the served actions.

A decision log is useful for off-policy evaluation only if every action a new policy might take
had a positive probability of being served (and that probability, the *propensity*, is logged).
A deterministic policy logs propensity 1 for its choice and 0 for everything else, so the
service mixes exploration into the policy's probabilities ``p`` over the allowed actions
``M`` (masked actions always keep probability 0):

* ``epsilon`` (default, ε = 0.05): :math:`q(a) = (1 - \varepsilon)\,p(a)
  + \varepsilon / |M|`, so every allowed action gets at least :math:`\varepsilon / |M|`.
* ``temperature``: a softmax of the log-probabilities at temperature :math:`\tau`,
  :math:`q(a) \propto \exp(\log \max(p(a), p_{\min}) / \tau) = \max(p(a), p_{\min})^{1/\tau}`.
  :math:`\tau = 1` keeps ``p``, :math:`\tau > 1` flattens it, :math:`\tau < 1` sharpens it.
  Probabilities are floored at :data:`MIN_PROBABILITY` before the logarithm, so a deterministic
  (one-hot) policy such as LinUCB or UCB1 still explores: at :math:`\tau = 1` each other allowed
  action gets about :math:`10^{-3}`, at :math:`\tau = 2` about :math:`0.03` relative weight.
  ε-mixing gives more predictable propensities for one-hot policies.
* ``none``: serve ``p`` as it is (a deterministic policy then logs propensity 1).

The served action is drawn from ``q`` with one uniform number per customer from a seeded
``np.random.Generator``, and ``q`` of that action is its propensity. An :class:`ActionSampler`
with a fixed seed continues its stream across restarts: the decision log counts the uniforms
drawn from each seed, and a new session skips them instead of drawing them again.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import numpy as np

from rec_env.serve.settings import ExplorationKind

__all__ = [
    "MIN_PROBABILITY",
    "ActionSampler",
    "Exploration",
    "actions_for_uniforms",
    "sample_actions",
]

MIN_PROBABILITY = 1e-3
"""Floor of the policy's probabilities under temperature exploration."""


@dataclass(frozen=True)
class Exploration:
    """How served actions explore around the policy.

    Args:
        kind: ``"epsilon"``, ``"temperature"`` or ``"none"``.
        epsilon: Mixing weight of the uniform distribution over allowed actions, in [0, 1].
        temperature: Softmax temperature, > 0.
    """

    kind: ExplorationKind = "epsilon"
    epsilon: float = 0.05
    temperature: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in ("epsilon", "temperature", "none"):
            raise ValueError(f"exploration must be epsilon, temperature or none, not {self.kind!r}")
        if not 0.0 <= self.epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {self.epsilon}")
        if not self.temperature > 0.0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")

    def apply(self, probabilities: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """The serving probabilities ``q`` ``(n, A)`` of the policy's ``p`` ``(n, A)``.

        Args:
            probabilities: The policy's probabilities; rows sum to 1 over allowed actions.
            masks: ``(n, A)`` bool, True where an action is allowed (at least one per row).

        Returns:
            Float64 probabilities, exactly 0 where masked, rows summing to 1.
        """
        p = np.where(masks, probabilities, 0.0).astype(np.float64, copy=False)
        if self.kind == "epsilon" and self.epsilon > 0.0:
            uniform = masks / masks.sum(axis=1, keepdims=True)
            p = (1.0 - self.epsilon) * p + self.epsilon * uniform
        elif self.kind == "temperature":
            weights = np.maximum(p, MIN_PROBABILITY) ** (1.0 / self.temperature)
            p = np.where(masks, weights, 0.0)
        return p / p.sum(axis=1, keepdims=True)

    def as_dict(self) -> dict[str, float | str]:
        """The settings that matter for ``kind`` (for ``GET /v1/model``)."""
        if self.kind == "epsilon":
            return {"kind": self.kind, "epsilon": self.epsilon}
        if self.kind == "temperature":
            return {"kind": self.kind, "temperature": self.temperature}
        return {"kind": self.kind}


def sample_actions(probabilities: np.ndarray, random: np.random.Generator) -> np.ndarray:
    """One action per row drawn from ``probabilities`` ``(n, A)``; never a zero-probability one.

    Draws ``u ~ U[0, 1)`` per row (:func:`actions_for_uniforms`).
    """
    return actions_for_uniforms(probabilities, random.random(probabilities.shape[0]))


def actions_for_uniforms(probabilities: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """Per row, the first action whose cumulative probability exceeds ``u`` times the row total.

    Args:
        probabilities: ``(n, A)`` non-negative, at least one positive per row.
        uniforms: ``(n,)`` numbers in [0, 1), one per row.
    """
    cumulative = np.cumsum(probabilities, axis=1)
    draws = uniforms * cumulative[:, -1]
    actions = (cumulative <= draws[:, None]).sum(axis=1)
    # a product rounded up to the row total must not land on trailing zero-probability actions
    last_positive = probabilities.shape[1] - 1 - np.argmax(probabilities[:, ::-1] > 0.0, axis=1)
    return np.minimum(actions, last_positive)


class ActionSampler:
    """Draw served actions from one seeded stream, one uniform number per customer.

    The stream is a PCG64 generator; a uniform in [0, 1) takes exactly one of its 64-bit
    outputs, so skipping ``skip`` uniforms is :meth:`numpy.random.PCG64.advance` (O(log skip)).

    Args:
        seed: Seed of the stream (None: fresh OS entropy).
        skip: Uniforms already drawn from this seed's stream by earlier sessions; the stream
            continues after them instead of repeating them.

    Attributes:
        seed: The seed (given or drawn), reported so that a session can be replayed.
        random: The generator.
    """

    def __init__(self, seed: int | None = None, skip: int = 0) -> None:
        self.seed = seed if seed is not None else secrets.randbits(63)
        self.random = np.random.Generator(np.random.PCG64(self.seed))
        if skip:
            self.random.bit_generator.advance(skip)

    def sample(self, probabilities: np.ndarray) -> np.ndarray:
        """One action per row of ``probabilities`` ``(n, A)`` (:func:`sample_actions`)."""
        return sample_actions(probabilities, self.random)
