"""Item and slate baselines (issue 11, section 4) and the registry for item worlds."""

from __future__ import annotations

import numpy as np
import pytest

from rec_env.agents.base import Policy
from rec_env.agents.item_baselines import (
    ItemSimilarity,
    MostPopular,
    PopularInCategory,
    RandomProducts,
    top_k_products,
)
from rec_env.agents.item_oracles import DiverseOracle
from rec_env.agents.registry import (
    ITEM_BASELINES,
    SLATE_BASELINES,
    make_bandit,
    make_baseline,
)
from rec_env.features import CHANNELS, CONSENT_FEATURES
from rec_env.item_actions import action_features
from rec_env.rollout import Cohort, run_cohort
from rec_env.settings import EnvSettings

NO_CHANNEL = len(CHANNELS)
RATES = ("email_opens", "sms_response", "push_response")


@pytest.fixture(scope="module")
def item_model():
    return EnvSettings(world="item").build_model()


@pytest.fixture(scope="module")
def slate_model():
    return EnvSettings(world="slate").build_model()


def cohort_with_random_consent(model, n: int, seed: int) -> Cohort:
    """A cohort whose consent flags are random, every customer ready for a message."""
    cohort = Cohort(model, n, seed)
    rng = np.random.default_rng(seed)
    for name in CONSENT_FEATURES:
        cohort.batch.feature(name)[:] = rng.random(n) < 0.5
    cohort.batch.feature("days_since_contact")[:] = 60.0
    cohort.batch.feature("contacts_last_30d")[:] = 0.0
    return cohort


def category_obs(model, obs: np.ndarray, kind: str, values: np.ndarray) -> np.ndarray:
    """``obs`` with the ``kind_<category>`` columns replaced by ``values`` ``(n, C)``."""
    obs = obs.copy()
    names = list(model.feature_names)
    for c, category in enumerate(model.products.category_names):
        obs[:, names.index(f"{kind}_{category}")] = values[:, c]
    return obs


