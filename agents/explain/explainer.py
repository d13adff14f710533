"""Explain a policy's decision for one customer with exact interventional Shapley values.

The explained value depends on the policy:

* PPO, A2C and MaskablePPO: the probability of the chosen action, after the consent mask;
* DQN: the Q-value of the chosen action;
* LinUCB and linear Thompson sampling: the estimated reward ``x^T θ̂_a`` of the chosen action;
* any other policy: the probability of the chosen action, from ``action_probabilities``.

Contributions are interventional Shapley values against a background sample of customers drawn
from the population with a fixed seed (:func:`population_background`). They are exact, not
sampled: :mod:`~.shapley` enumerates, for every background row, the coalitions of
the features where the customer differs from that row. The consent mask is part of the explained
function: it is recomputed from the consent features of every coalition, so ``consent_sms = 0``
gets the credit for the probability that moved off the SMS actions.

Fast path for SB3 networks: the observation scaling is elementwise, so the customer and the
background are scaled once; the first layer is linear, so its pre-activations for all ``2^k``
coalitions of a row are built by doubling from ``k`` column updates; the background rows' first
layer is cached. The remaining layers run as a few large float32 matrix products over all
coalitions at once. Linear bandits are explained in closed form (a linear model's interventional
Shapley value is ``θ_i (x_i - mean_b b_i)``).

The result is a :class:`shap.Explanation`, so ``shap.plots.waterfall`` and ``shap.plots.beeswarm``
work on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from rec_env.agents.base import Policy
from rec_env.agents.explain.shapley import ExactShapley, differing_features, shapley_matrix
from rec_env.catalog import ActionTable, load_catalog
from rec_env.features import CHANNELS, FEATURE_INDEX, FEATURE_NAMES, OBS_HIGH

if TYPE_CHECKING:
    import shap

__all__ = [
    "DEFAULT_BACKGROUND_SIZE",
    "NumpyNetwork",
    "OutputKind",
    "PolicyExplainer",
    "numpy_network",
    "population_background",
]

DEFAULT_BACKGROUND_SIZE = 16
"""Background customers per explanation. The cost grows linearly with it (see the README)."""

_TILE_BITS = 11
"""Coalitions are pushed through the network in tiles of ``2^11`` (about 0.5 MB per layer)."""

OutputKind = Literal["probability", "q_value", "estimated_reward"]
_CONSENT_COLUMNS = [FEATURE_INDEX[f"consent_{c}"] for c in CHANNELS]


def population_background(
    n: int = DEFAULT_BACKGROUND_SIZE,
    population: str | Path = "default",
    catalog: str | Path = "strategy",
    seed: int = 0,
) -> np.ndarray:
    """``(n, 16)`` float32 observations of ``n`` customers freshly drawn from a population.

    Args:
        n: Number of customers.
        population: Shipped population name or YAML path.
        catalog: Action catalog (the observation does not depend on it; kept for symmetry).
        seed: Seed of the draw; the same seed gives the same background.

    Raises:
        ValueError: If ``n`` is not positive.
        ConfigError: If the population file is missing or invalid.
    """
    from rec_env.env import build_model

    if n < 1:
        raise ValueError(f"the background needs at least 1 customer, got {n}")
    model = build_model(population, catalog=catalog)
    batch = model.new_batch(n)
    model.draw_customers(batch, np.arange(n), np.random.default_rng(seed))
    return model.observe(batch)


# ---------------------------------------------------------------------------- numpy networks
@dataclass(frozen=True)
class _Dense:
    weight: np.ndarray  # (in, out) float32
    bias: np.ndarray  # (out,) float32
    activation: str | None


def _activation(values: np.ndarray, name: str | None) -> np.ndarray:
    """Apply an activation in place."""
    if name == "relu":
        np.maximum(values, 0.0, out=values)
    elif name == "tanh":
        np.tanh(values, out=values)
    elif name == "elu":
        negative = values < 0.0
        values[negative] = np.expm1(values[negative])
    return values


@dataclass(frozen=True)
class NumpyNetwork:
    """An SB3 MLP head copied to numpy: elementwise scaling, then dense layers."""

    high: np.ndarray
    log_mask: np.ndarray
    layers: tuple[_Dense, ...]

    def scale(self, obs: np.ndarray) -> np.ndarray:
        """The :class:`~rec_env.agents.sb3.policy.ScaledFeatures` transform, in numpy."""
        obs = np.maximum(np.asarray(obs, dtype=np.float32), 0.0)
        linear = obs / self.high
        logarithmic = np.log1p(obs) / np.log1p(self.high)
        return np.minimum(np.where(self.log_mask, logarithmic, linear), 1.0).astype(np.float32)

    def hidden(self, first: np.ndarray) -> np.ndarray:
        """Given first-layer pre-activations, the input of the output layer."""
        values = _activation(first, self.layers[0].activation)
        for layer in self.layers[1:-1]:
            values = values @ layer.weight
            values += layer.bias
            values = _activation(values, layer.activation)
        return values


def numpy_network(policy: Policy) -> NumpyNetwork | None:
    """The policy's network copied to numpy, or ``None`` if it is not a plain scaled MLP.

    PPO, A2C and MaskablePPO give their actor (``pi_features_extractor``, ``policy_net``,
    ``action_net``: the output is the logits); DQN its Q-network. The explainer and the
    service's fast decisions (:mod:`rec_env.serve.fast_policy`) share this one copy.
    """
    try:
        from torch import nn

        from rec_env.agents.sb3.policy import DQNPolicy, SB3Policy, ScaledFeatures
    except ImportError:  # pragma: no cover - torch is a dependency
        return None
    if not isinstance(policy, SB3Policy):
        return None
    if isinstance(policy, DQNPolicy):
        q_net = policy.model.q_net
        extractor, modules = q_net.features_extractor, list(q_net.q_net)
    else:
        sb3 = policy.model.policy
        extractor = sb3.pi_features_extractor
        modules = [*sb3.mlp_extractor.policy_net, sb3.action_net]
    if not isinstance(extractor, ScaledFeatures):
        return None
    activations = {nn.ReLU: "relu", nn.Tanh: "tanh", nn.ELU: "elu"}
    layers: list[_Dense] = []
    for module in modules:
        if isinstance(module, nn.Linear):
            weight = module.weight.detach().cpu().numpy().T.astype(np.float32)
            bias = module.bias.detach().cpu().numpy().astype(np.float32)
            layers.append(_Dense(np.ascontiguousarray(weight), bias, None))
        elif type(module) in activations and layers and layers[-1].activation is None:
            layers[-1] = _Dense(layers[-1].weight, layers[-1].bias, activations[type(module)])
        else:
            return None
    if not layers or layers[-1].activation is not None:
        return None
    return NumpyNetwork(
        high=extractor.high.cpu().numpy().astype(np.float32),
        log_mask=extractor.log_mask.cpu().numpy().astype(bool),
        layers=tuple(layers),
    )


# ---------------------------------------------------------------------------- explainer
class PolicyExplainer:
    """Exact Shapley explanations of a policy's decisions.

    Build it once (it draws the background and copies the network), then call :meth:`explain`
    for any number of customers.

    Args:
        policy: The policy to explain.
        background: ``(n, 16)`` background observations; drawn with
            :func:`population_background` if omitted.
        n_background: Size of the drawn background.
        population: Population of the drawn background.
        catalog: The action catalog (channels of the actions, for the consent mask).
        seed: Seed of the drawn background.

    Example:
        >>> explainer = PolicyExplainer(load_policy("runs/ppo"))  # doctest: +SKIP
        >>> explanation = explainer.explain(obs)  # doctest: +SKIP
        >>> shap.plots.waterfall(explanation[0])  # doctest: +SKIP
    """

    def __init__(
        self,
        policy: Policy,
        background: np.ndarray | None = None,
        n_background: int = DEFAULT_BACKGROUND_SIZE,
        population: str | Path = "default",
        catalog: str | Path = "strategy",
        seed: int = 0,
    ) -> None:
        self.policy = policy
        self.table = ActionTable.from_catalog(load_catalog(catalog))
        if self.table.n_actions != policy.n_actions:
            raise ValueError(
                f"the policy has {policy.n_actions} actions, the catalog {self.table.n_actions}"
            )
        if background is None:
            background = population_background(n_background, population, catalog, seed)
        self.background = _check_obs(background, "background")
        self.kind: OutputKind = "probability"
        self._network = numpy_network(policy)
        if self._network is not None and len(self._network.layers) < 2:
            self._network = None  # no hidden layer: the subset-sum path needs one
        self._theta: np.ndarray | None = None
        from rec_env.agents.sb3.policy import DQNPolicy

        if isinstance(policy, DQNPolicy):
            self.kind = "q_value"
            if self._network is None:
                raise ValueError("cannot explain a DQN whose Q-network is not a plain MLP")
        elif hasattr(policy, "theta_"):
            self.kind = "estimated_reward"
            theta = np.asarray(policy.theta_, dtype=np.float64)  # (A, F + 1), context obs/high
            self._theta = theta
        if self._network is not None:
            first = self._network.layers[0]
            self._background_scaled = self._network.scale(self.background)
            self._background_first = self._background_scaled @ first.weight + first.bias
        codes = self.background[:, _CONSENT_COLUMNS] > 0.5
        self._background_codes = (codes * (1 << np.arange(len(CHANNELS)))).sum(axis=1)

    # ------------------------------------------------------------------ public API
    def output_label(self, action: int) -> str:
        """What is explained for ``action``, e.g. ``P(discount_15_email)``."""
        name = self.table.names[action]
        return {"probability": "P", "q_value": "Q", "estimated_reward": "E[reward]"}[
            self.kind
        ] + f"({name})"

    def explain(
        self,
        obs: np.ndarray,
        actions: np.ndarray | None = None,
        excluded: np.ndarray | None = None,
    ) -> shap.Explanation:
        """Explain the decisions for ``n`` customers.

        Args:
            obs: ``(n, 16)`` observations (one customer may be 1-D).
            actions: ``(n,)`` actions to explain (e.g. the ones served); by default the
                policy's choice: the most likely allowed action (highest Q-value, highest
                estimated reward).
            excluded: ``(n, n_actions)`` bool, True for actions the caller excluded; combined
                with the consent mask.

        Returns:
            A :class:`shap.Explanation` with ``values`` ``(n, 16)``, ``base_values`` ``(n,)``,
            ``data`` ``(n, 16)`` and ``feature_names``. It also carries ``actions`` ``(n,)``,
            ``model_outputs`` ``(n,)``, ``output_labels`` and ``kind`` for :meth:`as_dict`.
            ``base_values + values.sum(1) == model_outputs`` (local accuracy).

        Raises:
            ValueError: On a wrong shape, an action out of range, or an action that is masked
                for its customer.
        """
        import shap

        data = np.atleast_2d(np.asarray(obs, dtype=np.float64))
        obs = _check_obs(obs, "obs")
        n = obs.shape[0]
        if excluded is None:
            excluded = np.zeros((n, self.table.n_actions), dtype=bool)
        excluded = np.asarray(excluded, dtype=bool).reshape(n, self.table.n_actions)
        masks = self.table.consent_masks(obs) & ~excluded
        if not masks.any(axis=1).all():
            raise ValueError("every action is excluded for some customer")
        if actions is None:
            actions = self._default_actions(obs, masks)
        actions = np.asarray(actions, dtype=np.intp).reshape(n)
        if ((actions < 0) | (actions >= self.table.n_actions)).any():
            raise ValueError(f"actions must be in [0, {self.table.n_actions})")
        if self.kind == "probability" and not masks[np.arange(n), actions].all():
            raise ValueError("cannot explain an action that is masked for its customer")
        values = np.empty((n, obs.shape[1]))
        base = np.empty(n)
        outputs = np.empty(n)
        for i in range(n):
            values[i], base[i], outputs[i] = self._explain_one(obs[i], int(actions[i]), excluded[i])
        explanation = shap.Explanation(
            values=values,
            base_values=base,
            data=data,
            feature_names=list(FEATURE_NAMES),
        )
        explanation.actions = actions
        explanation.model_outputs = outputs
        explanation.output_labels = [self.output_label(int(a)) for a in actions]
        explanation.kind = self.kind
        return explanation

    def as_dict(
        self, explanation: shap.Explanation, i: int = 0, top: int | None = None
    ) -> dict[str, Any]:
        """One customer's explanation as JSON-ready data, largest contributions first.

        Args:
            explanation: What :meth:`explain` returned (not a slice of it).
            i: The customer's row.
            top: Keep only the ``top`` largest contributions (all by default).
        """
        values = np.asarray(explanation.values[i], dtype=np.float64)
        data = np.asarray(explanation.data[i], dtype=np.float64)
        order = np.argsort(-np.abs(values), kind="stable")[:top]
        action = int(explanation.actions[i])
        return {
            "kind": self.kind,
            "explained_output": self.output_label(action),
            "action": action,
            "base_value": float(explanation.base_values[i]),
            "model_output": float(explanation.model_outputs[i]),
            "contributions": [
                {
                    "feature": FEATURE_NAMES[j],
                    "value": float(data[j]),
                    "contribution": float(values[j]),
                }
                for j in order
            ],
        }

    def model_output(
        self, obs: np.ndarray, actions: np.ndarray, excluded: np.ndarray | None = None
    ) -> np.ndarray:
        """The explained value ``(n,)`` straight from the policy (for checks and tests)."""
        obs = _check_obs(obs, "obs")
        n = obs.shape[0]
        rows = np.arange(n)
        if self.kind == "q_value":
            return np.asarray(self.policy.q_values(obs), dtype=np.float64)[rows, actions]
        if self.kind == "estimated_reward":
            assert self._theta is not None
            return np.einsum("nf,nf->n", _linear_contexts(obs), self._theta[actions])
        masks = self.table.consent_masks(obs)
        if excluded is not None:
            masks &= ~np.asarray(excluded, dtype=bool).reshape(n, -1)
        return self.policy.action_probabilities(obs, masks)[rows, actions]

    # ------------------------------------------------------------------ internals
    def _default_actions(self, obs: np.ndarray, masks: np.ndarray) -> np.ndarray:
        if self.kind == "q_value":
            q = np.asarray(self.policy.q_values(obs), dtype=np.float64)
            return np.argmax(np.where(masks, q, -np.inf), axis=1)
        if self.kind == "estimated_reward":
            assert self._theta is not None
            estimates = _linear_contexts(obs) @ self._theta.T
            return np.argmax(np.where(masks, estimates, -np.inf), axis=1)
        return np.argmax(self.policy.action_probabilities(obs, masks), axis=1)

    def _explain_one(
        self, x: np.ndarray, action: int, excluded: np.ndarray
    ) -> tuple[np.ndarray, float, float]:
        if self.kind == "estimated_reward":
            return self._explain_linear(x, action)
        if self._network is not None:
            return self._explain_network(x, action, excluded)
        return self._explain_generic(x, action, excluded)

    def _explain_linear(self, x: np.ndarray, action: int) -> tuple[np.ndarray, float, float]:
        assert self._theta is not None
        theta = self._theta[action]
        weights = theta[:-1] / OBS_HIGH.astype(np.float64)
        background = self.background.astype(np.float64)
        x64 = x.astype(np.float64)
        phi = weights * (x64 - background.mean(axis=0))
        base = float((_linear_contexts(self.background) @ theta).mean())
        return phi, base, base + float(phi.sum())

    def _explain_generic(
        self, x: np.ndarray, action: int, excluded: np.ndarray
    ) -> tuple[np.ndarray, float, float]:
        def value(z: np.ndarray) -> np.ndarray:
            masks = self.table.consent_masks(z) & ~excluded
            return self.policy.action_probabilities(z, masks)[:, action]

        return ExactShapley(value, self.background, max_players=x.size).shap_values(x)

    def _penalties(self, excluded: np.ndarray) -> np.ndarray:
        """``(8, A)`` logit offsets per consent code: 0 if allowed, -inf if masked."""
        codes = np.arange(1 << len(CHANNELS))
        customers = np.zeros((codes.size, len(FEATURE_NAMES)), dtype=np.float32)
        customers[:, _CONSENT_COLUMNS] = (codes[:, None] >> np.arange(len(CHANNELS))) & 1
        allowed = self.table.consent_masks(customers) & ~excluded
        return np.where(allowed, 0.0, -np.inf).astype(np.float32)

    def _explain_network(
        self, x: np.ndarray, action: int, excluded: np.ndarray
    ) -> tuple[np.ndarray, float, float]:
        network = self._network
        assert network is not None
        first = network.layers[0]
        x_scaled = network.scale(x[None, :])[0]
        penalties = self._penalties(excluded) if self.kind == "probability" else None
        consent_bit = {col: 1 << c for c, col in enumerate(_CONSENT_COLUMNS)}
        x_code = sum(bit for col, bit in consent_bit.items() if x[col] > 0.5)
        players = differing_features(x, self.background)
        phi = np.zeros(x.size)
        base = output = 0.0
        for b, p in enumerate(players):
            steps = (x_scaled[p] - self._background_scaled[b, p])[:, None] * first.weight[p]
            code_steps = np.array(
                [
                    (bit if x_code & bit else -bit) if (bit := consent_bit.get(int(f), 0)) else 0
                    for f in p
                ],
                dtype=np.intp,
            )
            values = self._row_values(
                self._background_first[b],
                steps,
                int(self._background_codes[b]),
                code_steps,
                action,
                penalties,
            )
            base += values[0]
            output += values[-1]
            if p.size:
                phi[p] += values @ shapley_matrix(p.size)
        n_rows = len(players)
        return phi / n_rows, base / n_rows, output / n_rows

    def _row_values(
        self,
        start: np.ndarray,
        steps: np.ndarray,
        start_code: int,
        code_steps: np.ndarray,
        action: int,
        penalties: np.ndarray | None,
    ) -> np.ndarray:
        """The explained value of all ``2^k`` coalitions of one background row.

        The first layer's pre-activations of coalition ``t`` are ``start + Σ_{j ∈ t} steps[j]``.
        The coalitions go through the network in tiles of ``2^TILE_BITS`` (cache-sized): a tile
        is the table of the low players' subset sums plus one subset sum of the high players.
        Hidden units that no coalition of the row can switch on are dropped first.
        """
        import torch

        network = self._network
        assert network is not None
        k = steps.shape[0]
        low = min(k, _TILE_BITS)
        first, second, *rest = network.layers
        alive = np.ones(start.shape[0], dtype=bool)
        if first.activation == "relu":  # dead for every coalition: start + Σ max(step, 0) ≤ 0
            alive = start + np.maximum(steps, 0.0).sum(axis=0) > 0.0
        start, steps = start[alive], steps[:, alive]
        layers = [(torch.from_numpy(second.weight[alive]), torch.from_numpy(second.bias))]
        layers += [(torch.from_numpy(d.weight), torch.from_numpy(d.bias)) for d in rest]
        activations = [first.activation, second.activation] + [d.activation for d in rest]
        low_sums = torch.from_numpy(_subset_sums(start, steps[:low]))
        high_sums = torch.from_numpy(_subset_sums(np.zeros_like(start), steps[low:]))
        values = torch.empty(1 << k, dtype=torch.float32)
        size = 1 << low
        weight, bias = layers[-1]
        if penalties is not None:
            low_codes = _subset_sums(np.array([start_code]), code_steps[:low, None])[:, 0]
            high_codes = _subset_sums(np.array([0]), code_steps[low:, None])[:, 0]
            table = torch.from_numpy(penalties)
            constant_codes = not code_steps.any()
        else:
            weight, bias = weight[:, action : action + 1], bias[action : action + 1]
        with torch.inference_mode():
            for h in range(high_sums.shape[0]):
                hidden = _torch_activation(low_sums + high_sums[h], activations[0])
                for (w, b), activation in zip(layers[:-1], activations[1:], strict=False):
                    hidden = _torch_activation(torch.addmm(b, hidden, w), activation)
                out = torch.addmm(bias, hidden, weight)
                if penalties is None:
                    values[h * size : (h + 1) * size] = out[:, 0]
                    continue
                if constant_codes:
                    out += table[start_code]
                else:
                    out += table[torch.from_numpy(low_codes + high_codes[h])]
                values[h * size : (h + 1) * size] = torch.softmax(out, dim=1)[:, action]
        return values.numpy().astype(np.float64)


def _torch_activation(values: Any, name: str | None) -> Any:
    """Apply an activation in place to a torch tensor."""
    if name == "relu":
        return values.relu_()
    if name == "tanh":
        return values.tanh_()
    if name == "elu":
        import torch

        return torch.nn.functional.elu(values, inplace=True)
    return values


def _subset_sums(start: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """``(2^k, d)``: ``start + Σ_{j ∈ t} steps[j]`` for every coalition ``t`` in binary order."""
    k = steps.shape[0]
    sums = np.empty((1 << k, start.shape[0]), dtype=np.result_type(start, steps))
    sums[0] = start
    for j in range(k):
        half = 1 << j
        np.add(sums[:half], steps[j], out=sums[half : 2 * half])
    return sums


def _check_obs(obs: np.ndarray, name: str) -> np.ndarray:
    obs = np.atleast_2d(np.asarray(obs, dtype=np.float32))
    if obs.ndim != 2 or obs.shape[1] != len(FEATURE_NAMES) or obs.shape[0] == 0:
        raise ValueError(f"{name} must have shape (n, {len(FEATURE_NAMES)}), got {obs.shape}")
    if not np.isfinite(obs).all():
        raise ValueError(f"{name} must be finite")
    return obs


def _linear_contexts(obs: np.ndarray) -> np.ndarray:
    """The linear bandits' own contexts ``(obs / OBS_HIGH, 1)``."""
    from rec_env.agents.bandits.linear import linear_contexts

    return linear_contexts(np.atleast_2d(np.asarray(obs, dtype=np.float64)))
