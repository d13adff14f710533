"""The one policy interface every agent follows (SB3 wrappers, bandits, baselines)."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

__all__ = [
    "POLICY_FILE",
    "OnlinePolicy",
    "Policy",
    "masked_argmax",
    "read_policy_file",
    "uniform_over_allowed",
]


def masked_argmax(scores: np.ndarray, action_masks: np.ndarray | None) -> np.ndarray:
    """Row-wise argmax of ``scores`` ``(n, A)`` over allowed actions only."""
    if action_masks is None:
        return np.argmax(scores, axis=1)
    return np.argmax(np.where(action_masks, scores, -np.inf), axis=1)


def uniform_over_allowed(n: int, n_actions: int, action_masks: np.ndarray | None) -> np.ndarray:
    """``(n, A)`` probabilities, uniform over the allowed actions of each row."""
    if action_masks is None:
        return np.full((n, n_actions), 1.0 / n_actions)
    allowed = action_masks.astype(np.float64)
    return allowed / allowed.sum(axis=1, keepdims=True)


class Policy(ABC):
    """A batched decision rule: observations ``(n, n_features)`` in, actions ``(n,)`` out.

    Subclasses implement :meth:`action_probabilities`; :meth:`predict` takes the most likely
    action or samples one with the policy's own generator. Every policy respects action masks:
    a masked action has probability 0.

    Args:
        n_actions: Size of the action space.
        action_names: Names of the actions, for reports.
        random_state: Seed of the policy's own generator (``self.random_``).
    """

    algorithm: ClassVar[str] = "policy"

    def __init__(
        self,
        n_actions: int,
        action_names: tuple[str, ...] | None = None,
        random_state: int | None = None,
    ) -> None:
        if n_actions < 1:
            raise ValueError(f"n_actions must be at least 1, got {n_actions}")
        self.n_actions = int(n_actions)
        self.action_names = tuple(action_names or (f"action_{i}" for i in range(n_actions)))
        self.random_state = random_state
        self.random_ = np.random.default_rng(random_state)

    @abstractmethod
    def action_probabilities(
        self, obs: np.ndarray, action_masks: np.ndarray | None = None
    ) -> np.ndarray:
        """``(n, n_actions)`` probability of each action; rows sum to 1, masked entries are 0."""

    def predict(
        self,
        obs: np.ndarray,
        action_masks: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> np.ndarray:
        """Actions ``(n,)``: the most likely one, or one sampled from the probabilities."""
        probs = self.action_probabilities(np.atleast_2d(obs), action_masks)
        if deterministic:
            return np.argmax(probs, axis=1)
        cumulative = probs.cumsum(axis=1)
        draws = self.random_.random((probs.shape[0], 1)) * cumulative[:, -1:]
        return np.minimum((draws > cumulative).sum(axis=1), self.n_actions - 1)

    def get_config(self) -> dict[str, Any]:
        """JSON-serialisable constructor arguments (used by :meth:`save`)."""
        return {
            "n_actions": self.n_actions,
            "action_names": list(self.action_names),
            "random_state": self.random_state,
        }

    def save(self, directory: str | Path) -> None:
        """Write the policy into ``directory`` as ``policy.json`` (and state files; no pickle).

        Subclasses with learned state add files next to ``policy.json`` by overriding
        :meth:`_save_state` / :meth:`_load_state`.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        payload = {
            "algorithm": self.algorithm,
            "config": self.get_config(),
            "generator_state": self.random_.bit_generator.state,
        }
        (directory / POLICY_FILE).write_text(json.dumps(payload, indent=2), encoding="utf-8")
        self._save_state(directory)

    @classmethod
    def load(cls, directory: str | Path) -> Policy:
        """Read a policy written by :meth:`save`.

        Raises:
            ValueError: If the directory holds another algorithm or no policy.
        """
        directory = Path(directory)
        payload = read_policy_file(directory)
        if payload["algorithm"] != cls.algorithm:
            found = payload["algorithm"]
            raise ValueError(f"{directory}: holds a {found!r} policy, not a {cls.algorithm!r}")
        policy = cls(**payload["config"])
        if "generator_state" in payload:  # continue the random stream where it stopped
            policy.random_.bit_generator.state = payload["generator_state"]
        policy._load_state(directory)
        return policy

    def _save_state(self, directory: Path) -> None:
        """Write learned state (nothing for stateless policies)."""
        return None

    def _load_state(self, directory: Path) -> None:
        """Read learned state (nothing for stateless policies)."""
        return None


class OnlinePolicy(Policy):
    """A policy that learns from every decision's reward (the bandits)."""

    @abstractmethod
    def update(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> None:
        """Learn from a batch: observations ``(n, F)``, actions ``(n,)``, rewards ``(n,)``."""


POLICY_FILE = "policy.json"


def read_policy_file(directory: str | Path) -> dict[str, Any]:
    """The parsed ``policy.json`` of a saved policy.

    Raises:
        ValueError: If it is missing or malformed.
    """
    path = Path(directory) / POLICY_FILE
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{directory}: no {POLICY_FILE} (not a saved policy)") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(payload, dict) or "algorithm" not in payload or "config" not in payload:
        raise ValueError(f"{path}: expected keys 'algorithm' and 'config'")
    return payload
