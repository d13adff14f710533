"""Trained Stable-Baselines3 models behind the :class:`~rec_env.agents.base.Policy` interface.

The wrappers read the model's own distribution (PPO, A2C, MaskablePPO) or Q-network (DQN); they
re-implement nothing of the algorithms. :class:`ScaledFeatures` scales raw observations to
[0, 1] *inside* the policy network, so a saved ``model.zip`` needs no normalisation statistics
at serving time.

Importing this module imports torch, Stable-Baselines3 and sb3-contrib.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from gymnasium import spaces
from sb3_contrib import MaskablePPO
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

from rec_env.agents.base import (
    POLICY_FILE,
    FeaturesLike,
    Policy,
    masked_argmax,
    read_policy_file,
    uniform_over_allowed,
)
from rec_env.scaling import InputScaling, Scaling, scale_observations

__all__ = [
    "MODEL_FILE",
    "POLICY_CLASSES",
    "SLATE_CONFIG_KEY",
    "A2CPolicy",
    "DQNPolicy",
    "MaskablePPOPolicy",
    "PPOPolicy",
    "SB3Policy",
    "ScaledFeatures",
    "Scaling",
]

MODEL_FILE = "model.zip"
"""Name of the SB3 archive next to ``policy.json``."""

SLATE_CONFIG_KEY = "slate"
"""Key of the slate decoder in a slate policy's ``policy.json`` configuration."""


class ScaledFeatures(BaseFeaturesExtractor):
    """Scale the raw observation to [0, 1], feature by feature, inside the network.

    ``"linear"``: ``x / high``. ``"log"``: ``log1p(x) / log1p(high)`` for the non-binary features
    whose upper bound exceeds 1 (days, counts, USD), ``x / high`` for the others. The log scale
    keeps the differences that matter for contact timing (7 against 14 days since the last
    message, 1 against 2 messages in 30 days) large after scaling, where ``x / 365`` would squeeze
    them to a few hundredths. The transform is
    :func:`~rec_env.agents.sb3.network.scale_observations` with the factors of
    :class:`~rec_env.agents.sb3.network.InputScaling`: the same code as the numpy copy of the
    network. The bounds and the log-scaled columns are registered buffers, so they travel in
    ``model.zip``.

    Args:
        observation_space: The environment's ``Box`` of raw features.
        scaling: ``"linear"`` or ``"log"``.
    """

    def __init__(self, observation_space: spaces.Box, scaling: Scaling = "log") -> None:
        n_features = int(np.prod(observation_space.shape))
        super().__init__(observation_space, features_dim=n_features)
        transform = InputScaling.from_bounds(observation_space.high, scaling)
        self.scaling = scaling
        self.register_buffer("high", torch.as_tensor(transform.high))
        self.register_buffer("log_mask", torch.as_tensor(transform.log_mask))
        # The factors are derived from the two saved buffers: not saved, refreshed on load.
        self.register_buffer("linear", torch.empty(0), persistent=False)
        self.register_buffer("logarithmic", torch.empty(0), persistent=False)
        self._refresh_factors()
        self.register_load_state_dict_post_hook(_refresh_after_load)

    def input_scaling(self) -> InputScaling:
        """The scaling as numpy factors, from the (saved) buffers."""
        return InputScaling.from_mask(self.high.cpu().numpy(), self.log_mask.cpu().numpy())

    def _refresh_factors(self) -> None:
        transform = self.input_scaling()
        device = self.high.device
        self.linear = torch.as_tensor(transform.linear, device=device)
        self.logarithmic = torch.as_tensor(transform.logarithmic, device=device)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        """``(n, n_features)`` raw features → ``(n, n_features)`` values in [0, 1]."""
        obs = observations.reshape(observations.shape[0], -1)
        return scale_observations(obs, self.linear, self.logarithmic, torch.log1p)


def _refresh_after_load(module: ScaledFeatures, _incompatible_keys: Any) -> None:
    """Load hook of :class:`ScaledFeatures` (a module-level function, so the module pickles)."""
    module._refresh_factors()


def _renormalise(probs: np.ndarray, action_masks: np.ndarray | None) -> np.ndarray:
    """Zero the masked entries and rescale each row to sum to 1 (uniform if nothing is left)."""
    probs = probs.astype(np.float64)
    if action_masks is not None:
        probs = np.where(action_masks, probs, 0.0)
    totals = probs.sum(axis=1, keepdims=True)
    empty = totals[:, 0] <= 0.0
    if empty.any():
        masks = None if action_masks is None else action_masks[empty]
        probs[empty] = uniform_over_allowed(int(empty.sum()), probs.shape[1], masks)
        totals[empty] = 1.0
    return probs / totals


