"""The item world's factored actor head (ProductHead): formula, SB3 training, saving, numpy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import rec_env
from rec_env import ConfigError
from rec_env.agents.sb3 import MaskablePPOPolicy, SB3Policy, train_sb3
from rec_env.agents.sb3.heads import ProductHead
from rec_env.agents.sb3.network import numpy_network
from rec_env.features import CHANNELS
from rec_env.item_env import product_embeddings
from rec_env.settings import EnvSettings

# An 8-cycle horizon: the evaluations before and after training roll a cohort over the whole
# horizon, and cost most of a tiny training at the default 52; nothing here depends on it.
ITEM = EnvSettings(world="item", horizon=8)
OFFERS = EnvSettings(world="item", offers=(0.0, 0.15), horizon=8)
HEAD = {"policy_kwargs.action_head": "products"}
# Two rollouts of 8 x 16 steps, 8 gradient steps: enough to move every head parameter (the
# product bias starts at zero) well beyond the numpy comparison's tolerance. The constant rate
# matters: a linear schedule is at 0 by the last rollout, so a single rollout learns nothing.
TINY = {
    "n_envs": 8,
    "n_steps": 16,
    "batch_size": 64,
    "n_epochs": 2,
    "learning_rate_schedule": "constant",
    **HEAD,
}
BUDGET = 256

pytestmark = pytest.mark.usefixtures("one_thread")


def test_head_logits_follow_the_factored_formula() -> None:
    model = OFFERS.build_model()
    table, vectors = model.actions, product_embeddings(model)
    head = ProductHead(8, vectors, len(CHANNELS), len(table.offers))
    with torch.no_grad():
        for parameter in head.parameters():
            parameter.normal_(generator=torch.Generator().manual_seed(parameter.numel()))
        latent = torch.randn(5, 8, generator=torch.Generator().manual_seed(1))
        logits = head(latent).numpy()
        taste = head.taste(latent).numpy()
        channel, offer = head.channel(latent).numpy(), head.offer(latent).numpy()
        none, bias = head.none(latent).numpy()[:, 0], head.product_bias.numpy()
    assert logits.shape == (5, table.n_actions)
    np.testing.assert_allclose(logits[:, 0], none, rtol=1e-5)
    for a in (1, 2, 77, table.n_actions - 1):
        j, c = table.product[a], table.channel[a]
        o = list(table.offers).index(table.discount[a])
        expected = taste @ vectors[j] + bias[j] + channel[:, c] + offer[:, o]
        np.testing.assert_allclose(logits[:, a], expected, rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def trained(one_thread: None) -> SB3Policy:
    policy, _ = train_sb3("ppo", ITEM, BUDGET, 0, TINY, eval_every=0, eval_customers=20)
    return policy


def test_ppo_trains_with_the_head_and_numpy_reads_it(trained: SB3Policy) -> None:
    head = trained.model.policy.action_net
    assert isinstance(head, ProductHead)
    assert head.product_bias.abs().max() > 1e-3  # trained away from its zero start: read too
    obs = rec_env.make_vec_env(64, seed=3, settings=ITEM).reset()
    network = numpy_network(trained)
    assert network is not None
    with torch.no_grad():
        torch_probs = trained.model.policy.get_distribution(torch.as_tensor(obs)).distribution.probs
    np.testing.assert_allclose(network.probabilities(obs), torch_probs.numpy(), atol=1e-6)


def test_a_saved_head_loads_with_the_same_decisions(trained: SB3Policy, tmp_path: Path) -> None:
    trained.save(tmp_path)
    loaded = SB3Policy.load(tmp_path)
    assert isinstance(loaded.model.policy.action_net, ProductHead)
    obs = rec_env.make_vec_env(64, seed=4, settings=ITEM).reset()
    np.testing.assert_array_equal(
        loaded.action_probabilities(obs), trained.action_probabilities(obs)
    )


def test_maskable_ppo_with_the_head_respects_masks() -> None:
    policy, _ = train_sb3("maskable_ppo", OFFERS, BUDGET, 0, TINY, eval_every=0, eval_customers=20)
    assert isinstance(policy, MaskablePPOPolicy)
    assert isinstance(policy.model.policy.action_net, ProductHead)
    venv = rec_env.make_vec_env(200, seed=5, settings=OFFERS)
    obs, masks = venv.reset(), venv.action_masks()
    masks[:, 1::2] = False  # half the product actions refused on top of the env's masks
    actions = policy.predict(obs, masks, deterministic=False)
    assert masks[np.arange(obs.shape[0]), actions].all()


def test_the_head_needs_the_item_world_and_an_actor() -> None:
    with pytest.raises(ValueError, match="needs the item world"):
        train_sb3("ppo", EnvSettings(), 256, 0, TINY, eval_every=0, eval_customers=20)
    with pytest.raises(ConfigError, match="action_head"):
        train_sb3("dqn", ITEM, 256, 0, HEAD, eval_every=0, eval_customers=20)
