"""The decision service: a verified policy, exploration, the decision log and online learning.

:class:`DecisionService` is what the HTTP layer calls; it knows nothing about HTTP. It is built
once per process (:meth:`DecisionService.from_settings`) from the run directory of the settings
only, after checking the model file's SHA-256 against ``run.json``.

An online policy (a bandit) learns from rewards through an
:class:`~rec_env.serve.online.OnlineLearner`. The decision log is the source of truth of what
it learned; state snapshots (``state_dir``) only make restarts fast: at startup the newest
intact snapshot is restored (or the run's policy, with no state directory) and every logged
reward after its watermark is replayed, so a crash loses no update.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from rec_env.agents.base import OnlinePolicy, Policy
from rec_env.agents.runs import RunInfo
from rec_env.features import consent_masks
from rec_env.serve.decision_batch import RequestBatcher
from rec_env.serve.decision_log import (
    DecisionLog,
    RewardConflictError,
    RewardReceipt,
    RewardTerms,
    UnknownEventError,
)
from rec_env.serve.exploration import ActionSampler, Exploration
from rec_env.serve.fast_policy import serving_probabilities
from rec_env.serve.item_decisions import (
    ItemDecider,
    ItemOutcome,
    SlateDecider,
    SlateOutcome,
    make_decider,
)
from rec_env.serve.metrics import Metrics
from rec_env.serve.online import OnlineLearner
from rec_env.serve.rewards import DAY_SECONDS
from rec_env.serve.service_types import (
    ActionNotAllowedError,
    BaselineNotAllowedError,
    ColumnarResult,
    DecisionRequest,
    Decisions,
    RewardOutcome,
    RewardOutOfRangeError,
)
from rec_env.serve.settings import ServeSettings
from rec_env.serve.state import PolicyStateStore
from rec_env.serve.world import ServedWorld

if TYPE_CHECKING:  # pragma: no cover
    from rec_env.agents.explain.explainer import PolicyExplainer
    from rec_env.agents.explain.items import ItemExplainer, ItemExplanation

__all__ = [
    "ActionNotAllowedError",
    "ColumnarResult",
    "DecisionService",
    "Decisions",
    "RewardOutOfRangeError",
    "RewardOutcome",
]


def _catalog(info: RunInfo) -> str:
    """The action catalog the run was trained with."""
    return info.settings.catalog


class DecisionService:
    """Serve decisions of one policy, log them, and learn from rewards if the policy is online.

    The decision log is the source of truth of what an online policy learned: at construction,
    every logged reward of this model version after ``reward_seq`` is replayed in seq order, and
    live rewards are learned in seq order too, so the policy always equals the one restored
    (``reward_seq``, ``n_updates``) that then learned each later logged reward exactly once.

    Args:
        policy: The policy (already verified and loaded).
        info: Its ``run.json``.
        settings: The service settings.
        log: The decision log.
        explainer: The explainer of ``policy`` (an ``ItemExplainer`` in the item worlds), or
            None to disable explanations.
        state_store: Where an online policy's snapshots go, if anywhere.
        n_updates: Rewards the policy had already learned from (restored state).
        metrics: Where decisions, explanations and rewards are counted (default: new).
        reward_seq: Seq of the last logged reward the policy had learned (restored state's
            watermark; 0 for the run's policy).
        world: The run's world (default: built from ``info``).

    Raises:
        ValueError: If the policy cannot be served in its world (its actions are not its
            catalog's, a slate run's policy does not score products, or it fails on a customer).
    """

    def __init__(
        self,
        policy: Policy,
        info: RunInfo,
        settings: ServeSettings,
        log: DecisionLog,
        explainer: PolicyExplainer | ItemExplainer | None = None,
        state_store: PolicyStateStore | None = None,
        n_updates: int = 0,
        metrics: Metrics | None = None,
        reward_seq: int = 0,
        world: ServedWorld | None = None,
    ) -> None:
        self.policy = policy
        self.info = info
        self.settings = settings
        self.log = log
        self.explainer = explainer
        self.state_store = state_store
        self.metrics = metrics if metrics is not None else Metrics()
        self.world = world if world is not None else ServedWorld.from_run(info, settings.model_dir)
        self.world.check_policy(policy, settings.model_dir)
        self.actions = self.world.actions
        self.exploration = Exploration(settings.exploration, settings.epsilon, settings.temperature)
        self.rules = _rules(settings, self.world)
        drawn = log.sampler_draws(settings.seed) if settings.seed is not None else 0
        self.sampler = ActionSampler(settings.seed, skip=drawn)
        self.seed = self.sampler.seed
        self.model_version = info.model_version
        self._lock = threading.Lock()
        self.learner: OnlineLearner | None = None
        if isinstance(policy, OnlinePolicy):
            self.learner = OnlineLearner(
                policy, self._lock, state_store, settings.state_save_every, n_updates, reward_seq
            )
        self._n_updates = n_updates  # an offline policy's constant
        self.decider = make_decider(policy, self.world, self.exploration)
        self._batcher = RequestBatcher(self.decide_requests)
        if self.decider is None:
            self._probabilities = serving_probabilities(
                policy, self.actions, info.settings.profile, _catalog(info)
            )
        self._warm_up()
        log.register_model(
            self.model_version,
            info.algorithm,
            info.model_sha256,
            info.action_names,
            **self.world.registration(),
        )
        if self.learner is not None:
            rewards = log.rewards_after(reward_seq, self.model_version)
            if self.learner.replay(rewards, self.reward_in_range):
                self.learner.save()  # the next restart starts from here
        self.window_closer = _reward_contract(self, settings, log)
        self.follower = _follow_shared_log(self, settings, log)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_settings(
        cls, settings: ServeSettings, metrics: Metrics | None = None
    ) -> DecisionService:
        """Load and verify the run, restore online state, build the explainer, open the log.

        The decision log is opened (and created) last, so a run or settings that cannot be
        served leave no database behind. An online policy starts from the newest intact
        snapshot of ``settings.state_dir`` (or from the run) and replays the rewards logged
        after it (:class:`DecisionService`).

        Args:
            settings: The service settings.
            metrics: Where to count decisions, explanations and rewards (default: new).

        Raises:
            ValueError: If the run directory is missing or invalid, its model file does not
                match its SHA-256, the state directory belongs to another model, or the
                decision log cannot be opened (or another server has it open).
        """
        from rec_env.serve.loading import load_service

        return load_service(cls, settings, metrics)

    def _warm_up(self) -> None:
        """Compile numba kernels now, not in the first requests.

        Runs the policy (and an explainer, if one is built already) once on a dummy customer;
        the policy's generator is put back, so warming up draws nothing.
        """
        generator = self.policy.random_.bit_generator
        state = generator.state
        dummy = np.zeros((2, self.world.n_features))
        if isinstance(self.decider, ItemDecider):
            allowed = self.world.request_allowed()
            self.decider.decide(dummy, allowed, np.zeros(2), top=1)
        elif isinstance(self.decider, SlateDecider):
            products = self.world.allowed_products()
            self.decider.decide(dummy, products, np.zeros((2, self.decider.draws)))
        else:
            self.policy.action_probabilities(dummy, self.actions.consent_masks(dummy))
        if self.world.kind != "strategy" and self.explainer is not None:
            self.explainer.warm_up()  # type: ignore[union-attr]
        elif self.explainer is not None:
            self.explainer.explain(dummy[:1])
        generator.state = state

    def close(self) -> None:
        """Stop closing windows, snapshot unsaved online updates and close the decision log."""
        if self.window_closer is not None:
            self.window_closer.stop()
        if self.follower is not None:
            self.follower.stop()
        try:
            if self.learner is not None:
                self.learner.save()
        finally:
            self.log.close()

    # ------------------------------------------------------------------ properties
    @property
    def assume_consent(self) -> tuple[str, ...]:
        """Channels on which unknown consent counts as given (default: none)."""
        return self.settings.assume_consent

    @property
    def online(self) -> bool:
        """True if the policy learns from rewards."""
        return self.learner is not None

    @property
    def n_updates(self) -> int:
        """Rewards the online policy has learned from (0 for an offline policy)."""
        return self.learner.n_updates if self.learner is not None else self._n_updates

    def reward_in_range(self, reward: float) -> bool:
        """True if ``reward`` is finite and within the operator's range."""
        low, high = self.settings.reward_min, self.settings.reward_max
        return math.isfinite(reward) and low <= reward <= high

    def action_index(self, name: str) -> int:
        """Index of the action ``name``.

        Raises:
            ActionNotAllowedError: If there is no such action.
        """
        try:
            return self.actions.index(name)
        except KeyError as exc:
            raise ActionNotAllowedError(exc.args[0]) from None

    def excludable_index(self, name: str) -> int:
        """Index of the action ``name``, which a caller wants to exclude.

        Raises:
            ActionNotAllowedError: If there is no such action, or it is the do-nothing action.
        """
        index = self.action_index(name)
        if index == self.actions.no_action:
            raise ActionNotAllowedError(
                f"{name} cannot be excluded: it is the fallback when nothing else is allowed"
            )
        return index

    def allowed_actions(
        self,
        obs: np.ndarray,
        excluded: np.ndarray | None = None,
        customer_ids: Sequence[str | None] | None = None,
    ) -> np.ndarray:
        """``(n, A)`` bool: consent, the business rules, not ``excluded``, and supported.

        A policy learned on some of the catalog's actions (its ``supported_actions``) keeps
        exploration to those and doing nothing.

        Args:
            obs: ``(n, F)`` features.
            excluded: ``(A,)`` or ``(n, A)`` bool, True for actions the caller excluded. The
                do-nothing action needs no consent and cannot be excluded, so every row keeps
                at least one allowed action.
            customer_ids: The customers' ids, for the rules' suppression list. (The holdout is
                :meth:`decide`'s: a held-out customer gets nothing whatever is allowed.)
        """
        allowed = consent_masks(self.world.consent(obs), self.actions.channel)
        if self.rules is not None:
            ids = None if customer_ids is None else np.array(customer_ids, dtype=object)
            allowed &= self.rules.masks(obs, ids)
        if excluded is not None:
            allowed &= ~excluded
        supported = self.policy.supported_actions
        if supported is not None:  # exploration too stays on what the policy was learned on
            allowed &= supported
        return allowed

    def held_out(self, customer_ids: Sequence[str | None] | None, n: int) -> np.ndarray:
        """``(n,)`` bool: the customers in the holdout (``--holdout``; none without an id)."""
        share = self.settings.holdout
        if share <= 0.0 or customer_ids is None:
            return np.zeros(n, dtype=bool)
        from rec_env.serve.scoring import holdout_flags

        ids = np.array(["" if c is None else str(c) for c in customer_ids], dtype=object)
        return holdout_flags(ids, share, self.settings.holdout_seed) & (ids != "")

    def describe_action(self, index: int) -> dict[str, Any]:
        """An action as the API shows it (:meth:`ServedWorld.describe_action`)."""
        return self.world.describe_action(index)

    # ------------------------------------------------------------------ decisions
    def decide(
        self,
        obs: np.ndarray,
        allowed: np.ndarray,
        customer_ids: Sequence[str | None] | None = None,
        *,
        reward_window_days: float | None = None,
        baseline: np.ndarray | None = None,
        baseline_propensities: Sequence[float | None] | np.ndarray | None = None,
    ) -> Decisions:
        """Decide for ``obs`` ``(n, 16)`` among ``allowed`` ``(n, A)`` and log the decisions.

        One call of the policy for the whole batch, exploration, one draw per customer from the
        seeded generator, and one transaction in the decision log. Customers in the holdout
        (``--holdout``, by ``customer_ids``) may get only no_action. ``reward_window_days`` is
        the request's own attribution window (default: the service's).

        **Apprentice mode** (``baseline`` given): the caller's own choices are served and logged
        with their propensities (``baseline_propensities``, default 1), the model's draws and
        probabilities beside them. A held-out customer still gets no_action, so that the
        holdout stays untouched whoever decides.

        Raises:
            BaselineNotAllowedError: If a baseline action is not allowed for its customer.
        """
        request = DecisionRequest(
            obs, None, customer_ids, reward_window_days, baseline, baseline_propensities
        )
        (outcome,) = self._decide([request], obs, allowed, customer_ids)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def decide_soon(self, request: DecisionRequest) -> Decisions:
        """Decide ``request`` with the others that reach the event loop with it; return once logged.

        The requests queued within a few polls of the loop are decided together
        (:meth:`decide_requests`, :mod:`rec_env.serve.decision_batch`) and share one commit.

        Raises:
            BaselineNotAllowedError: If a baseline action is not allowed for its customer.
        """
        return await self._batcher.submit(request)

    def decide_requests(
        self, requests: Sequence[DecisionRequest]
    ) -> list[Decisions | BaselineNotAllowedError]:
        """Decide several requests in one policy call, each logged as its own request.

        The masks (consent, rules, exclusions) are built for all their customers at once,
        and the actions are drawn in the order of ``requests``, as :meth:`decide` would draw
        them one request at a time. A request whose baseline is not allowed gets its error
        (and draws nothing); the others are decided.

        Returns:
            Per request, its decisions or its :class:`BaselineNotAllowedError`.
        """
        if len(requests) == 1:
            (request,) = requests
            obs, excluded, ids = request.obs, request.excluded, request.customer_ids
        else:
            obs = np.concatenate([r.obs for r in requests])
            excluded = _stacked_exclusions(requests, self.actions.n_actions)
            ids = _stacked_ids(requests)
        allowed = self.allowed_actions(obs, excluded, ids)
        return self._decide(requests, obs, allowed, ids)

    def _decide(
        self,
        requests: Sequence[DecisionRequest],
        obs: np.ndarray,
        allowed: np.ndarray,
        customer_ids: Sequence[str | None] | None,
    ) -> list[Decisions | BaselineNotAllowedError]:
        """Decide the customers of ``requests`` (stacked in ``obs``) and log each request."""
        n = obs.shape[0]
        held = self.held_out(customer_ids, n)
        if held.any():  # a held-out customer may get nothing else, and is logged so
            allowed = allowed.copy()
            allowed[held] = False
            allowed[held, self.actions.no_action] = True
        bounds = np.cumsum([0] + [r.obs.shape[0] for r in requests])
        outcomes: list[Decisions | BaselineNotAllowedError] = []
        refused: list[int] = []
        for i, request in enumerate(requests):
            error = self._refused_baseline(request, held, allowed, bounds[i])
            if error is not None:
                refused.append(i)
            outcomes.append(error)  # type: ignore[arg-type]
        if len(refused) == len(requests):
            return outcomes
        rows: np.ndarray | slice = slice(None)
        if refused:  # rare: decide only the others, so that the refused draw nothing
            keep = np.ones(n, dtype=bool)
            for i in refused:
                keep[bounds[i] : bounds[i + 1]] = False
            rows = np.flatnonzero(keep)
        with self._lock:
            policy_probabilities = self._probabilities(obs[rows], allowed[rows])
            probabilities = self.exploration.apply(policy_probabilities, allowed[rows])
            actions = self.sampler.sample(probabilities)
            n_updates = self.n_updates
        start = 0
        for i, request in enumerate(requests):
            if outcomes[i] is not None:
                continue
            stop = start + request.obs.shape[0]
            first = int(bounds[i])
            outcomes[i] = self._log_request(
                request,
                n_updates,
                allowed[first : first + stop - start],
                probabilities[start:stop],
                actions[start:stop],
                held[first : first + stop - start],
            )
            start = stop
        self.metrics.add_decisions(start)
        return outcomes

    def _refused_baseline(
        self, request: DecisionRequest, held: np.ndarray, allowed: np.ndarray, first: int
    ) -> BaselineNotAllowedError | None:
        """The error of ``request`` if a baseline action is not allowed, else None."""
        if request.baseline is None:
            return None
        n = request.obs.shape[0]
        baseline = np.asarray(request.baseline, dtype=np.intp)
        rows = slice(first, first + n)
        refused = ~held[rows] & ~allowed[rows][np.arange(n), baseline]
        if not refused.any():
            return None
        row = int(np.flatnonzero(refused)[0])
        return BaselineNotAllowedError(
            row,
            f"{self.actions.names[baseline[row]]} is not allowed for this customer "
            "(consent, business rules or excluded_actions)",
        )

    def _log_request(
        self,
        request: DecisionRequest,
        n_updates: int,
        allowed: np.ndarray,
        probabilities: np.ndarray,
        actions: np.ndarray,
        held: np.ndarray,
    ) -> Decisions:
        """Log one request's decisions (apprentice mode: serve its baseline instead)."""
        n = actions.shape[0]
        propensities = probabilities[np.arange(n), actions]
        policy_actions = None
        if request.baseline is not None:
            policy_actions = actions
            baseline = np.asarray(request.baseline, dtype=np.intp)
            actions = np.where(held, actions, baseline)
            given = request.baseline_propensities
            given = np.ones(n) if given is None else np.asarray(given, dtype=np.float64)
            propensities = np.where(held, propensities, given)
        event_ids = self.log.log_decisions(
            self.model_version,
            n_updates,
            request.obs,
            allowed,
            probabilities,
            actions,
            request.customer_ids,
            sampler_seed=self.settings.seed,
            holdout=held if held.any() else None,
            policy_actions=policy_actions,
            window_seconds=_seconds(request.reward_window_days),
            propensities=propensities,
        )
        return Decisions(event_ids, actions, propensities, probabilities, held, policy_actions)

    def decide_items(
        self,
        obs: np.ndarray,
        request_allowed: np.ndarray,
        customer_ids: Sequence[str | None] | None = None,
        top: int | None = None,
    ) -> ColumnarResult:
        """Decide one product action per customer of ``obs`` ``(n, F)`` and log the decisions.

        Args:
            obs: ``(n, F)`` features.
            request_allowed: ``(A,)`` bool, what the request allows before consent.
            customer_ids: Optional caller ids of the customers.
            top: Also give each customer's ``top`` most probable actions.
        """
        assert isinstance(self.decider, ItemDecider)
        decider = self.decider
        return self._decide_columnar(
            obs, customer_ids, lambda u: decider.decide(obs, request_allowed, u, top)
        )

    def decide_slates(
        self,
        obs: np.ndarray,
        allowed_products: np.ndarray,
        customer_ids: Sequence[str | None] | None = None,
    ) -> ColumnarResult:
        """Decide one slate message per customer of ``obs`` ``(n, F)`` and log the decisions.

        Args:
            obs: ``(n, F)`` features.
            allowed_products: ``(n_products,)`` bool, what the request allows.
            customer_ids: Optional caller ids of the customers.
        """
        assert isinstance(self.decider, SlateDecider)
        decider = self.decider
        return self._decide_columnar(
            obs, customer_ids, lambda u: decider.decide(obs, allowed_products, u)
        )

    def _decide_columnar(
        self,
        obs: np.ndarray,
        customer_ids: Sequence[str | None] | None,
        decide: Callable[[np.ndarray], ItemOutcome | SlateOutcome],
    ) -> ColumnarResult:
        """Draw the uniforms, decide under the policy lock, and log in one transaction."""
        assert self.decider is not None
        n, draws = obs.shape[0], self.decider.draws
        with self._lock:
            uniforms = self.sampler.random.random((n, draws) if draws > 1 else n)
            outcome = decide(uniforms)
            n_updates = self.n_updates
        event_ids = self.log.log_columnar(
            self.model_version,
            n_updates,
            obs,
            outcome.columns,
            customer_ids,
            sampler_seed=self.settings.seed,
        )
        self.metrics.add_decisions(n)
        return ColumnarResult(event_ids, outcome)

    def explain(
        self, obs: np.ndarray, action: int | None, excluded: np.ndarray, top: int | None = None
    ) -> dict[str, Any]:
        """SHAP explanation of ``action`` (default: the most likely allowed one) for one customer.

        Args:
            obs: ``(1, 16)`` features.
            action: Action index to explain, or None.
            excluded: ``(1, A)`` bool, True for actions the caller excluded.
            top: Keep the ``top`` largest contributions.

        Raises:
            RuntimeError: If the service was started without an explainer.
        """
        if self.explainer is None:
            raise RuntimeError("explanations are disabled (explain = false)")
        actions = None if action is None else np.array([action])
        if self.online:  # the explainer reads learned state that updates change
            with self._lock:
                explanation = self.explainer.explain(obs, actions=actions, excluded=excluded)
        else:
            explanation = self.explainer.explain(obs, actions=actions, excluded=excluded)
        self.metrics.add_explanation()
        return self.explainer.as_dict(explanation, i=0, top=top)

    def explain_item(
        self, obs: np.ndarray, action: str | None, allowed: np.ndarray | None
    ) -> ItemExplanation:
        """Why this product (item and slate runs): Shapley values of the decision's contrast.

        Args:
            obs: ``(1, F)`` features.
            action: Action name (item world) or product id (slate world) to explain, or None
                for the policy's own choice.
            allowed: What the request allows before consent: ``(A,)`` actions (item world) or
                ``(n_products,)`` products (slate world).

        Raises:
            RuntimeError: If the service has no item explainer.
            ValueError: If ``action`` is not allowed, or the decision has nothing to contrast.
        """
        if self.explainer is None or self.world.kind == "strategy":
            raise RuntimeError("no explainer of item decisions")
        explanation = self.explainer.explain(obs, action, allowed)  # type: ignore[call-arg, arg-type]
        self.metrics.add_explanation()
        return explanation  # type: ignore[return-value]

    # ------------------------------------------------------------------ rewards
    def reward(self, event_id: str, reward: float, part_id: str | None = None) -> RewardOutcome:
        """Record a decision's reward and let an online policy learn from it, exactly once.

        A decision logged with a window gets the reward as a part (``part_id``), learned when
        the window closes (:mod:`rec_env.serve.rewards`), not now.
        A reward for a decision of another model version is logged but not learned from. For an
        online policy, logging the reward and learning it happen under one lock, so the policy
        learns rewards in the order of their seqs, as a replay of the log after a restart does;
        a snapshot, if due, is written after the lock is released.

        Raises:
            RewardOutOfRangeError: If the reward is not finite or outside ``[reward_min,
                reward_max]`` (nothing is logged or learned).
            UnknownEventError: If no decision has this id.
            RewardConflictError: If the decision already has a different reward, needs an
                activation (``NotActivatedError``) or its window is over (``LateRewardError``).
        """
        if not self.reward_in_range(reward):
            self.metrics.add_reward("out_of_range")
            raise RewardOutOfRangeError(reward, self.settings.reward_min, self.settings.reward_max)
        if self.learner is None:
            receipt = self._record_reward(event_id, reward, part_id)
            return RewardOutcome(receipt, False, self.n_updates)
        record = functools.partial(self._record_reward, event_id, reward, part_id)
        if self.log.shared:  # other replicas' rewards come first, in seq order
            from rec_env.serve.log_follower import record_and_catch_up

            return RewardOutcome(*record_and_catch_up(self, record))
        return RewardOutcome(*self.learner.record_and_learn(record, self.model_version))

    def _record_reward(
        self, event_id: str, reward: float, part_id: str | None = None
    ) -> RewardReceipt:
        """Log a reward and count it by outcome."""
        try:
            receipt = self.log.record_reward(event_id, reward, part_id)
        except UnknownEventError:
            self.metrics.add_reward("unknown")
            raise
        except RewardConflictError:
            self.metrics.add_reward("conflict")
            raise
        self.metrics.add_reward("duplicate" if receipt.duplicate else "recorded", reward)
        return receipt


def _stacked_exclusions(requests: Sequence[DecisionRequest], n_actions: int) -> np.ndarray | None:
    """``(n, A)`` bool exclusions of the stacked customers of ``requests`` (None: none)."""
    if all(r.excluded is None for r in requests):
        return None
    return np.concatenate(
        [
            np.broadcast_to(
                np.zeros(n_actions, dtype=bool) if r.excluded is None else r.excluded,
                (r.obs.shape[0], n_actions),
            )
            for r in requests
        ]
    )


def _stacked_ids(requests: Sequence[DecisionRequest]) -> list[str | None] | None:
    """The stacked customers' ids (None where a request has none; None if none has any)."""
    if all(r.customer_ids is None for r in requests):
        return None
    ids: list[str | None] = []
    for r in requests:
        ids.extend(r.customer_ids if r.customer_ids is not None else [None] * r.obs.shape[0])
    return ids


def _seconds(days: float | None) -> float | None:
    """A request's window in seconds (None: the service's)."""
    return None if days is None else days * DAY_SECONDS


def _reward_contract(service: DecisionService, settings: ServeSettings, log: DecisionLog) -> Any:
    """Log new requests under the settings' reward terms; start closing windows in background.

    Returns:
        The running :class:`~rec_env.serve.rewards.WindowCloser`, or None (interval 0).
    """
    from rec_env.serve.rewards import WindowCloser

    days = settings.reward_window_days
    log.terms = RewardTerms(
        None if days is None else days * DAY_SECONDS, settings.require_activation
    )
    if settings.window_close_interval <= 0:
        return None
    closer = WindowCloser(service, settings.window_close_interval)
    closer.start()
    return closer


def _follow_shared_log(service: DecisionService, settings: ServeSettings, log: DecisionLog) -> Any:
    """Catch an online policy up with a shared log's rewards every ``refresh_seconds``.

    Returns:
        The running :class:`~rec_env.serve.log_follower.LogFollower`, or None (an offline
        policy, a log of this server alone, or an interval of 0).
    """
    if service.learner is None or not log.shared or settings.refresh_seconds <= 0:
        return None
    from rec_env.serve.log_follower import LogFollower

    follower = LogFollower(service, settings.refresh_seconds)
    follower.start()
    return follower


def _rules(settings: ServeSettings, world: ServedWorld) -> Any:
    """The compiled business rules of ``settings.rules`` (strategy runs), or None.

    Raises:
        ValueError: For rules, a holdout or apprentice mode with an item or slate run, or an
            invalid rules file (naming it).
    """
    if world.kind != "strategy" and settings.holdout > 0:
        raise ValueError(f"--holdout applies to strategy runs; this is an {world.kind} run")
    if world.kind != "strategy" and settings.apprentice:
        raise ValueError(f"--apprentice applies to strategy runs; this is an {world.kind} run")
    if settings.rules is None:
        return None
    if world.kind != "strategy":
        raise ValueError(f"--rules applies to strategy runs; this is an {world.kind} run")
    from rec_env.rules import load_rules

    return load_rules(settings.rules, world.actions)
