"""Batch scoring: a week's campaign list for a whole customer base, under business rules.

:class:`Scorer` is a pure function over a batch of customers (features and ids in, one decision
per customer out), so that it runs in process, in ``recenv score``, or under a distributed
engine's batch map (Ray Data ``map_batches``, Spark ``mapInPandas``; :func:`score_frame` takes
and returns a pandas ``DataFrame``). For each customer, in this order:

1. **Holdout:** a share of the customers, chosen by a keyed hash of their id (stable from week
   to week for the same seed), get ``no_action`` and ``holdout = True``.
2. **Masks:** consent (:func:`rec_env.features.consent_masks`, the one definition) and the
   rules' caps, eligibility and suppression (:meth:`rec_env.rules.CompiledRules.masks`).
3. **Policy:** its probabilities over the allowed actions (the numpy copy of an SB3 network
   where it is exact, as the service uses), mixed with the service's exploration; one action is
   drawn per customer from a seeded stream, and its probability is the logged propensity.
4. **Batch rules:** budgets and the minimum no-action share
   (:meth:`rec_env.rules.CompiledRules.allocate`), by the policy's probability of the chosen
   action.

The ``rules`` column names every rule that bound the decision (``cap:…``, ``eligibility:…``,
``suppression``, ``budget:…``, ``min_no_action_share``, ``holdout``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rec_env.agents.base import Policy
from rec_env.catalog import ActionTable
from rec_env.features import CONSENT_FEATURES, FEATURE_NAMES, OBS_HIGH, OBS_LOW, consent_masks
from rec_env.rules import CompiledRules
from rec_env.serve.exploration import Exploration, actions_for_uniforms
from rec_env.serve.fast_policy import ProbabilityFunction, serving_probabilities
from rec_env.serve.score_kernel import MAX_ACTIONS, draw_actions, keyed_hashes, score_rows

__all__ = [
    "BatchScorer",
    "ScoredBatch",
    "Scorer",
    "check_features",
    "holdout_flags",
    "id_hash",
    "score_frame",
]

_CONSENT_ROWS = [FEATURE_NAMES.index(name) for name in CONSENT_FEATURES]

CHUNK = 32_768
"""Customers decided together (the batch rules then apply to the whole batch)."""


_FNV_OFFSET = np.uint64(0xCBF29CE484222325)


def _mix(h: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: every input bit moves every output bit."""
    h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


