"""The shared base of the offline learners' policies: scaled inputs and saved models.

An :class:`OfflinePolicy` holds named fitted models (:mod:`~rec_env.agents.offline.models`),
feeds them the observations scaled by its feature space (:meth:`FeatureSpace.scaled
<rec_env.feature_space.FeatureSpace.scaled>`: standardised by the training log's mean and
standard deviation by default) and decides greedily on a score per action. Subclasses implement
:meth:`OfflinePolicy.scores`. It saves as ``policy.json`` (configuration, the link of each model)
and ``state.npz`` (the models' arrays, read with ``allow_pickle=False``). A linear model's link
is saved as it is (``identity``, ``logistic``, ``softmax``), a tree ensemble's with its kind
(``tree:identity`` …), which tells :meth:`OfflinePolicy.load` which class to rebuild. A policy
holding an estimator that is neither linear nor a supported tree model refuses to save (see
:mod:`~rec_env.agents.offline.models`).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from rec_env.agents.base import POLICY_FILE, FeaturesLike, Policy
from rec_env.agents.offline.models import FittedModel, LinearModel
from rec_env.agents.offline.trees import TreeEnsembleModel

__all__ = ["STATE_FILE", "OfflinePolicy"]

STATE_FILE = "state.npz"
"""Learned arrays of a saved offline policy, next to ``policy.json``."""

_SAVED_KINDS: dict[str, type[LinearModel] | type[TreeEnsembleModel]] = {
    LinearModel.kind: LinearModel,
    TreeEnsembleModel.kind: TreeEnsembleModel,
}


def _saved_link(model: FittedModel) -> str:
    """The link as ``policy.json`` records it: bare for linear models, else ``<kind>:<link>``."""
    kind = getattr(model, "kind", None)
    if kind is None or kind == LinearModel.kind:
        return model.link
    return f"{kind}:{model.link}"


def _model_class(saved_link: str) -> tuple[type[LinearModel] | type[TreeEnsembleModel], str]:
    """The model class and link of a saved link (a bare link is linear, as in older runs).

    Raises:
        ValueError: For an unknown kind.
    """
    kind, _, link = saved_link.rpartition(":")
    kind = kind or LinearModel.kind
    if kind not in _SAVED_KINDS:
        raise ValueError(
            f"unknown model kind {kind!r}; expected one of {', '.join(sorted(_SAVED_KINDS))}"
        )
    return _SAVED_KINDS[kind], link


class OfflinePolicy(Policy):
    """A greedy policy on per-action scores computed by named fitted models.

    Args:
        n_actions: Number of actions.
        action_names: Names of the actions.
        random_state: Seed of the policy's generator (unused by greedy decisions).
        action_channels: Channel of each action (consent-safe when known).
        features: Feature space of the observations; the models see ``features.scaled(obs)``.
        models: Fitted models by name (``None`` when loading: read from ``state.npz``).
        model_links: Link of each model by name, as saved (set from ``models`` otherwise).
    """

    saved_files: ClassVar[tuple[str, ...]] = (POLICY_FILE, STATE_FILE)

    def __init__(
        self,
        n_actions: int,
        action_names: Sequence[str] | None = None,
        random_state: int | None = None,
        *,
        action_channels: Sequence[str] | None = None,
        features: FeaturesLike = None,
        models: Mapping[str, FittedModel] | None = None,
        model_links: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(
            n_actions,
            action_names,
            random_state,
            action_channels=action_channels,
            features=features,
        )
        self.models: dict[str, FittedModel] = dict(models or {})
        self._model_links = dict(model_links or {})

    # ------------------------------------------------------------------ decisions
    @abstractmethod
    def scores(self, obs: np.ndarray) -> np.ndarray:
        """``(n, n_actions)`` score of each action (higher is better) for 2-D ``obs``."""

    def inputs(self, obs: np.ndarray) -> np.ndarray:
        """``(n, d)`` the models' inputs: ``obs`` scaled by the feature space."""
        return self.features.scaled(obs)

    def choose(self, scores: np.ndarray, masks: np.ndarray | None) -> np.ndarray:
        """``(n,)`` the allowed action with the highest score (lowest index on ties).

        Raises:
            ValueError: If a row of the masks allows no action.
        """
        if masks is not None and not masks.any(axis=1).all():
            raise ValueError("a row of action_masks allows no action")
        if masks is None:
            return np.argmax(scores, axis=1)
        return np.argmax(np.where(masks, scores, -np.inf), axis=1)

    def _action_probabilities(self, obs: np.ndarray, masks: np.ndarray | None) -> np.ndarray:
        """One-hot on :meth:`choose` of :meth:`scores`."""
        best = self.choose(self.scores(obs), masks)
        return np.eye(self.n_actions)[best]

    # ------------------------------------------------------------------ persistence
    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, with the link of each model (the arrays go to ``state.npz``)."""
        links = {name: _saved_link(model) for name, model in self.models.items()}
        return {**super().get_config(), "model_links": links or self._model_links}

    def learned_arrays(self) -> dict[str, np.ndarray]:
        """Every saveable model's arrays, as ``<model>.<array>``."""
        return {
            f"{name}.{key}": array
            for name, model in self.models.items()
            if isinstance(model, LinearModel | TreeEnsembleModel)
            for key, array in model.arrays().items()
        }

    def _save_state(self, directory: Path) -> None:
        """Write the models' arrays to ``state.npz``.

        Raises:
            ValueError: If a model is neither linear nor a converted tree ensemble (saving it
                would need pickle); with the reason a tree model was not converted.
        """
        unsaveable = sorted(name for name, model in self.models.items() if not model.saveable)
        if unsaveable:
            model = self.models[unsaveable[0]]
            kind = type(model.estimator).__name__  # type: ignore[attr-defined]
            reason = getattr(model, "reason", None)
            (directory / POLICY_FILE).unlink(missing_ok=True)
            raise ValueError(
                f"cannot save a {self.algorithm} policy built on {kind} without pickle: recenv "
                "saves linear models (ridge, LinearRegression, LogisticRegression …) and "
                "scikit-learn tree models (decision trees, random forests, extra trees, "
                "gradient boosting, histogram gradient boosting) to state.npz"
                f"{f' ({reason})' if reason else ''}; loading a pickle would run whatever "
                "code it holds. Use a linear or tree estimator, or refit from the log"
            )
        np.savez(directory / STATE_FILE, **self.learned_arrays())

    def _load_state(self, directory: Path) -> None:
        """Read the models' arrays from ``state.npz`` (no pickle).

        Raises:
            ValueError: If the file or an array is missing or malformed (naming the model).
        """
        path = directory / STATE_FILE
        if not path.exists():
            raise ValueError(f"{directory}: no {STATE_FILE} (the policy's learned models)")
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
        models = {}
        for name, link in self._model_links.items():
            own = {
                key.split(".", 1)[1]: array
                for key, array in arrays.items()
                if key.split(".", 1)[0] == name
            }
            try:
                model_class, bare_link = _model_class(str(link))
                models[name] = model_class.from_arrays(own, bare_link)
            except ValueError as exc:
                raise ValueError(f"{path}: model {name!r}: {exc}") from None
        self.models = models
        self._check_models()

    def _check_models(self) -> None:
        """Check that the models this policy needs are there (after loading).

        Raises:
            ValueError: Naming a missing model.
        """
        for name in self.required_models():
            if name not in self.models:
                raise ValueError(f"the {self.algorithm} policy has no model {name!r}")
            model = self.models[name]
            if isinstance(
                model, LinearModel | TreeEnsembleModel
            ) and model.n_inputs != self.input_dim(name):
                raise ValueError(
                    f"model {name!r} takes {model.n_inputs} inputs, the policy gives "
                    f"{self.input_dim(name)}"
                )

    def required_models(self) -> list[str]:
        """Names of the models :meth:`scores` reads."""
        return list(self._model_links)

    def input_dim(self, name: str) -> int:
        """Number of inputs of model ``name`` (the features by default)."""
        return self.features.d
