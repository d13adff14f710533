"""Hyperparameters as data: the pydantic schemas of the SB3 algorithms' YAML files.

``agents/sb3/hyperparams/<algorithm>.yaml`` holds one tuned set per env id, in the layout of
rl-baselines3-zoo (``hyperparams/ppo.yml``), validated here with pydantic.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    RootModel,
    ValidationError,
    model_validator,
)
from stable_baselines3.common.utils import LinearSchedule

from rec_env import ENV_ID
from rec_env.agents.registry import SB3_ALGORITHMS, check_algorithm
from rec_env.agents.sb3.policy import ScaledFeatures, Scaling
from rec_env.config import load_model
from rec_env.errors import ConfigError

__all__ = [
    "HYPERPARAMETER_SCHEMAS",
    "A2CHyperparams",
    "DQNHyperparams",
    "Hyperparams",
    "PPOHyperparams",
    "PolicyKwargs",
    "hyperparams_file",
    "load_hyperparams",
    "resolve_hyperparams",
]

_ACTIVATIONS: dict[str, type[torch.nn.Module]] = {
    "tanh": torch.nn.Tanh,
    "relu": torch.nn.ReLU,
    "elu": torch.nn.ELU,
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PolicyKwargs(_Strict):
    """The network: layer sizes, activation, and how observations are scaled to [0, 1].

    Attributes:
        net_arch: Hidden layer sizes, the same for the actor and the critic networks (a list), or
            their own (``{pi: [...], vf: [...]}``; actor-critic algorithms only).
        activation_fn: ``"tanh"``, ``"relu"`` or ``"elu"``.
        ortho_init: Orthogonal initialisation (actor-critic algorithms only).
        observation_scaling: ``"log"`` or ``"linear"``, see
            :class:`~rec_env.agents.sb3.policy.ScaledFeatures`.
        action_head: ``"dense"``: SB3's actor head, one row of weights per action.
            ``"products"``: the item world's logits factored through the product embeddings
            (:class:`~rec_env.agents.sb3.heads.ProductHead`; PPO, A2C and MaskablePPO).
    """

    net_arch: list[PositiveInt] | dict[Literal["pi", "vf"], list[PositiveInt]] = [64, 64]
    activation_fn: Literal["tanh", "relu", "elu"] = "tanh"
    ortho_init: bool | None = None
    observation_scaling: Scaling = "log"
    action_head: Literal["dense", "products"] = "dense"

    def to_sb3(self) -> dict[str, Any]:
        """The ``policy_kwargs`` SB3 expects (the action head is the policy class's choice)."""
        kwargs: dict[str, Any] = {
            "net_arch": self.net_arch,
            "activation_fn": _ACTIVATIONS[self.activation_fn],
            "features_extractor_class": ScaledFeatures,
            "features_extractor_kwargs": {"scaling": self.observation_scaling},
        }
        if self.ortho_init is not None:
            kwargs["ortho_init"] = self.ortho_init
        return kwargs


class Hyperparams(_Strict):
    """What every algorithm's file holds besides the algorithm's own keyword arguments.

    Attributes:
        n_envs: Customers simulated in parallel.
        n_timesteps: Default training budget in customer-steps.
        normalize_reward: Scale rewards by a running estimate of the return's standard
            deviation (SB3 ``VecNormalize(norm_obs=False)``), during training only.
        training_reward: ``"sampled"``: the env's reward. ``"expected"``: the simulator's exact
            expected immediate reward of the chosen action, ``E[r | s, a]``
            (``expected_rewards()``), in its place. The expected return of every policy is the
            same, its variance far lower (a purchase is a rare ~$50 event); training uses the
            simulator's oracle access, the policy still sees the observations only.
        learning_rate_schedule: ``"constant"``, or ``"linear"`` decay to 0 over the budget.
        policy_kwargs: The network.
        learning_rate: Optimiser step size.
        gamma: Discount factor.
    """

    n_envs: PositiveInt
    n_timesteps: PositiveInt
    normalize_reward: bool = True
    training_reward: Literal["sampled", "expected"] = "sampled"
    learning_rate_schedule: Literal["constant", "linear"] = "constant"
    policy_kwargs: PolicyKwargs = PolicyKwargs()
    learning_rate: PositiveFloat
    gamma: float = Field(0.99, gt=0.0, le=1.0)

    _NOT_SB3: ClassVar[tuple[str, ...]] = (
        "n_envs",
        "n_timesteps",
        "normalize_reward",
        "training_reward",
        "learning_rate_schedule",
        "policy_kwargs",
    )

    def sb3_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the SB3 algorithm's constructor."""
        kwargs = self.model_dump(exclude=set(self._NOT_SB3))
        if self.learning_rate_schedule == "linear":
            kwargs["learning_rate"] = LinearSchedule(self.learning_rate, 0.0, 1.0)
        kwargs["policy_kwargs"] = self.policy_kwargs.to_sb3()
        return kwargs


class PPOHyperparams(Hyperparams):
    """PPO and MaskablePPO (see :class:`stable_baselines3.PPO` for the meaning of each)."""

    n_steps: PositiveInt
    batch_size: PositiveInt
    n_epochs: PositiveInt = 10
    gae_lambda: float = Field(0.95, ge=0.0, le=1.0)
    clip_range: PositiveFloat = 0.2
    normalize_advantage: bool = True
    ent_coef: float = Field(0.0, ge=0.0)
    vf_coef: float = Field(0.5, ge=0.0)
    max_grad_norm: PositiveFloat = 0.5
    target_kl: PositiveFloat | None = None

    @model_validator(mode="after")
    def _batch_fits_rollout(self) -> PPOHyperparams:
        if self.batch_size > self.n_steps * self.n_envs:
            raise ValueError("batch_size must be at most n_steps * n_envs")
        return self


class A2CHyperparams(Hyperparams):
    """A2C (see :class:`stable_baselines3.A2C`)."""

    n_steps: PositiveInt
    gae_lambda: float = Field(1.0, ge=0.0, le=1.0)
    ent_coef: float = Field(0.0, ge=0.0)
    vf_coef: float = Field(0.5, ge=0.0)
    max_grad_norm: PositiveFloat = 0.5
    use_rms_prop: bool = True
    normalize_advantage: bool = False


class DQNHyperparams(Hyperparams):
    """DQN (see :class:`stable_baselines3.DQN`); ``net_arch`` must be a list."""

    buffer_size: PositiveInt
    learning_starts: int = Field(0, ge=0)
    batch_size: PositiveInt
    tau: float = Field(1.0, gt=0.0, le=1.0)
    train_freq: PositiveInt = 1
    gradient_steps: PositiveInt = 1
    target_update_interval: PositiveInt = 10_000
    exploration_fraction: float = Field(0.1, gt=0.0, le=1.0)
    exploration_initial_eps: float = Field(1.0, ge=0.0, le=1.0)
    exploration_final_eps: float = Field(0.05, ge=0.0, le=1.0)
    max_grad_norm: PositiveFloat = 10.0

    @model_validator(mode="after")
    def _plain_network(self) -> DQNHyperparams:
        if not isinstance(self.policy_kwargs.net_arch, list):
            raise ValueError("policy_kwargs.net_arch must be a list of layer sizes for DQN")
        if self.policy_kwargs.ortho_init is not None:
            raise ValueError("policy_kwargs.ortho_init does not apply to DQN")
        if self.policy_kwargs.action_head != "dense":
            raise ValueError("policy_kwargs.action_head must be dense for DQN (no actor head)")
        return self


HYPERPARAMETER_SCHEMAS: dict[str, type[Hyperparams]] = {
    "ppo": PPOHyperparams,
    "a2c": A2CHyperparams,
    "dqn": DQNHyperparams,
    "maskable_ppo": PPOHyperparams,
}
"""Algorithm name → schema of its hyperparameter file."""


def hyperparams_file(algorithm: str) -> Path:
    """Path of the shipped hyperparameter file of ``algorithm``."""
    name = f"{check_algorithm(algorithm, SB3_ALGORITHMS)}.yaml"
    return Path(str(resources.files("rec_env.agents.sb3").joinpath("hyperparams", name)))


def _validation_message(source: str, error: ValidationError) -> str:
    problems = [
        f"{'.'.join(str(part) for part in item['loc']) or '<root>'}: {item['msg']}"
        for item in error.errors()
    ]
    return f"{source}: " + "; ".join(problems)


def _merge_overrides(
    algorithm: str, base: dict[str, Any], overrides: dict[str, Any]
) -> dict[str, Any]:
    schema = HYPERPARAMETER_SCHEMAS[algorithm]
    nested: dict[str, Any] = {}
    for key, value in overrides.items():
        head, dot, rest = key.partition(".")
        if dot or (key == "policy_kwargs" and isinstance(value, dict)):
            nested.setdefault(head, {}).update({rest: value} if dot else value)
        else:
            nested[key] = value
    unknown = sorted(set(nested) - set(schema.model_fields))
    if unknown:
        known = ", ".join(sorted(schema.model_fields))
        raise ConfigError(
            f"overrides: unknown hyperparameter(s) {', '.join(map(repr, unknown))} for "
            f"{algorithm} (known: {known})"
        )
    merged = {**base, **nested}
    if isinstance(nested.get("policy_kwargs"), dict):
        merged["policy_kwargs"] = {**base.get("policy_kwargs", {}), **nested["policy_kwargs"]}
    return merged


def resolve_hyperparams(
    algorithm: str,
    env_id: str = ENV_ID,
    overrides: dict[str, Any] | None = None,
    path: str | Path | None = None,
) -> Hyperparams:
    """Like :func:`load_hyperparams`, but the validated pydantic model itself."""
    algorithm = check_algorithm(algorithm, SB3_ALGORITHMS)
    schema = HYPERPARAMETER_SCHEMAS[algorithm]
    file = Path(path) if path is not None else hyperparams_file(algorithm)
    sections = load_model(file, RootModel[dict[str, schema]]).root  # type: ignore[valid-type]
    if env_id not in sections:
        raise ConfigError(f"{file}: no hyperparameters for {env_id!r} (has: {', '.join(sections)})")
    params = sections[env_id]
    if not overrides:
        return params
    merged = _merge_overrides(algorithm, params.model_dump(exclude_unset=True), overrides)
    try:
        return schema.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_validation_message(f"overrides of {file}", exc)) from None


def load_hyperparams(
    algorithm: str,
    env_id: str = ENV_ID,
    overrides: dict[str, Any] | None = None,
    path: str | Path | None = None,
) -> dict[str, Any]:
    """The validated hyperparameters of ``algorithm`` for ``env_id``, with overrides applied.

    Args:
        algorithm: ``"ppo"``, ``"a2c"``, ``"dqn"`` or ``"maskable_ppo"``.
        env_id: Section of the file to read.
        overrides: Values replacing the file's, e.g. ``{"n_timesteps": 50_000,
            "learning_rate": 1e-3}``. Network settings are merged key by key, given either as
            a ``policy_kwargs`` mapping or as dotted keys (``"policy_kwargs.net_arch"``).
        path: A hyperparameter file to read instead of the shipped one.

    Returns:
        Every hyperparameter (defaults filled in) as a JSON-serialisable dict.

    Raises:
        ConfigError: If the file is invalid or lacks ``env_id`` (the message names the file and
            the field), or an override is unknown or invalid.
        ValueError: If ``algorithm`` is not an SB3 algorithm.
    """
    return resolve_hyperparams(algorithm, env_id, overrides, path).model_dump(mode="json")