def id_hashes(customer_ids: np.ndarray, seeds: Sequence[int]) -> np.ndarray:
    """``(len(seeds), n)`` uint64 keyed hashes of the ids' text, one row per seed.

    Each is FNV-1a over the id's code points, starting from the FNV offset XOR the seed's
    SplitMix64, then SplitMix64's finaliser. It is defined by integer arithmetic alone, so it is
    the same on every machine, batch size and order; compiled, one pass over the ids for every
    seed (:func:`rec_env.serve.score_kernel.keyed_hashes`).
    """
    text = np.asarray(customer_ids).astype(str)
    n = text.shape[0]
    width = max(text.dtype.itemsize // 4, 1)
    points = np.ascontiguousarray(text).view(np.uint32).reshape(n, width)
    keys = np.array([int(seed) & 0xFFFFFFFFFFFFFFFF for seed in seeds], dtype=np.uint64)
    return keyed_hashes(points, _FNV_OFFSET ^ _mix(keys))


def id_hash(customer_ids: np.ndarray, seed: int) -> np.ndarray:
    """``(n,)`` uint64 keyed hash of the ids' text (:func:`id_hashes` with one seed)."""
    return id_hashes(customer_ids, [seed])[0]


def holdout_flags(customer_ids: np.ndarray, share: float, seed: int) -> np.ndarray:
    """``(n,)`` bool: the customers in the holdout, by a keyed hash of their ids (:func:`id_hash`).

    The same id, share and seed always give the same answer, on any machine and in any batch,
    so a customer stays in (or out of) the holdout week after week; another seed draws another
    holdout.

    Raises:
        ValueError: If ``share`` is outside [0, 1).
    """
    if not 0.0 <= share < 1.0:
        raise ValueError(f"the holdout share must be in [0, 1), got {share}")
    if share == 0.0 or len(customer_ids) == 0:
        return np.zeros(len(customer_ids), dtype=bool)
    return _held(id_hash(customer_ids, seed), share)


def _held(hashes: np.ndarray, share: float) -> np.ndarray:
    """The holdout of :func:`holdout_flags` from the ids' hashes."""
    return hashes < np.uint64(int(share * 2.0**64))


@dataclass(frozen=True)
class ScoredBatch:
    """Decisions for a batch of customers.

    Attributes:
        customer_ids: ``(n,)`` ids as given.
        actions: ``(n,)`` action indices.
        propensities: ``(n,)`` probability each action was drawn with (1 where it was forced:
            holdout, the no-action share).
        probabilities: ``(n, A)`` the probabilities served (after masks and exploration).
        holdout: ``(n,)`` bool.
        rules: ``(n,)`` ``;``-joined labels of the rules that bound each decision.
        action_names: Names of the ``A`` actions.
    """

    customer_ids: np.ndarray
    actions: np.ndarray
    propensities: np.ndarray
    probabilities: np.ndarray
    holdout: np.ndarray
    rules: np.ndarray
    action_names: tuple[str, ...]

    @property
    def n(self) -> int:
        """Number of customers."""
        return int(self.actions.shape[0])

    def columns(self, top_k: int | None = None) -> dict[str, np.ndarray]:
        """The output table's columns: ids, action, propensity, holdout, rules, probabilities.

        Args:
            top_k: Keep the ``k`` most probable actions (``top1_action``, ``top1_probability``
                …) instead of one ``p_<action>`` column per action.
        """
        names = np.array(self.action_names, dtype=object)
        out: dict[str, np.ndarray] = {
            "customer_id": _texts(self.customer_ids),
            "action": names[self.actions],
            "propensity": self.propensities,
            "holdout": self.holdout,
            "rules": self.rules,
        }
        if top_k is None:
            for j, name in enumerate(self.action_names):
                out[f"p_{name}"] = self.probabilities[:, j]
            return out
        order = self._top(top_k)
        for rank in range(order.shape[1]):
            column = order[:, rank]
            out[f"top{rank + 1}_action"] = names[column]
            out[f"top{rank + 1}_probability"] = self.probabilities[np.arange(self.n), column]
        return out

    def _top(self, top_k: int) -> np.ndarray:
        """``(n, k)`` indices of each customer's ``k`` most probable actions, most first."""
        k = min(int(top_k), len(self.action_names))
        return np.argsort(-self.probabilities, axis=1, kind="stable")[:, :k]

    def to_arrow(self, top_k: int | None = None, event_ids: np.ndarray | None = None) -> Any:
        """The :meth:`columns` as a ``pyarrow.Table``, fast: names dictionary-encoded.

        Actions and rule labels repeat a few values a million times, so they are written as
        dictionary columns; probabilities as float32 (a policy's own precision).

        Args:
            top_k: As in :meth:`columns`.
            event_ids: The decision log's event ids, written after ``customer_id``.
        """
        import pandas as pd
        import pyarrow as pa

        names = pa.array(list(self.action_names), type=pa.string())

        def actions(indices: np.ndarray) -> Any:
            return pa.DictionaryArray.from_arrays(pa.array(indices.astype(np.int32)), names)

        codes, labels = pd.factorize(self.rules)
        columns: dict[str, Any] = {"customer_id": pa.array(_texts(self.customer_ids), pa.string())}
        if event_ids is not None:
            columns["event_id"] = pa.array(event_ids, type=pa.string())
        columns |= {
            "action": actions(self.actions),
            "propensity": self.propensities,
            "holdout": self.holdout,
            "rules": pa.DictionaryArray.from_arrays(
                pa.array(codes.astype(np.int32)), pa.array(list(labels), type=pa.string())
            ),
        }
        if top_k is None:
            for j, name in enumerate(self.action_names):
                columns[f"p_{name}"] = self.probabilities[:, j].astype(np.float32)
        else:
            order = self._top(top_k)
            for rank in range(order.shape[1]):
                column = order[:, rank]
                columns[f"top{rank + 1}_action"] = actions(column)
                columns[f"top{rank + 1}_probability"] = self.probabilities[
                    np.arange(self.n), column
                ].astype(np.float32)
        return pa.table(columns)


class Scorer:
    """Score batches of customers with one policy, rules and holdout (see the module docstring).

    Args:
        policy: The policy (a verified run's).
        table: Its action table.
        probabilities: The policy's probability function ``(obs, masks) -> (n, A)``; default
            :func:`~rec_env.serve.fast_policy.serving_probabilities` of the run's world.
        rules: Compiled business rules, or None.
        holdout: Share of customers held out (no message), in [0, 1).
        holdout_seed: Key of the holdout hash.
        exploration: How served actions explore around the policy.
        seed: Key of the action draws: each customer's uniform comes from a keyed hash of
            their id, so the same customer gets the same draw in any batch or partition.
        greedy: Take the most probable allowed action (propensity 1) instead of drawing one.
    """

    def __init__(
        self,
        policy: Policy,
        table: ActionTable,
        *,
        probabilities: ProbabilityFunction | None = None,
        rules: CompiledRules | None = None,
        holdout: float = 0.0,
        holdout_seed: int = 0,
        exploration: Exploration | None = None,
        seed: int = 0,
        greedy: bool = False,
    ) -> None:
        if policy.n_actions != table.n_actions:
            raise ValueError(
                f"the policy has {policy.n_actions} actions, the catalog {table.n_actions}"
            )
        holdout_flags(np.zeros(0), holdout, holdout_seed)  # checks the share
        self.policy = policy
        self.table = table
        self.probability_fn = probabilities or policy.action_probabilities
        self.rules = rules
        self.holdout = float(holdout)
        self.holdout_seed = int(holdout_seed)
        self.exploration = exploration or Exploration()
        self.seed = int(seed)
        self.greedy = bool(greedy)
        self._compiled = _compiled(self.probability_fn, self.exploration, table.n_actions)
        self._fused = (
            None if self._compiled is None else _kernel_arrays(self._compiled, table, rules)
        )

    @classmethod
    def for_run(cls, policy: Policy, info: Any, **options: Any) -> Scorer:
        """A scorer of a loaded run (``rec_env.agents.runs.load_run``), fastest exact path."""
        from rec_env.env import shared_model

        model = shared_model(info.settings)
        probabilities = serving_probabilities(
            policy, model.actions, info.settings.profile, info.settings.catalog
        )
        return cls(policy, model.actions, probabilities=probabilities, **options)

    def score(
        self, features: np.ndarray, customer_ids: np.ndarray, *, checked: bool = False
    ) -> ScoredBatch:
        """Decide for every customer of a batch.

        Args:
            features: ``(n, 16)`` observed features (checked by :func:`check_features`).
            customer_ids: ``(n,)`` ids.
            checked: The features already passed :func:`check_features` (skip it).

        Raises:
            ValueError: On a wrong shape or a feature outside its bounds (naming the row and
                the feature).
        """
        fused = self._fused is not None
        obs = np.ascontiguousarray(features, dtype=np.float64)
        if not (checked or fused) or obs.ndim != 2 or obs.shape[1] != len(FEATURE_NAMES):
            obs = check_features(obs)  # the fused kernel checks the values as it reads them
        ids = np.asarray(customer_ids)
        n = obs.shape[0]
        if ids.shape != (n,):
            raise ValueError(f"expected {n} customer ids, got shape {ids.shape}")
        # Each customer's draws come from keyed hashes of their id, so a customer's decision
        # does not depend on which batch, partition or order they are scored in: one for the
        # holdout, one for the action, one for a budget's second draw.
        hashes = id_hashes(ids, [self.holdout_seed, self.seed * 2, self.seed * 2 + 1])
        held = _held(hashes[0], self.holdout) if self.holdout > 0 else np.zeros(n, dtype=bool)
        n_actions = self.table.n_actions
        allowed = np.empty((n, n_actions), dtype=bool)
        served = np.empty((n, n_actions))
        chosen_p = np.empty(n)
        actions = np.empty(n, dtype=np.intp)
        propensities = np.empty(n)
        codes = np.zeros(n, dtype=np.uint64)
        out = (allowed, served, actions, chosen_p, propensities, codes)
        if fused:
            bad = self._decide_fused(obs, ids, held, _uniforms(hashes[1]), out)
            if bad < n and not checked:
                check_features(obs)  # names the first bad row
        else:
            self._decide(obs, ids, held, _uniforms(hashes[1]), out)
        if self.rules is not None and self.rules.batch_only:
            rows = np.flatnonzero(~held)
            allocation = self.rules.allocate(
                actions,
                served,
                allowed,
                priority=chosen_p,
                choose=None if self.greedy else _chooser(_uniforms(hashes[2, rows])),
                batch=rows,
            )
            actions[rows] = allocation.actions
            propensities[rows] = allocation.propensities
            codes[rows] |= allocation.codes
        if self.greedy:
            propensities = np.ones(n)
        propensities[held] = 1.0
        if self.rules is not None:
            reasons = self.rules.describe(codes)
        else:
            reasons = np.full(n, "", dtype=object)
        reasons[held] = "holdout"
        return ScoredBatch(
            customer_ids=ids,
            actions=actions,
            propensities=propensities,
            probabilities=served,
            holdout=held,
            rules=reasons,
            action_names=tuple(self.table.names),
        )

    def _decide_fused(
        self,
        obs: np.ndarray,
        ids: np.ndarray,
        held: np.ndarray,
        uniforms: np.ndarray,
        out: tuple[np.ndarray, ...],
    ) -> int:
        """Masks, policy and draw, compiled (:func:`score_rows`), chunk by chunk into ``out``.

        Returns:
            The first row with a feature out of bounds, or ``n``.
        """
        assert self._fused is not None and self._compiled is not None
        scaling, consent, program = self._fused
        layers = self._compiled[1]
        if self.rules is not None and program[-1][0] >= 0:
            suppressed = self.rules.suppressed_rows(ids, obs.shape[0])
        else:
            suppressed = np.zeros(obs.shape[0], dtype=bool)
        epsilon = self.exploration.epsilon if self.exploration.kind == "epsilon" else 0.0
        n = obs.shape[0]
        first_bad = n
        # Chunks keep each step's intermediate arrays in cache for the next.
        for start in range(0, n, CHUNK):
            rows = slice(start, min(start + CHUNK, n))
            chunk = obs[rows]
            bad = score_rows(
                chunk,
                scaling,
                layers,
                consent,
                (*program, suppressed[rows]),
                held[rows],
                (epsilon, uniforms[rows], self.greedy, self.table.no_action),
                tuple(array[rows] for array in out),
            )
            if bad < chunk.shape[0]:
                first_bad = min(first_bad, start + bad)
        return first_bad

    def _decide(
        self,
        obs: np.ndarray,
        ids: np.ndarray,
        held: np.ndarray,
        uniforms: np.ndarray,
        out: tuple[np.ndarray, ...],
    ) -> None:
        """Masks, policy and draw in numpy, with the three definitions, into ``out``."""
        allowed, served, actions, chosen_p, propensities, codes = out
        no_action = self.table.no_action
        for start in range(0, obs.shape[0], CHUNK):
            rows = slice(start, min(start + CHUNK, obs.shape[0]))
            chunk_obs = obs[rows]
            consent = consent_masks(chunk_obs[:, _CONSENT_ROWS], self.table.channel)
            mask = allowed[rows]  # a view: the masks are built in place
            mask[:] = consent
            if self.rules is not None:
                ruled, codes[rows] = self.rules.masks_and_binding(chunk_obs, consent, ids[rows])
                mask &= ruled
            mask[held[rows]] = False
            mask[:, no_action] = True
            policy_p = self.probability_fn(chunk_obs, mask)
            q = self.exploration.apply(policy_p, mask)
            chosen = (
                np.argmax(q, axis=1) if self.greedy else actions_for_uniforms(q, uniforms[rows])
            )
            chosen_p[rows] = policy_p[np.arange(chosen.size), chosen]
            served[rows], actions[rows] = q, chosen
            propensities[rows] = q[np.arange(chosen.size), chosen]


def _compiled(
    probability_fn: ProbabilityFunction, exploration: Exploration, n_actions: int
) -> tuple[Any, Any] | None:
    """The network and its compiled layers when ``probability_fn`` is a network's softmax.

    Only for ε-mixing (or none) and SB3's default network shape; anything else keeps numpy.
    """
    from rec_env.agents.sb3.mlp_kernel import compile_network
    from rec_env.agents.sb3.network import NumpyNetwork

    network = getattr(probability_fn, "__self__", None)
    if (
        not isinstance(network, NumpyNetwork)
        or getattr(probability_fn, "__name__", "") != "probabilities"
        or exploration.kind == "temperature"
        or n_actions > MAX_ACTIONS
        or network.n_features != len(FEATURE_NAMES)
    ):
        return None
    layers = compile_network(network)
    return None if layers is None else (network, layers)


def _kernel_arrays(
    compiled: tuple[Any, Any], table: ActionTable, rules: CompiledRules | None
) -> tuple[tuple[np.ndarray, ...], ...]:
    """The fixed arguments of :func:`score_rows`: scaling, consent, mask rules."""
    network = compiled[0]
    scaling = network.scaling
    log_column = np.full(scaling.log_mask.size, -1, dtype=np.int64)
    log_column[scaling.log_mask] = np.arange(int(scaling.log_mask.sum()))
    low, high = OBS_LOW.astype(np.float64), OBS_HIGH.astype(np.float64)
    if rules is None:
        program: tuple[np.ndarray, ...] = (
            np.zeros((0, table.n_actions), dtype=bool),
            *(np.zeros(0, dtype=np.int64) for _ in range(3)),
            np.zeros(0),
            np.array([-1]),
        )
    else:
        compiled_rules = rules.program()
        program = (
            compiled_rules.selections,
            compiled_rules.condition_rule,
            compiled_rules.condition_feature,
            compiled_rules.condition_op,
            compiled_rules.condition_value,
            np.array([compiled_rules.suppression]),
        )
    return (
        (
            np.flatnonzero(scaling.log_mask),
            log_column,
            scaling.linear,
            scaling.logarithmic,
            low,
            high,
        ),
        (np.array(_CONSENT_ROWS, dtype=np.int64), table.channel.astype(np.int64)),
        program,
    )


def _uniforms(hashes: np.ndarray) -> np.ndarray:
    """``(n,)`` numbers in [0, 1) from the ids' keyed hashes (53 bits each)."""
    return (hashes >> np.uint64(11)) * (1.0 / 2.0**53)


def _chooser(uniforms: np.ndarray) -> Any:
    """The budget allocation's draw: the rows it re-decides use their customers' uniforms."""

    def choose(probabilities: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return draw_actions(probabilities, uniforms[rows])  # actions_for_uniforms, compiled

    return choose


def _texts(values: np.ndarray) -> np.ndarray:
    """``values`` as an object array of ``str`` (no copy if it already is one)."""
    values = np.asarray(values)
    if values.dtype == object:
        return values
    return values.astype(str).astype(object)


def check_features(features: np.ndarray) -> np.ndarray:
    """``(n, 16)`` float64 features, every value finite and within its feature's bounds.

    Raises:
        ValueError: Naming the first bad row (1-based) and feature.
    """
    obs = np.asarray(features, dtype=np.float64)
    if obs.ndim != 2 or obs.shape[1] != len(FEATURE_NAMES):
        raise ValueError(f"features must have shape (n, {len(FEATURE_NAMES)}), got {obs.shape}")
    bad = ~np.isfinite(obs) | (obs < OBS_LOW) | (obs > OBS_HIGH)
    if bad.any():
        row, column = np.argwhere(bad)[0]
        name = FEATURE_NAMES[column]
        value = obs[row, column]
        raise ValueError(
            f"row {row + 1}: {name}: {value!r} is outside [{OBS_LOW[column]:g}, "
            f"{OBS_HIGH[column]:g}]"
            if np.isfinite(value)
            else f"row {row + 1}: {name}: missing or not finite"
        )
    return obs


class BatchScorer:
    """Score pandas batches of customers from a run directory, in any worker process.

    Holds only paths and options, so it pickles to a distributed engine's workers; each builds
    its :class:`Scorer` (checking the run's files) on its first batch. With Ray Data (as tasks;
    as actors, ``concurrency`` with two CPUs deadlocked in Ray 2.60 here)::

        ds.map_batches(BatchScorer("runs/ppo-seed0"), batch_format="pandas")

    Every customer's draws come from a hash of their id, so the list is the same however the
    customers are partitioned. Budgets and a minimum no-action share bind a whole batch and
    cannot be split across workers: rules with them are refused here (use ``recenv score``).

    Raises:
        ValueError: For rules with budgets or a no-action share.
    """

    def __init__(
        self,
        run_dir: str,
        *,
        rules: str | None = None,
        holdout: float = 0.0,
        holdout_seed: int = 0,
        epsilon: float = 0.05,
        seed: int = 0,
        greedy: bool = False,
        top_k: int | None = None,
    ) -> None:
        self.run_dir = str(run_dir)
        self.rules = None if rules is None else str(rules)
        self.options = {
            "holdout": holdout,
            "holdout_seed": holdout_seed,
            "seed": seed,
            "greedy": greedy,
        }
        self.epsilon = float(epsilon)
        self.top_k = top_k
        self._scorer: Scorer | None = None
        if self.rules is not None:
            from rec_env.rules import load_rules

            if load_rules(self.rules).batch_only:
                raise ValueError(
                    f"{self.rules}: budgets and min_no_action_share bind a whole batch; score it "
                    "in one process (recenv score)"
                )

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_scorer": None}  # workers build their own

    def scorer(self) -> Scorer:
        """The scorer of this process (built once)."""
        if self._scorer is None:
            from rec_env.agents.runs import load_run
            from rec_env.env import shared_model
            from rec_env.rules import load_rules

            policy, info = load_run(self.run_dir, lean=True)
            actions = shared_model(info.settings).actions
            rules = None if self.rules is None else load_rules(self.rules, actions)
            exploration = Exploration(epsilon=self.epsilon)
            self._scorer = Scorer.for_run(
                policy, info, rules=rules, exploration=exploration, **self.options
            )
        return self._scorer

    def __call__(self, frame: Any) -> Any:
        """Score a ``DataFrame`` (``customer_id`` and the 16 features)."""
        return score_frame(frame, self.scorer(), self.top_k)


def score_frame(frame: Any, scorer: Scorer, top_k: int | None = None) -> Any:
    """Score a pandas ``DataFrame`` (``customer_id`` and the 16 features) into one.

    The shape a distributed engine's batch map wants: Ray Data
    ``ds.map_batches(lambda b: score_frame(b, scorer), batch_format="pandas")`` or Spark
    ``df.mapInPandas(lambda it: (score_frame(b, scorer) for b in it), schema)``.
    """
    import pandas as pd

    features = frame[list(FEATURE_NAMES)].to_numpy(dtype=np.float64)
    scored = scorer.score(features, frame["customer_id"].to_numpy())
    return pd.DataFrame(scored.columns(top_k))
