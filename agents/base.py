"""The one policy interface every agent follows (SB3 wrappers, bandits, baselines).

**Safe by default.** A policy knows the channel of each of its actions (``action_channels``,
e.g. :attr:`rec_env.catalog.ActionTable.channel_names`) and the feature space of its inputs
(``features``, the env's 16 features by default). When its inputs carry the consent flags,
:meth:`Policy.predict` and :meth:`Policy.action_probabilities` combine the caller's masks with
the consent masks read from the observations (:func:`rec_env.features.consent_masks`), so no
action ever goes to a channel without consent, whether or not the caller passes masks.
Subclasses implement :meth:`Policy._action_probabilities` (and optionally
:meth:`Policy._predict`) and always receive the combined masks.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from rec_env.feature_space import FeatureSpace
from rec_env.features import CHANNELS, consent_masks

__all__ = [
    "POLICY_FILE",
    "FeaturesLike",
    "OnlinePolicy",
    "Policy",
    "masked_argmax",
    "read_policy_file",
    "uniform_over_allowed",
]

FeaturesLike = FeatureSpace | Mapping[str, Any] | Sequence[str] | None
"""What ``features`` accepts: a space, its ``to_dict()``, names, or ``None`` (the env's)."""

NO_CHANNEL = "none"
"""Channel name of actions that send nothing (always allowed)."""

POLICY_FILE = "policy.json"
"""Name of a saved policy's configuration file (algorithm, constructor arguments, generator)."""


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


def _channel_indices(channels: Sequence[str], n_actions: int) -> np.ndarray:
    """Index of each action's channel in :data:`CHANNELS` (``len(CHANNELS)``: none).

    Raises:
        ValueError: If the length is not ``n_actions`` or a channel is unknown.
    """
    if len(channels) != n_actions:
        raise ValueError(f"action_channels needs one channel per action ({n_actions})")
    known = (*CHANNELS, NO_CHANNEL)
    unknown = sorted({c for c in channels if c not in known})
    if unknown:
        raise ValueError(f"unknown channels {unknown}; choose from {', '.join(known)}")
    return np.array([CHANNELS.index(c) if c in CHANNELS else len(CHANNELS) for c in channels])


def _columns(columns: list[int] | None) -> slice | list[int] | None:
    """``columns`` as a slice where they are contiguous (a view: cheaper for single rows)."""
    if columns is None or columns != list(range(columns[0], columns[0] + len(columns))):
        return columns
    return slice(columns[0], columns[0] + len(columns))


class Policy(ABC):
    """A batched decision rule: observations ``(n, n_features)`` in, actions ``(n,)`` out.

    Subclasses implement :meth:`_action_probabilities`; :meth:`predict` takes the most likely
    action or samples one with the policy's own generator. Every policy respects action masks
    and, when it knows its actions' channels and its inputs carry consent flags, consent: a
    masked action has probability 0.

    Args:
        n_actions: Size of the action space.
        action_names: Names of the actions, for reports.
        random_state: Seed of the policy's own generator (``self.random_``).
        action_channels: Channel of each action (``"email"``, ``"sms"``, ``"push"`` or
            ``"none"``); ``None`` if unknown (then only the caller's masks apply).
        features: Feature space of the observations (default: the env's 16 features). Inputs
            without consent columns get no consent mask.
    """

    algorithm: ClassVar[str] = "policy"
    saved_files: ClassVar[tuple[str, ...]] = (POLICY_FILE,)
    """The files :meth:`save` writes and :meth:`load` reads, by name inside the directory."""

    def __init__(
        self,
        n_actions: int,
        action_names: Sequence[str] | None = None,
        random_state: int | None = None,
        *,
        action_channels: Sequence[str] | None = None,
        features: FeaturesLike = None,
    ) -> None:
        if n_actions < 1:
            raise ValueError(f"n_actions must be at least 1, got {n_actions}")
        self.n_actions = int(n_actions)
        self.action_names = tuple(action_names or (f"action_{i}" for i in range(n_actions)))
        self.random_state = random_state
        self.random_ = np.random.default_rng(random_state)
        self.features = FeatureSpace.coerce(features)
        self.action_channels = None if action_channels is None else tuple(action_channels)
        self._channel_index = (
            None
            if self.action_channels is None
            else _channel_indices(self.action_channels, self.n_actions)
        )
        self._consent_columns = _columns(self.features.consent_columns)
        self._single_masks: dict[bytes, np.ndarray] = {}

    # ------------------------------------------------------------------ masks
    def consent_masks(self, obs: np.ndarray) -> np.ndarray | None:
        """``(n, n_actions)`` consent masks read from ``obs``, or ``None`` if there are none.

        ``None`` when the policy does not know its actions' channels or its feature space has
        no consent columns.

        Raises:
            ValueError: If ``obs`` does not have the feature space's columns.
        """
        if self._channel_index is None or self._consent_columns is None:
            return None
        obs = self.features.check(obs)
        consent = obs[:, self._consent_columns] > 0.5
        if consent.shape[0] != 1:
            return consent_masks(consent, self._channel_index)
        # One customer at a time (serving, single-stream learning): small numpy calls dominate,
        # so remember the mask of each of the few consent combinations seen.
        key = consent.tobytes()
        mask = self._single_masks.get(key)
        if mask is None:
            mask = self._single_masks[key] = consent_masks(consent, self._channel_index)
        return mask.copy()

    def allowed_actions(
        self, obs: np.ndarray, action_masks: np.ndarray | None = None
    ) -> np.ndarray | None:
        """The caller's masks combined with the consent masks (``None``: all allowed).

        Raises:
            ValueError: If the masks do not have shape ``(n, n_actions)``.
        """
        n = obs.shape[0]
        masks = None
        if action_masks is not None:
            masks = np.asarray(action_masks, dtype=bool)
            if masks.ndim == 1:
                masks = masks[None, :]
            if masks.shape != (n, self.n_actions):
                expected = (n, self.n_actions)
                raise ValueError(f"action_masks must have shape {expected}, got {masks.shape}")
        consent = self.consent_masks(obs)
        if consent is None:
            return masks
        return consent if masks is None else masks & consent

    @property
    def supported_actions(self) -> np.ndarray | None:
        """``(n_actions,)`` bool: the actions this policy knows how to choose (``None``: all).

        A policy learned on some of a catalog's actions gives the others probability 0; the
        decision service keeps its exploration to these too.
        """
        return None

    # ------------------------------------------------------------------ decisions
    def action_probabilities(
        self, obs: np.ndarray, action_masks: np.ndarray | None = None
    ) -> np.ndarray:
        """``(n, n_actions)`` probability of each action; rows sum to 1, masked entries are 0.

        Args:
            obs: ``(n, n_features)`` observations (one customer may be 1-D).
            action_masks: ``(n, n_actions)`` allowed actions, combined with consent.
        """
        obs = _as_batch(obs)
        return self._action_probabilities(obs, self.allowed_actions(obs, action_masks))

    def predict(
        self,
        obs: np.ndarray,
        action_masks: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> np.ndarray:
        """Actions ``(n,)``: the most likely one, or one sampled from the probabilities.

        Args:
            obs: ``(n, n_features)`` observations (one customer may be 1-D).
            action_masks: ``(n, n_actions)`` allowed actions, combined with consent.
            deterministic: Take the most likely action instead of sampling.
        """
        obs = _as_batch(obs)
        return self._predict(obs, self.allowed_actions(obs, action_masks), deterministic)

    @abstractmethod
    def _action_probabilities(self, obs: np.ndarray, masks: np.ndarray | None) -> np.ndarray:
        """``(n, n_actions)`` probabilities for 2-D ``obs`` and combined masks (``None``: all)."""

    def _predict(
        self, obs: np.ndarray, masks: np.ndarray | None, deterministic: bool
    ) -> np.ndarray:
        """Actions ``(n,)`` for 2-D ``obs`` and combined masks; by default from probabilities."""
        probs = self._action_probabilities(obs, masks)
        if deterministic:
            return np.argmax(probs, axis=1)
        cumulative = probs.cumsum(axis=1)
        draws = self.random_.random((probs.shape[0], 1)) * cumulative[:, -1:]
        return np.minimum((draws > cumulative).sum(axis=1), self.n_actions - 1)

    # ------------------------------------------------------------------ persistence
    def get_config(self) -> dict[str, Any]:
        """JSON-serialisable constructor arguments (used by :meth:`save`)."""
        return {
            "n_actions": self.n_actions,
            "action_names": list(self.action_names),
            "random_state": self.random_state,
            "action_channels": None if self.action_channels is None else list(self.action_channels),
            "features": self.features.to_dict(),
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

    def learned_arrays(self) -> dict[str, np.ndarray]:
        """The learned parameters by name (none for a stateless policy)."""
        return {}

    def weights_sha256(self) -> str:
        """Hex SHA-256 of what the policy decides with: its configuration and learned arrays.

        Hashed in order: the algorithm and :meth:`get_config` less ``random_state`` (the seed
        of sampling, not a weight) as canonical JSON, then each of :meth:`learned_arrays` in
        sorted name order as its name, dtype, shape and bytes, every part length-prefixed.
        Unlike a hash of the saved files, it is equal for bit-identical trainings (SB3 stores
        the training's start time in ``model.zip``).
        """
        digest = hashlib.sha256()
        config = {k: v for k, v in self.get_config().items() if k != "random_state"}
        _digest_part(digest, {"algorithm": self.algorithm, "config": config})
        arrays = self.learned_arrays()
        for name in sorted(arrays):
            array = np.ascontiguousarray(arrays[name])
            _digest_part(digest, [name, array.dtype.str, list(array.shape)], array.tobytes())
        return digest.hexdigest()

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


def _digest_part(digest: Any, header: Any, payload: bytes = b"") -> None:
    """Feed ``header`` (as canonical JSON) and ``payload`` to ``digest``, each length-prefixed."""
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), default=_json_scalar)
    for part in (text.encode("utf-8"), payload):
        digest.update(len(part).to_bytes(8, "little"))
        digest.update(part)


def _json_scalar(value: Any) -> Any:
    """A numpy scalar or array as its Python value (for ``json.dumps``)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _as_batch(obs: np.ndarray) -> np.ndarray:
    """``obs`` as a 2-D array (one customer may be 1-D)."""
    obs = np.asarray(obs)
    return obs[None, :] if obs.ndim == 1 else obs


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
