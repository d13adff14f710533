"""recenv: learn and serve *who should get which marketing action*.

``import rec_env`` registers ``rec_env/Recommendation-v0`` with Gymnasium, with a single-env entry
point (``gym.make``) and a vector entry point (``gym.make_vec``, a native ``VectorEnv`` on the
batched core). It imports numpy and gymnasium only; torch, Stable-Baselines3, shap and FastAPI
load when their features are used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gymnasium.envs.registration import register

from rec_env.env import RecommendationEnv, build_model
from rec_env.errors import ConfigError
from rec_env.features import FEATURE_NAMES
from rec_env.settings import DEFAULT_HORIZON, EnvSettings

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Mapping

    from rec_env.vec_env import RecommendationVecEnv

__version__ = "0.1.0"

__all__ = [
    "ENV_ID",
    "ENV_WORLDS",
    "FEATURE_NAMES",
    "ITEM_ENV_ID",
    "SLATE_ENV_ID",
    "ConfigError",
    "EnvSettings",
    "RecommendationEnv",
    "__version__",
    "build_model",
    "list_populations",
    "load_population",
    "make_vec_env",
]

ENV_ID = "rec_env/Recommendation-v0"
ITEM_ENV_ID = "rec_env/ItemRecommendation-v0"
SLATE_ENV_ID = "rec_env/SlateRecommendation-v0"
ENV_WORLDS: dict[str, str] = {ENV_ID: "strategy", ITEM_ENV_ID: "item", SLATE_ENV_ID: "slate"}
"""Each registered env id and the ``EnvSettings.world`` it simulates."""

# Entry points are strings, so registering imports neither env module's heavier dependencies.
register(
    id=ENV_ID,
    entry_point="rec_env.env:RecommendationEnv",
    vector_entry_point="rec_env.vector_env:RecommendationVectorEnv",
    max_episode_steps=DEFAULT_HORIZON,
    kwargs={
        "profile": "default",
        "reward_mode": "profit",
        "catalog": "strategy",
        "horizon": DEFAULT_HORIZON,
    },
)

for _env_id, _entry in (
    (ITEM_ENV_ID, "ItemRecommendationEnv"),
    (SLATE_ENV_ID, "SlateRecommendationEnv"),
):
    register(
        id=_env_id,
        entry_point=f"rec_env.item_env:{_entry}",
        vector_entry_point="rec_env.vector_env:RecommendationVectorEnv",
        max_episode_steps=DEFAULT_HORIZON,
        kwargs={"world": ENV_WORLDS[_env_id]},
    )


def make_vec_env(
    n_envs: int = 64,
    seed: int | None = None,
    settings: EnvSettings | Mapping[str, Any] | None = None,
    **env_kwargs: Any,
) -> RecommendationVecEnv:
    """An SB3 ``VecEnv`` of ``n_envs`` customers stepped together on the batched core.

    Args:
        n_envs: Number of customers simulated in parallel.
        seed: Seed of the single ``np.random.Generator`` behind all of them.
        settings: The simulated world; keyword arguments override its fields.
        **env_kwargs: ``profile``, ``reward_mode``, ``catalog``, ``horizon``, ``cycle_days``,
            ``render_mode``.
    """
    from rec_env.vec_env import RecommendationVecEnv

    return RecommendationVecEnv(n_envs, seed, settings, **env_kwargs)


def load_population(population: Any = "default") -> Any:
    """Load a population by name or path (see :func:`rec_env.population.load_population`)."""
    from rec_env.population import load_population as _load

    return _load(population)


def list_populations() -> list[str]:
    """Names of the shipped populations."""
    from rec_env.population import list_populations as _list

    return _list()