class SB3Policy(Policy):
    """A trained SB3 model as a batched :class:`~rec_env.agents.base.Policy`.

    Use the subclass of the algorithm (:class:`PPOPolicy`, :class:`A2CPolicy`,
    :class:`MaskablePPOPolicy`, :class:`DQNPolicy`), or :meth:`from_model` to pick it from the
    model's type; :meth:`SB3Policy.load` reads any of them. A directory written by :meth:`save`
    holds ``policy.json`` (algorithm name and constructor arguments) and ``model.zip`` (SB3's
    archive; it unpickles code, so load only directories you trust).

    Args:
        model: The trained SB3 model (``None`` only while :meth:`load` fills it in).
        n_actions: Size of the action space (default: the model's).
        action_names: Names of the actions, for reports.
        random_state: Seed of the generator used by stochastic :meth:`predict`.
        action_channels: Channel of each action; with it the policy never chooses a channel
            the observation's consent flags refuse (see :class:`~rec_env.agents.base.Policy`).
        features: Feature space of the observations (default: the env's 16 features).
    """

    algorithm: ClassVar[str] = "sb3"
    model_class: ClassVar[type[BaseAlgorithm]] = BaseAlgorithm
    saved_files: ClassVar[tuple[str, ...]] = (POLICY_FILE, MODEL_FILE)

    def __init__(
        self,
        model: BaseAlgorithm | None = None,
        n_actions: int | None = None,
        action_names: tuple[str, ...] | list[str] | None = None,
        random_state: int | None = None,
        *,
        action_channels: tuple[str, ...] | list[str] | None = None,
        features: FeaturesLike = None,
    ) -> None:
        if n_actions is None:
            if model is None:
                raise ValueError("give a trained model or n_actions")
            n_actions = int(model.action_space.n)
        names = tuple(action_names) if action_names is not None else None
        super().__init__(
            n_actions, names, random_state, action_channels=action_channels, features=features
        )
        self._model = model
        if model is not None:
            self._check_model(model)

    @classmethod
    def from_model(cls, model: BaseAlgorithm, **kwargs: Any) -> SB3Policy:
        """Wrap ``model`` in the policy class of its algorithm.

        A model with ``Box`` actions (the slate world's scoring vectors) becomes a
        :class:`~rec_env.agents.sb3.slate.SlatePPOPolicy`, which needs ``slate`` (its
        decoder) among ``kwargs``.
        """
        if isinstance(model.action_space, spaces.Box):
            from rec_env.agents.sb3.slate import SLATE_POLICY_CLASSES

            for slate_class in SLATE_POLICY_CLASSES.values():
                if type(model) is slate_class.model_class:
                    return slate_class(model, **kwargs)
            raise TypeError(f"no slate policy for {type(model).__name__}")
        for policy_class in POLICY_CLASSES.values():
            if type(model) is policy_class.model_class:
                return policy_class(model, **kwargs)
        raise TypeError(f"no SB3Policy for {type(model).__name__}")

    @property
    def model(self) -> BaseAlgorithm:
        """The wrapped SB3 model."""
        if self._model is None:
            raise RuntimeError(f"{type(self).__name__} has no model: wrap one or load a policy")
        return self._model

    def _check_model(self, model: BaseAlgorithm) -> None:
        if type(model) is not self.model_class:
            expected = self.model_class.__name__
            raise TypeError(f"{type(self).__name__} wraps {expected}, got {type(model).__name__}")
        if int(model.action_space.n) != self.n_actions:
            raise ValueError(f"the model has {model.action_space.n} actions, not {self.n_actions}")

    def _obs_tensor(self, obs: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.atleast_2d(obs), dtype=torch.float32, device=self.model.device)

    # ------------------------------------------------------------------ persistence
    @classmethod
    def load(cls, directory: str | Path) -> SB3Policy:
        """Read a policy written by :meth:`save`; on ``SB3Policy`` itself, of any algorithm.

        Raises:
            ValueError: If the directory holds no SB3 policy (or another algorithm's).
        """
        payload = read_policy_file(directory)
        if cls is SB3Policy:
            algorithm = payload["algorithm"]
            if algorithm not in POLICY_CLASSES:
                raise ValueError(f"{directory}: holds a {algorithm!r} policy, not an SB3 one")
            return POLICY_CLASSES[algorithm].load(directory)
        if SLATE_CONFIG_KEY in payload["config"] and cls is POLICY_CLASSES.get(cls.algorithm):
            from rec_env.agents.sb3.slate import SLATE_POLICY_CLASSES

            if cls.algorithm not in SLATE_POLICY_CLASSES:
                raise ValueError(f"{directory}: no slate policy is a {cls.algorithm!r} one")
            return SLATE_POLICY_CLASSES[cls.algorithm].load(directory)
        policy = super().load(directory)
        assert isinstance(policy, SB3Policy)
        return policy

    def learned_arrays(self) -> dict[str, np.ndarray]:
        """The policy network's ``state_dict`` (parameters and saved buffers) as numpy arrays.

        Only what decides: the optimiser's state and the training metadata that ``model.zip``
        also holds (its start time among them) are left out.
        """
        state = self.model.policy.state_dict()
        return {name: tensor.detach().cpu().numpy() for name, tensor in state.items()}

    def _save_state(self, directory: Path) -> None:
        """Write the SB3 archive ``model.zip``."""
        self.model.save(directory / MODEL_FILE)

    def _load_state(self, directory: Path) -> None:
        """Read ``model.zip`` on the CPU."""
        path = directory / MODEL_FILE
        if not path.is_file():
            raise ValueError(f"{directory}: no {MODEL_FILE}")
        model = self.model_class.load(path, device="cpu")
        self._check_model(model)
        self._model = model


