"""Loading the decision service: the verified run, its world, online state, explainer and log.

:func:`load_service` is :meth:`DecisionService.from_settings
<rec_env.serve.service.DecisionService.from_settings>`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rec_env.agents.base import OnlinePolicy, Policy
from rec_env.agents.runs import RunInfo, load_run
from rec_env.serve.decision_log import DecisionLog
from rec_env.serve.metrics import Metrics
from rec_env.serve.settings import ServeSettings
from rec_env.serve.state import PolicyStateStore, RestoredState
from rec_env.serve.world import ServedWorld

if TYPE_CHECKING:  # pragma: no cover
    from rec_env.agents.explain.explainer import PolicyExplainer
    from rec_env.agents.explain.items import ItemExplainer
    from rec_env.serve.service import DecisionService

__all__ = ["load_service"]


def _explainer(
    settings: ServeSettings, info: RunInfo, policy: Policy, world: ServedWorld
) -> PolicyExplainer | ItemExplainer | None:
    """The explainer of ``policy``, or None if explanations are off or the policy cannot be.

    Strategy runs get a :class:`PolicyExplainer`; item and slate runs an
    :class:`~rec_env.agents.explain.items.ItemExplainer` (why this product rather than the
    runner-up, ``recenv explain``'s) if the policy is an SB3 network, against customers in
    operation in the item world.
    """
    if not settings.explain:
        return None
    if world.kind != "strategy":
        from rec_env.agents.explain.background import operating_background
        from rec_env.agents.explain.items import ItemExplainer, explainable

        if not explainable(policy):
            return None
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


def load_service(
    cls: type[DecisionService], settings: ServeSettings, metrics: Metrics | None = None
) -> Any:
    """Load and verify the run, restore online state, build the explainer, open the log.

    The run's world is checked (its product table against its actions) and the decision log is
    opened (and created) last, so a run or settings that cannot be served leave no database
    behind. See :meth:`rec_env.serve.service.DecisionService.from_settings`.
    """
    policy, info = load_run(settings.model_dir, verify=True)
    world = ServedWorld.from_run(info, settings.model_dir)
    world.check_policy(policy, settings.model_dir)
    store: PolicyStateStore | None = None
    restored: RestoredState | None = None
    if isinstance(policy, OnlinePolicy) and settings.state_dir is not None:
        store = PolicyStateStore(settings.state_dir, info.algorithm, info.model_sha256)
        restored = store.load()
    explainer = _explainer(settings, info, restored.policy if restored else policy, world)
    log = DecisionLog(settings.db, wal_max_bytes=settings.wal_max_bytes, exclusive=True)
    try:
        if store is not None:
            store.log_id = log.log_id
            if restored is not None and restored.log_id != log.log_id:
                raise ValueError(
                    f"{settings.state_dir}: holds the state learned from another decision "
                    f"log than {settings.db}; use the --state-dir of that log, or a fresh one"
                )
        last_seq = log.last_reward_seq()
        if store is not None and restored is not None and restored.reward_seq > last_seq:
            # the log lost its last commits (power loss) or is another database: the
            # snapshot learned rewards the log does not hold, so start from an older one
            restored = store.load(max_reward_seq=last_seq)
            explainer = _explainer(settings, info, restored.policy if restored else policy, world)
        if restored is None:
            return cls(policy, info, settings, log, explainer, store, metrics=metrics, world=world)
        return cls(
            restored.policy, info, settings, log, explainer, store, restored.n_updates,
            metrics, restored.reward_seq, world,
        )  # fmt: skip
    except BaseException:
        log.close()
        raise
