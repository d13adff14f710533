"""A policy learned on some catalog actions, deciding over the whole catalog."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rec_env.agents.baselines import RandomPolicy
from rec_env.agents.integrity import load_policy
from rec_env.agents.offline import learn
from rec_env.agents.offline.catalog import CatalogPolicy
from rec_env.agents.offline.synthetic import SYNTHETIC_ACTIONS, synthetic_campaign
from rec_env.datasets.logged import LoggedBanditData
from rec_env.features import FEATURE_NAMES
from rec_env.settings import EnvSettings

ACTIONS = EnvSettings().build_model().actions


@pytest.fixture(scope="module")
def learned() -> tuple:
    campaign = synthetic_campaign(3000, seed=4)
    data = LoggedBanditData(
        contexts=campaign.contexts,
        actions=campaign.actions,
        propensities=campaign.propensities,
        rewards=campaign.rewards,
        n_actions=len(SYNTHETIC_ACTIONS),
        action_names=SYNTHETIC_ACTIONS,
        feature_names=tuple(FEATURE_NAMES),
    )
    return campaign, learn("reward_model", data)


def test_probabilities_sit_on_the_learned_columns(learned: tuple) -> None:
    campaign, policy = learned
    wrapped = CatalogPolicy.wrap(policy, ACTIONS.names, ACTIONS.channel_names)
    probabilities = wrapped.action_probabilities(campaign.contexts[:200])
    columns = [ACTIONS.names.index(a) for a in SYNTHETIC_ACTIONS]
    assert np.allclose(probabilities.sum(axis=1), 1.0)
    others = np.setdiff1d(np.arange(ACTIONS.n_actions), columns)
    assert not probabilities[:, others].any()
    assert np.array_equal(
        probabilities[:, columns], policy.action_probabilities(campaign.contexts[:200])
    )
    assert wrapped.supported_actions.sum() == len(SYNTHETIC_ACTIONS)


def test_saves_and_loads_without_pickle(learned: tuple, tmp_path: Path) -> None:
    campaign, policy = learned
    wrapped = CatalogPolicy.wrap(policy, ACTIONS.names, ACTIONS.channel_names)
    wrapped.save(tmp_path / "p")
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["policy.json", "state.npz"]
    loaded = load_policy(tmp_path / "p")
    assert isinstance(loaded, CatalogPolicy)
    assert loaded.weights_sha256() == wrapped.weights_sha256()
    assert np.array_equal(loaded.predict(campaign.contexts), wrapped.predict(campaign.contexts))


def test_a_row_with_nothing_learned_allowed_falls_back_or_fails(learned: tuple) -> None:
    campaign, policy = learned
    wrapped = CatalogPolicy.wrap(policy, ACTIONS.names, ACTIONS.channel_names)
    masks = np.zeros((3, ACTIONS.n_actions), dtype=bool)
    masks[:, ACTIONS.no_action] = True
    assert (wrapped.predict(campaign.contexts[:3], masks) == ACTIONS.no_action).all()
    masks[:, ACTIONS.no_action] = False
    masks[:, ACTIONS.names.index("discount_10_sms")] = True
    with pytest.raises(ValueError, match="none of the learned actions"):
        wrapped.predict(campaign.contexts[:3], masks)


def test_refuses_what_it_cannot_hold(learned: tuple) -> None:
    _, policy = learned
    with pytest.raises(ValueError, match="not in the catalog"):
        CatalogPolicy.wrap(policy, ACTIONS.names[:3], ACTIONS.channel_names[:3])
    with pytest.raises(ValueError, match="fallback 'nothing'"):
        CatalogPolicy.wrap(policy, ACTIONS.names, ACTIONS.channel_names, fallback="nothing")
    wrapped = CatalogPolicy.wrap(policy, ACTIONS.names, ACTIONS.channel_names)
    with pytest.raises(ValueError, match="cannot hold another"):
        CatalogPolicy.wrap(wrapped, ACTIONS.names, ACTIONS.channel_names)
    with pytest.raises(ValueError, match="only policies saved as"):
        CatalogPolicy.wrap(RandomPolicy(2, ["no_action", "discount_10_email"]), ACTIONS.names)
    with pytest.raises(ValueError, match="cannot hold another"):
        CatalogPolicy(16, ACTIONS.names, inner={"algorithm": "catalog_subset", "config": {}})
