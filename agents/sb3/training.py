"""Train SB3 agents on the batched VecEnv with the hyperparameters of the YAML files.

:func:`train_sb3` trains on :func:`rec_env.make_vec_env` in any world (strategy, item or slate:
``EnvSettings.world``, with the hyperparameters of its env id), evaluates the policy every so
often on a fixed cohort (the learning curve, :class:`LearningCurveCallback`) and returns it
wrapped as an :class:`~rec_env.agents.sb3.policy.SB3Policy` that is consent-safe on the world's
observations (a :class:`~rec_env.agents.sb3.slate.SlatePPOPolicy` in the slate world). Rewards
can be normalised, or replaced by their expectation (:class:`ExpectedRewards`), for training
only: the saved model needs neither.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.utils import set_random_seed
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper, VecNormalize
from stable_baselines3.common.vec_env.base_vec_env import VecEnvObs, VecEnvStepReturn

from rec_env import make_vec_env
from rec_env.agents.evaluation.evaluate import EVAL_SEED, evaluate
from rec_env.agents.registry import SB3_ALGORITHMS, check_algorithm
from rec_env.agents.runs import world_env_id
from rec_env.agents.sb3.heads import PRODUCT_POLICY_CLASSES
from rec_env.agents.sb3.policy import POLICY_CLASSES, SB3Policy
from rec_env.agents.sb3.schemas import Hyperparams, resolve_hyperparams
from rec_env.agents.sb3.slate import SLATE_POLICY_CLASSES, SlateDecoder
from rec_env.settings import EnvSettings

__all__ = [
    "ExpectedRewards",
    "LearningCurveCallback",
    "check_world",
    "policy_arguments",
    "train_sb3",
]


def policy_arguments(model: Any) -> dict[str, Any]:
    """The arguments that make a policy consent-safe on ``model``'s world.

    Action names and channels, the feature space of the observations in the item worlds
    (``model.feature_space``: ``16 + 3C`` features with their bounds; the strategy world's 16
    are the policies' default) and, in the slate world, the
    :class:`~rec_env.agents.sb3.slate.SlateDecoder`.

    Args:
        model: A customer model (``CustomerModel``, ``ItemModel`` or ``SlateModel``).
    """
    arguments: dict[str, Any] = {
        "action_names": tuple(model.actions.names),
        "action_channels": tuple(model.actions.channel_names),
    }
    feature_space = getattr(model, "feature_space", None)  # item worlds: 16 + 3C features
    if feature_space is not None:
        arguments["features"] = feature_space
    if hasattr(model, "decode"):  # the slate world's scoring vectors
        arguments["slate"] = SlateDecoder.from_model(model)
    return arguments


class LearningCurveCallback(BaseCallback):
    """Evaluate the policy every ``eval_every`` timesteps on a fixed cohort (EvalCallback-style).

    Each evaluation runs the current policy, deterministic and frozen, over full customer
    lifetimes with :func:`~rec_env.agents.evaluation.evaluate` and appends a row ``{timesteps,
    wall_time_s, profit_per_customer, profit_ci95}`` to :attr:`curve`; ``wall_time_s`` counts
    training time only (evaluations excluded). The first row is the untrained policy, the last
    the trained one. The parameters of the best evaluation are kept in :attr:`best_state`.

    Args:
        settings: The simulated world to evaluate in.
        eval_every: Timesteps between evaluations (``0``: only before and after training).
        eval_customers: Cohort size.
        eval_seed: Cohort seed (the same cohort every time).
        action_names: Action names for the wrapped policy.
        verbose: ``1`` prints every evaluation.
        policy_kwargs: Further arguments of the wrapped policy (:func:`policy_arguments`).
    """

    def __init__(
        self,
        settings: EnvSettings,
        eval_every: int,
        eval_customers: int,
        eval_seed: int = EVAL_SEED,
        action_names: tuple[str, ...] | None = None,
        verbose: int = 0,
        policy_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(verbose)
        if eval_every < 0 or eval_customers < 1:
            raise ValueError("eval_every must be >= 0 and eval_customers >= 1")
        self.settings = settings
        self.eval_every = int(eval_every)
        self.eval_customers = int(eval_customers)
        self.eval_seed = int(eval_seed)
        self.policy_kwargs = {**(policy_kwargs or {}), "action_names": action_names}
        self.curve: list[dict[str, float]] = []
        self.best_state: dict[str, torch.Tensor] | None = None
        self._best = -float("inf")
        self._next_eval = 0
        self._start = 0.0
        self._eval_seconds = 0.0

    def _on_training_start(self) -> None:
        self._start = time.perf_counter()
        self._next_eval = self.num_timesteps + self.eval_every
        self._evaluate()

    def _on_step(self) -> bool:
        if self.eval_every and self.num_timesteps >= self._next_eval:
            self._evaluate()
            while self._next_eval <= self.num_timesteps:
                self._next_eval += self.eval_every
        return True

    def _on_training_end(self) -> None:
        if not self.curve or self.curve[-1]["timesteps"] < self.num_timesteps:
            self._evaluate()

    def _evaluate(self) -> None:
        started = time.perf_counter()
        policy = SB3Policy.from_model(self.model, **self.policy_kwargs)
        result = evaluate(
            policy, self.settings, self.eval_customers, self.eval_seed, compare_to_oracle=False
        )
        profit = result.kpis["profit_per_customer"]
        row = {
            "timesteps": float(self.num_timesteps),
            "wall_time_s": started - self._start - self._eval_seconds,
            "profit_per_customer": profit.mean,
            "profit_ci95": profit.ci,
        }
        self.curve.append(row)
        if profit.mean > self._best:
            self._best = profit.mean
            self.best_state = {
                k: v.detach().clone() for k, v in self.model.policy.state_dict().items()
            }
        self.logger.record("eval/profit_per_customer", profit.mean)
        self.logger.record("eval/profit_ci95", profit.ci)
        if self.verbose:
            print(f"{self.num_timesteps:>12,} steps  profit/customer {profit}")
        self._eval_seconds += time.perf_counter() - started


class ExpectedRewards(VecEnvWrapper):
    """Replace each sampled reward by its expectation ``E[r | s, a]`` under the simulator.

    The expectation is computed before the step, for the actions taken: by the wrapped
    :class:`~rec_env.vec_env.RecommendationVecEnv`'s ``expected_rewards_of(actions)``, exact in
    every world (in the item and slate worlds it scores each customer's own message, the
    product or the slate its scoring vector selects, not the whole catalog), else from
    ``env_method("expected_rewards")`` for the actions taken.

    Args:
        venv: The batched recommendation VecEnv.
    """

    def __init__(self, venv: VecEnv) -> None:
        super().__init__(venv)
        self._expected = np.zeros(venv.num_envs, dtype=np.float32)

    def reset(self) -> VecEnvObs:
        """Reset the wrapped env."""
        return self.venv.reset()

    def step_async(self, actions: np.ndarray) -> None:
        """Note the expected rewards of ``actions``, then step."""
        expected_of = getattr(self.venv, "expected_rewards_of", None)
        if callable(expected_of):
            self._expected[:] = expected_of(actions)
        else:
            chosen = np.asarray(actions).reshape(self.num_envs, 1)
            expected = np.stack(self.venv.env_method("expected_rewards"))
            self._expected[:] = np.take_along_axis(expected, chosen, 1)[:, 0]
        self.venv.step_async(actions)

    def step_wait(self) -> VecEnvStepReturn:
        """The wrapped step with the expected rewards."""
        obs, _, dones, infos = self.venv.step_wait()
        return obs, self._expected.copy(), dones, infos


def _training_env(params: Hyperparams, seed: int, settings: EnvSettings) -> VecEnv:
    venv: VecEnv = make_vec_env(params.n_envs, seed=seed, settings=settings)
    if params.training_reward == "expected":
        venv = ExpectedRewards(venv)
    if not params.normalize_reward:
        return venv
    return VecNormalize(venv, norm_obs=False, norm_reward=True, gamma=params.gamma)


def train_sb3(
    algorithm: str,
    settings: EnvSettings | Mapping[str, Any] | None = None,
    total_timesteps: int | None = None,
    seed: int = 0,
    hyperparams: dict[str, Any] | None = None,
    eval_every: int = 0,
    eval_customers: int = 2_000,
    eval_seed: int = EVAL_SEED,
    progress: bool = False,
    tensorboard_log: str | None = None,
    keep_best: bool = False,
    verbose: int = 0,
) -> tuple[SB3Policy, list[dict[str, float]]]:
    """Train an SB3 agent on :func:`rec_env.make_vec_env` with the YAML hyperparameters.

    Rewards are normalised for training only (``normalize_reward``); observations are scaled
    inside the network (:class:`~rec_env.agents.sb3.policy.ScaledFeatures`), so the returned
    policy needs nothing else at inference. The same seed gives the same policy.

    The hyperparameters are the file's section for the env id of ``settings.world``
    (``rec_env/Recommendation-v0``, ``rec_env/ItemRecommendation-v0`` or
    ``rec_env/SlateRecommendation-v0``). The slate world's ``Box`` actions train with PPO only.

    Args:
        algorithm: ``"ppo"``, ``"a2c"``, ``"dqn"`` or ``"maskable_ppo"``.
        settings: The simulated world: :class:`~rec_env.settings.EnvSettings` or a mapping of
            its fields (``None``: the defaults).
        total_timesteps: Customer-steps to train for (default: the file's ``n_timesteps``).
        seed: Seed of the environment, the network initialisation and the sampling.
        hyperparams: Overrides of the hyperparameter file
            (see :func:`rec_env.agents.sb3.load_hyperparams`).
        eval_every: Timesteps between learning-curve evaluations; ``0`` evaluates only before
            and after training.
        eval_customers: Cohort size of each evaluation.
        eval_seed: Seed of the evaluation cohort.
        progress: Show SB3's progress bar (tqdm + rich).
        tensorboard_log: TensorBoard log directory (needs the ``tensorboard`` package).
        keep_best: Return the parameters of the best evaluation instead of the last.
        verbose: SB3 verbosity; ``1`` also prints every evaluation.

    Returns:
        The trained policy and its learning curve (rows of :class:`LearningCurveCallback`).

    Raises:
        ConfigError: If the hyperparameters are invalid or the file has none for the world.
        ValueError: For an algorithm that cannot act in the world (the slate world's ``Box``).
    """
    algorithm = check_algorithm(algorithm, SB3_ALGORITHMS)
    settings = EnvSettings.coerce(settings)
    check_world(algorithm, settings)
    params = resolve_hyperparams(algorithm, world_env_id(settings), hyperparams)
    budget = int(total_timesteps if total_timesteps is not None else params.n_timesteps)
    set_random_seed(seed)
    env = _training_env(params, seed, settings)
    sb3_kwargs = params.sb3_kwargs()
    network: Any = "MlpPolicy"
    if params.policy_kwargs.action_head == "products":
        network = PRODUCT_POLICY_CLASSES[algorithm]
        sb3_kwargs["policy_kwargs"].update(product_head_arguments(env.get_attr("model")[0]))
    model = POLICY_CLASSES[algorithm].model_class(
        network,
        env,
        seed=seed,
        device="cpu",
        tensorboard_log=tensorboard_log,
        verbose=verbose,
        **sb3_kwargs,
    )
    arguments = policy_arguments(env.get_attr("model")[0])  # consent-safe on the world's obs
    callback = LearningCurveCallback(
        settings, eval_every, eval_customers, eval_seed, verbose=verbose, policy_kwargs=arguments
    )
    model.learn(budget, callback=callback, progress_bar=progress)
    if keep_best and callback.best_state is not None:
        model.policy.load_state_dict(callback.best_state)
    policy = SB3Policy.from_model(model, **arguments, random_state=seed)
    return policy, callback.curve


def product_head_arguments(model: Any) -> dict[str, Any]:
    """The :class:`~rec_env.agents.sb3.heads.ProductHead` arguments of an item world's model.

    Raises:
        ValueError: Outside the single-product item world.
    """
    if not hasattr(model, "products") or hasattr(model, "decode"):
        raise ValueError(
            "policy_kwargs.action_head: products needs the item world "
            "(rec_env/ItemRecommendation-v0): it factors the logits of product actions"
        )
    from rec_env.features import CHANNELS
    from rec_env.item_env import product_embeddings

    return {
        "embeddings": product_embeddings(model),
        "n_channels": len(CHANNELS),
        "n_offers": len(model.actions.offers),
    }


def check_world(algorithm: str, settings: EnvSettings) -> None:
    """Refuse an algorithm that cannot act in ``settings.world``.

    Raises:
        ValueError: For anything but PPO in the slate world (its actions are ``Box`` scoring
            vectors: DQN and MaskablePPO need discrete actions, and only PPO has a slate
            policy; see ``hyperparams/ppo.yaml`` for PPO against SAC/TD3).
    """
    if settings.world == "slate" and algorithm not in SLATE_POLICY_CLASSES:
        raise ValueError(
            f"{algorithm} cannot train in the slate world (rec_env/SlateRecommendation-v0): "
            f"its actions are continuous scoring vectors; use {', '.join(SLATE_POLICY_CLASSES)}"
        )