def chosen(model, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return model.actions.product[actions], model.actions.channel[actions]


def test_popular_sends_the_most_popular_allowed_product_on_the_best_channel(item_model) -> None:
    cohort = cohort_with_random_consent(item_model, 400, seed=1)
    obs, masks = cohort.observation(), cohort.action_masks()
    rng = np.random.default_rng(2)
    masks[:, 1:] &= rng.random((400, item_model.actions.n_actions - 1)) < 0.7
    policy = make_baseline("popular", item_model)
    products, channels = chosen(item_model, policy.predict(obs, masks))
    popularity, table = item_model.products.popularity, item_model.actions
    consent = obs[:, [item_model.feature_names.index(f) for f in CONSENT_FEATURES]] > 0.5
    sent = products >= 0
    assert sent.sum() > 300 and not sent[~consent.any(axis=1)].any()
    rates = obs[:, [item_model.feature_names.index(f) for f in RATES]].astype(float)
    usable = np.stack([(masks[:, 1:] & (table.channel[1:] == c)).any(1) for c in range(3)], 1)
    best_channel = np.argmax(np.where(usable & consent, rates, -np.inf), axis=1)
    assert np.array_equal(channels[sent], best_channel[sent])
    for i in np.flatnonzero(sent):
        on_channel = masks[i, 1:] & (table.channel[1:] == channels[i])
        assert popularity[products[i]] == popularity[table.product[1:][on_channel]].max()


def test_favourite_category_follows_purchases_then_recency_then_popularity(item_model) -> None:
    obs = Cohort(item_model, 36, seed=3).observation()
    obs[:, item_model.feature_names.index("days_since_contact")] = 60.0
    obs[:, item_model.feature_names.index("consent_email")] = 1.0
    n_cat = item_model.products.n_categories
    favourite = np.arange(36) % n_cat
    purchases = np.zeros((36, n_cat))
    purchases[:12, :] = 0.2
    purchases[np.arange(12), favourite[:12]] = 0.9  # by decayed purchases
    days = np.full((36, n_cat), 365.0)
    days[12:24, :] = 200.0
    days[np.arange(12, 24), favourite[12:24]] = 10.0  # no purchase left: the most recent
    obs = category_obs(item_model, obs, "purchases", purchases)
    obs = category_obs(item_model, obs, "days_since", days)
    policy = make_baseline("popular_category", item_model)
    products, _ = chosen(item_model, policy.predict(obs))
    categories = item_model.products.category[products]
    assert np.array_equal(categories[:24], favourite[:24])
    most_popular = int(np.argmax(item_model.products.popularity))
    assert np.all(products[24:] == most_popular)  # no history: overall popularity
    in_category = item_model.products.category == favourite[0]
    best = np.flatnonzero(in_category)[np.argmax(item_model.products.popularity[in_category])]
    assert products[0] == best


def test_item_similarity_recommends_what_is_closest_to_the_purchase_profile(item_model) -> None:
    obs = Cohort(item_model, 120, seed=4).observation()
    obs[:, item_model.feature_names.index("days_since_contact")] = 60.0
    obs[:, item_model.feature_names.index("consent_email")] = 1.0
    n_cat = item_model.products.n_categories
    bought = np.arange(120) % n_cat
    purchases = np.zeros((120, n_cat))
    purchases[np.arange(120), bought] = 1.0
    obs = category_obs(item_model, obs, "purchases", purchases)
    policy = make_baseline("item_similarity", item_model)
    products, _ = chosen(item_model, policy.predict(obs))
    assert (products >= 0).all()
    same = item_model.products.category[products] == bought
    assert same.mean() > 0.9  # "bought X, so Y": Y is close to X, mostly in its category
    unit = item_model.arrays.topics
    centroid = np.array([unit[item_model.products.category == c].mean(0) for c in bought])
    cosine = (centroid / np.linalg.norm(centroid, axis=1, keepdims=True)) @ unit.T
    assert np.all(cosine[np.arange(120), products] >= cosine.max(axis=1) - 1e-3)


def test_content_baselines_rest_between_messages_unless_told_to_always_send(item_model) -> None:
    obs = Cohort(item_model, 50, seed=5).observation()
    obs[:, item_model.feature_names.index("consent_email")] = 1.0
    obs[:, item_model.feature_names.index("days_since_contact")] = 7.0
    for name in ("popular", "popular_category", "item_similarity"):
        assert np.all(make_baseline(name, item_model).predict(obs) == 0)
        eager = make_baseline(name, item_model, min_days_between_contacts=None)
        assert np.all(eager.predict(obs) > 0)


def test_diverse_oracle_never_recommends_a_category_in_cool_down(item_model) -> None:
    seen: list[tuple[np.ndarray, np.ndarray]] = []

    class Recording(DiverseOracle):
        def _predict(self, obs, masks, deterministic):
            actions = super()._predict(obs, masks, deterministic)
            seen.append((obs.copy(), actions))
            return actions

    policy = Recording.from_model(item_model)
    result = run_cohort(item_model, policy, 300, 12, seed=6)
    boredom = [item_model.feature_names.index(f"recommended_{c}") for c in policy.category_names]
    categories_by_cycle = []
    for obs, actions in seen:
        products = item_model.actions.product[actions]
        sent = products >= 0
        category = np.where(sent, item_model.products.category[products.clip(0)], -1)
        state = obs[np.flatnonzero(sent), np.asarray(boredom)[category[sent]]]
        assert np.all(state <= policy.boredom_threshold)
        categories_by_cycle.append(category)
    # as documented: a category shown in cycle t is not shown again in t + 1 or t + 2
    history = np.array(categories_by_cycle)
    history[np.arange(len(seen))[:, None] >= result.cycles[None, :]] = -1  # after churn
    for lag in (1, 2):
        repeat = (history[lag:] == history[:-lag]) & (history[lag:] >= 0)
        assert not repeat.any()
    plain = make_baseline("oracle", item_model)
    cohort = Cohort(item_model, 300, seed=6)
    plain.set_env(cohort)
    first = item_model.actions.product[plain.predict(cohort.observation(), cohort.action_masks())]
    assert (first >= 0).mean() > 0.5  # the oracle sends; its repeats are what the cool-down stops


@pytest.mark.parametrize("world", ["item", "slate"])
def test_no_baseline_messages_a_channel_without_consent_when_masks_are_omitted(
    world, item_model, slate_model
) -> None:
    model = item_model if world == "item" else slate_model
    cohort = cohort_with_random_consent(model, 300, seed=7)
    obs = cohort.observation()
    consent = obs[:, [model.feature_names.index(f) for f in CONSENT_FEATURES]] > 0.5
    names = ITEM_BASELINES if world == "item" else SLATE_BASELINES
    for name in names:
        policy = make_baseline(name, model, seed=0)
        if hasattr(policy, "set_env"):
            policy.set_env(cohort)
        if world == "item" or not hasattr(policy, "predict_slates"):
            _, channels = chosen(model, policy.predict(obs, deterministic=False))
            ok = (channels == NO_CHANNEL) | consent[np.arange(300), channels.clip(0, 2)]
            assert ok.all(), name
        if hasattr(policy, "predict_slates"):
            slates, channels, _ = policy.predict_slates(obs)
            ok = (channels == NO_CHANNEL) | consent[np.arange(300), channels.clip(0, 2)]
            assert ok.all() and (channels != NO_CHANNEL).any(), name
            assert np.all((slates[:, 0] >= 0) == (channels != NO_CHANNEL)), name


def test_slate_versions_show_distinct_allowed_products_best_first(slate_model) -> None:
    cohort = cohort_with_random_consent(slate_model, 200, seed=8)
    obs = cohort.observation()
    allowed = slate_model.allowed_products(cohort.batch)
    allowed[:, np.argsort(slate_model.products.popularity)[-2:]] = False  # the top two are out
    slates, channels, discounts = make_baseline("popular", slate_model).predict_slates(obs, allowed)
    sent = channels != NO_CHANNEL
    expected = np.argsort(-slate_model.products.popularity * allowed, axis=1)[:, :4]
    assert np.array_equal(slates[sent], expected[sent]) and np.all(discounts == 0.0)
    favourite = make_baseline("popular_category", slate_model).predict_slates(obs, allowed)[0]
    oracle = make_baseline("oracle", slate_model)
    oracle.set_env(cohort)
    for slate in (slates, favourite, oracle.predict_slates(obs, allowed)[0]):
        shown = slate >= 0
        assert np.all(np.take_along_axis(allowed, slate.clip(0), axis=1)[shown])
        ordered = np.sort(np.where(shown, slate, -1 - np.arange(4)), axis=1)
        assert np.all(ordered[:, 1:] != ordered[:, :-1])  # no product twice in a slate


def test_top_k_products_breaks_ties_by_index_and_pads_with_minus_one() -> None:
    scores = np.array([[1.0, 3.0, 3.0, -np.inf], [-np.inf, -np.inf, 2.0, -np.inf]])
    assert top_k_products(scores, 3).tolist() == [[1, 2, 0], [2, -1, -1]]


def test_random_products_are_seeded_and_save_load_round_trips(slate_model, tmp_path) -> None:
    obs = cohort_with_random_consent(slate_model, 100, seed=9).observation()
    a, b = (RandomProducts.from_model(slate_model, random_state=3) for _ in range(2))
    pairs = zip(a.predict_slates(obs), b.predict_slates(obs), strict=True)
    assert all(np.array_equal(x, y) for x, y in pairs)
    for cls in (MostPopular, PopularInCategory, ItemSimilarity):
        policy = cls.from_model(slate_model)
        policy.save(tmp_path / cls.algorithm)
        loaded = cls.load(tmp_path / cls.algorithm)
        assert np.array_equal(loaded.predict(obs), policy.predict(obs))
        assert np.array_equal(loaded.predict_slates(obs)[0], policy.predict_slates(obs)[0])
    oracle = DiverseOracle.from_model(slate_model, boredom_threshold=0.3)
    oracle.save(tmp_path / "diverse")
    assert DiverseOracle.load(tmp_path / "diverse").boredom_threshold == 0.3


def test_registry_builds_item_policies_on_the_item_features(item_model, slate_model) -> None:
    for name in ITEM_BASELINES:
        policy = make_baseline(name, item_model, seed=0)
        assert isinstance(policy, Policy) and policy.features.names == item_model.feature_names
    for name in SLATE_BASELINES:
        assert isinstance(make_baseline(name, slate_model, seed=0), Policy)
    for name in ("rule", "best_fixed"):
        with pytest.raises(ValueError, match="makes no sense in the item world"):
            make_baseline(name, item_model)
    with pytest.raises(ValueError, match="makes no sense in the slate world"):
        make_baseline("cooldown", slate_model)
    with pytest.raises(ValueError, match="makes no sense in the strategy world"):
        make_baseline("popular", EnvSettings().build_model())
    with pytest.raises(ValueError, match="takes no options"):
        make_baseline("random", item_model, boredom_threshold=0.5)
    bandit = make_bandit("linucb", item_model, 0)
    assert bandit.features == make_baseline("popular", item_model).features
    assert np.array_equal(bandit.features.high, item_model.obs_high)
    with pytest.raises(ValueError, match="slate world"):
        make_bandit("linucb", slate_model, 0)


def test_registry_gives_hybrid_bandits_the_products_features(item_model) -> None:
    expected = action_features(item_model.products, item_model.actions)
    for name in ("hybrid_linucb", "hybrid_lin_ts"):
        bandit = make_bandit(name, item_model, 0, per_action=False)
        assert np.array_equal(bandit.action_features, expected)
        obs = cohort_with_random_consent(item_model, 50, seed=10).observation()
        actions = bandit.predict(obs)
        consent = obs[:, [item_model.feature_names.index(f) for f in CONSENT_FEATURES]] > 0.5
        channels = item_model.actions.channel[actions]
        assert np.all((channels == NO_CHANNEL) | consent[np.arange(50), channels.clip(0, 2)])