class _DistributionPolicy(SB3Policy):
    """Actor-critic models: the probabilities are the policy network's categorical distribution.

    Masks (the caller's combined with consent) are applied by zeroing masked probabilities and
    renormalising each row.
    """

    def _distribution_probs(self, obs: torch.Tensor, action_masks: np.ndarray | None) -> Any:
        return self.model.policy.get_distribution(obs).distribution.probs

    def _action_probabilities(self, obs: np.ndarray, masks: np.ndarray | None) -> np.ndarray:
        """``(n, n_actions)`` probabilities; masked entries 0, rows sum to 1."""
        with torch.no_grad():
            probs = self._distribution_probs(self._obs_tensor(obs), masks)
        return _renormalise(probs.cpu().numpy(), masks)


class PPOPolicy(_DistributionPolicy):
    """A trained SB3 :class:`~stable_baselines3.PPO` model."""

    algorithm: ClassVar[str] = "ppo"
    model_class: ClassVar[type[BaseAlgorithm]] = PPO


class A2CPolicy(_DistributionPolicy):
    """A trained SB3 :class:`~stable_baselines3.A2C` model."""

    algorithm: ClassVar[str] = "a2c"
    model_class: ClassVar[type[BaseAlgorithm]] = A2C


class MaskablePPOPolicy(_DistributionPolicy):
    """A trained sb3-contrib :class:`~sb3_contrib.MaskablePPO` model; masks go to the network."""

    algorithm: ClassVar[str] = "maskable_ppo"
    model_class: ClassVar[type[BaseAlgorithm]] = MaskablePPO

    def _distribution_probs(self, obs: torch.Tensor, action_masks: np.ndarray | None) -> Any:
        return self.model.policy.get_distribution(obs, action_masks=action_masks).distribution.probs


class DQNPolicy(SB3Policy):
    r"""A trained SB3 :class:`~stable_baselines3.DQN` model, ε-greedy over its Q-values.

    .. math::

        \pi(a \mid s) = (1 - \varepsilon)\,[a = \arg\max_{a' \in M(s)} Q(s, a')]
            + \varepsilon / |M(s)|\,[a \in M(s)]

    where ``M(s)`` is the set of allowed actions. Deterministic :meth:`predict` is the masked
    argmax of Q.

    Args:
        model: The trained DQN model.
        epsilon: Exploration rate of the probabilities and of stochastic :meth:`predict`
            (default: the model's ``exploration_final_eps``).
        n_actions: Size of the action space (default: the model's).
        action_names: Names of the actions.
        random_state: Seed of the generator used by stochastic :meth:`predict`.
        **kwargs: ``action_channels`` and ``features`` (see :class:`SB3Policy`).
    """

    algorithm: ClassVar[str] = "dqn"
    model_class: ClassVar[type[BaseAlgorithm]] = DQN

    def __init__(
        self,
        model: BaseAlgorithm | None = None,
        epsilon: float | None = None,
        n_actions: int | None = None,
        action_names: tuple[str, ...] | list[str] | None = None,
        random_state: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(model, n_actions, action_names, random_state, **kwargs)
        if epsilon is not None and not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
        self._epsilon = epsilon

    @property
    def epsilon(self) -> float:
        """The exploration rate ε."""
        if self._epsilon is not None:
            return self._epsilon
        return float(self.model.exploration_final_eps)

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, with ε fixed to its current value."""
        return {**super().get_config(), "epsilon": self.epsilon}

    def q_values(self, obs: np.ndarray) -> np.ndarray:
        """``(n, n_actions)`` float32 Q-values of the online network."""
        with torch.no_grad():
            return self.model.q_net(self._obs_tensor(obs)).cpu().numpy()

    def _action_probabilities(self, obs: np.ndarray, masks: np.ndarray | None) -> np.ndarray:
        """ε-greedy probabilities over the allowed actions (the class formula)."""
        greedy = masked_argmax(self.q_values(obs), masks)
        n = greedy.shape[0]
        probs = self.epsilon * uniform_over_allowed(n, self.n_actions, masks)
        probs[np.arange(n), greedy] += 1.0 - self.epsilon
        return probs

    def _predict(
        self, obs: np.ndarray, masks: np.ndarray | None, deterministic: bool
    ) -> np.ndarray:
        """The masked argmax of Q, or an ε-greedy sample."""
        if deterministic:
            return masked_argmax(self.q_values(obs), masks)
        return super()._predict(obs, masks, deterministic=False)


POLICY_CLASSES: dict[str, type[SB3Policy]] = {
    cls.algorithm: cls for cls in (PPOPolicy, A2CPolicy, DQNPolicy, MaskablePPOPolicy)
}
"""Algorithm name → policy class."""
