"""Loading the decision service: the verified run, its world, online state, explainer and log.

:func:`load_service` is :meth:`DecisionService.from_settings
<rec_env.serve.service.DecisionService.from_settings>`.

**A lean replica.** A process that only decides loads neither torch, shap nor scikit-learn:

* the run loads with ``load_run(..., lean=True)``: a PPO, A2C or MaskablePPO run decides with
  its actor's numpy copy (``network.npz``), with the probabilities of the torch path bit for
  bit. A run written before that file existed (or without an exact copy) loads through torch,
  and the log says so;
* the explainer is a :class:`LazyExplainer`, built by the first request that explains (once,
  whichever thread asks first): only then are its background drawn and shap (with
  scikit-learn and pandas) imported.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rec_env.agents.base import OnlinePolicy, Policy
from rec_env.agents.runs import RunInfo, load_run
from rec_env.agents.sb3.network_policy import NETWORK_ALGORITHMS, NETWORK_FILE, NetworkPolicy
from rec_env.datasets.decision_log_backend import describe
from rec_env.serve.decision_log import DecisionLog
from rec_env.serve.metrics import Metrics
from rec_env.serve.settings import ServeSettings
from rec_env.serve.state import PolicyStateStore, RestoredState
from rec_env.serve.world import ServedWorld

if TYPE_CHECKING:  # pragma: no cover
    from rec_env.agents.explain.explainer import PolicyExplainer
    from rec_env.agents.explain.items import ItemExplainer
    from rec_env.serve.service import DecisionService

__all__ = ["LazyExplainer", "load_service"]

logger = logging.getLogger("rec_env.serve")


class LazyExplainer:
    """An explainer built by the first call that needs it: once, whichever thread asks first.

    Every attribute is the built explainer's (``explain``, ``as_dict``, ``background``…), so the
    service uses it as it would the explainer itself. A build that fails raises to its caller
    and is tried again by the next one.

    Args:
        build: Builds the explainer (a :class:`PolicyExplainer` or an :class:`ItemExplainer`).
    """

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build = build
        self._explainer: Any = None
        self._lock = threading.Lock()

    @property
    def built(self) -> bool:
        """True once the explainer exists."""
        return self._explainer is not None

    def get(self) -> Any:
        """The explainer, built now if it is not yet."""
        explainer = self._explainer
        if explainer is None:
            with self._lock:
                if self._explainer is None:
                    self._explainer = self._build()
                explainer = self._explainer
        return explainer

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # not set yet (copying): not the explainer's
            raise AttributeError(name)
        return getattr(self.get(), name)


def _explainable(policy: Policy, world: ServedWorld) -> bool:
    """True if the run can be explained: every strategy run, item and slate runs of SB3 networks.

    Checked at startup, so that a run that cannot be gets 503 as with explanations off.
    """
    if world.kind == "strategy":
        return True
    from rec_env.agents.explain.items import explainable

    return explainable(policy)


def _explainer(
    settings: ServeSettings, info: RunInfo, policy: Policy, world: ServedWorld
) -> PolicyExplainer | ItemExplainer:
    """The explainer of ``policy`` (the :class:`LazyExplainer`'s build).

    Strategy runs get a :class:`PolicyExplainer`; item and slate runs an
    :class:`~rec_env.agents.explain.items.ItemExplainer` (why this product rather than the
    runner-up, ``recenv explain``'s), against customers in operation in the item world.
    """
    if world.kind != "strategy":
        from rec_env.agents.explain.background import operating_background
        from rec_env.agents.explain.items import ItemExplainer

        item_world = world.model if world.kind == "item" else None
        if item_world is None:  # customers in operation come from single-product steps
            item_world = info.settings.replace(world="item").build_model()
        background = operating_background(
            settings.n_background, model=item_world, seed=settings.explain_seed
        )
        return ItemExplainer(policy, world.model, background)  # its limit, MAX_PLAYERS
    from rec_env.agents.explain.explainer import PolicyExplainer

    return PolicyExplainer(
        policy,
        n_background=settings.n_background,
        population=info.settings.profile,
        catalog=info.settings.catalog,
        seed=settings.explain_seed,
    )


def _load_policy(settings: ServeSettings) -> tuple[Policy, RunInfo]:
    """The run's verified policy, torch-free where the run allows (module docstring)."""
    policy, info = load_run(settings.model_dir, verify=True, lean=True)
    copyable = info.algorithm in NETWORK_ALGORITHMS and info.settings.world != "slate"
    if copyable and not isinstance(policy, NetworkPolicy):  # slate actors decode through torch
        logger.warning(
            "%s: no %s (a run written before it existed, or whose network has no exact numpy "
            "copy): serving through torch, which takes some 300 MB more memory; retrain "
            "the run to serve it without",
            settings.model_dir,
            NETWORK_FILE,
        )
    return policy, info


def load_service(
    cls: type[DecisionService], settings: ServeSettings, metrics: Metrics | None = None
) -> Any:
    """Load and verify the run, restore online state, open the log; explain lazily.

    The run's world is checked (its product table against its actions) and the decision log is
    opened (and created) last, so a run or settings that cannot be served leave no database
    behind. The explainer (if ``settings.explain`` and the run can be explained) is attached
    after the service's warm-up, unbuilt (:class:`LazyExplainer`). See
    :meth:`rec_env.serve.service.DecisionService.from_settings`.
    """
    policy, info = _load_policy(settings)
    world = ServedWorld.from_run(info, settings.model_dir)
    world.check_policy(policy, settings.model_dir)
    store: PolicyStateStore | None = None
    restored: RestoredState | None = None
    if isinstance(policy, OnlinePolicy) and settings.state_dir is not None:
        store = PolicyStateStore(settings.state_dir, info.algorithm, info.model_sha256)
        restored = store.load()
    explain = settings.explain and _explainable(policy, world)
    log = DecisionLog(settings.db, wal_max_bytes=settings.wal_max_bytes, exclusive=True)
    try:
        if store is not None:
            store.log_id = log.log_id
            if restored is not None and restored.log_id != log.log_id:
                raise ValueError(
                    f"{settings.state_dir}: holds the state learned from another decision "
                    f"log than {describe(settings.db)}; use the --state-dir of that log, or a "
                    "fresh one"
                )
        last_seq = log.last_reward_seq()
        if store is not None and restored is not None and restored.reward_seq > last_seq:
            # the log lost its last commits (power loss) or is another database: the
            # snapshot learned rewards the log does not hold, so start from an older one
            restored = store.load(max_reward_seq=last_seq)
        if restored is None:
            service = cls(policy, info, settings, log, None, store, metrics=metrics, world=world)
        else:
            service = cls(
                restored.policy, info, settings, log, None, store, restored.n_updates,
                metrics, restored.reward_seq, world,
            )  # fmt: skip
    except BaseException:
        log.close()
        raise
    if explain:  # after the warm-up, which would build it; of the policy served
        service.explainer = LazyExplainer(lambda: _explainer(settings, info, service.policy, world))
    return service
