r"""A factored policy head for the item world's ``Discrete`` action table.

``rec_env/ItemRecommendation-v0`` keeps a flat ``Discrete(1 + products × channels × offers)``
action space: every SB3 algorithm trains on it, MaskablePPO masks it, and a decision is one
integer in the service's log. What scales badly is SB3's default actor head, a dense layer
with one row of weights per action: 601 rows for the default 200-product catalog, 30,001 for
10,000 products. Each row learns only from the customers it was sampled for, so a product
recommended rarely stays unlearned, and nothing learned about one product carries over to a
similar one.

:class:`ProductHead` factors the logits through the product embeddings
(:func:`rec_env.item_env.product_embeddings`: topics, log price, margin, ``new``,
popularity), as the slate world's scoring vector does (DRR's actor):

.. math::

    \ell(\text{none}) = u_0 \cdot h, \qquad
    \ell(j, c, o) = (W h)\cdot v_j + b_j + (C h)_c + (O h)_o

for the actor's last hidden layer :math:`h`: :math:`W h` is a taste estimate over the
embedding's columns, :math:`b_j` a learned per-product bias, :math:`C h` the channel scores and
:math:`O h` the offer scores (biases omitted). Its parameters do not grow with the catalog but
for :math:`b`; every product's logit moves with every update of :math:`W`.

Because every logit is linear in :math:`h`, the head *is* a dense layer with a composed weight
matrix (:attr:`ProductHead.weight`, :attr:`ProductHead.bias`): the numpy network of the
explainer and the service (:func:`rec_env.agents.sb3.network.numpy_network`) reads it as one.
:class:`ProductActorCriticPolicy` and :class:`ProductMaskablePolicy` are SB3's actor-critic
policies with this head; YAML files select it with ``policy_kwargs: {action_head: products}``.

Importing this module imports torch, Stable-Baselines3 and sb3-contrib.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.policies import ActorCriticPolicy
from torch import nn
from torch.nn import functional

__all__ = [
    "PRODUCT_POLICY_CLASSES",
    "ProductActorCriticPolicy",
    "ProductHead",
    "ProductMaskablePolicy",
]


class ProductHead(nn.Module):
    """The actor's logits over the item action table, factored through product embeddings.

    Action ``1 + (j · n_channels + c) · n_offers + o`` is product ``j`` by channel ``c`` with
    offer ``o``; action 0 sends nothing (:class:`rec_env.item_actions.ItemActionTable`).

    Args:
        latent_dim: Width of the actor's last hidden layer.
        embeddings: ``(n_products, e)`` product vectors.
        n_channels: Channels per product.
        n_offers: Offers per (product, channel).
    """

    def __init__(
        self, latent_dim: int, embeddings: np.ndarray, n_channels: int, n_offers: int
    ) -> None:
        super().__init__()
        vectors = torch.as_tensor(np.asarray(embeddings, dtype=np.float32))
        if vectors.ndim != 2 or n_channels < 1 or n_offers < 1:
            raise ValueError("embeddings must be (n_products, e), channels and offers positive")
        self.register_buffer("embeddings", vectors)
        self.n_channels, self.n_offers = int(n_channels), int(n_offers)
        self.none = nn.Linear(latent_dim, 1)
        self.taste = nn.Linear(latent_dim, vectors.shape[1])
        self.product_bias = nn.Parameter(torch.zeros(vectors.shape[0]))
        self.channel = nn.Linear(latent_dim, self.n_channels)
        self.offer = nn.Linear(latent_dim, self.n_offers)

    @property
    def n_actions(self) -> int:
        """Size of the action table."""
        return 1 + int(self.embeddings.shape[0]) * self.n_channels * self.n_offers

    def _compose(self, product: torch.Tensor, channel: torch.Tensor, offer: torch.Tensor) -> Any:
        """``(P, C, O, ...)`` sums of per-product, per-channel and per-offer terms, flattened."""
        grid = product[:, None, None] + channel[None, :, None] + offer[None, None, :]
        return grid.reshape(-1, *product.shape[1:])

    @property
    def weight(self) -> torch.Tensor:
        """``(n_actions, latent_dim)``: the equivalent dense layer's weight (as ``nn.Linear``)."""
        product = self.embeddings @ self.taste.weight  # (P, latent)
        grid = self._compose(product, self.channel.weight, self.offer.weight)
        return torch.cat([self.none.weight, grid])

    @property
    def bias(self) -> torch.Tensor:
        """``(n_actions,)``: the equivalent dense layer's bias."""
        product = self.embeddings @ self.taste.bias + self.product_bias
        grid = self._compose(product, self.channel.bias, self.offer.bias)
        return torch.cat([self.none.bias, grid])

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        """``(batch, n_actions)`` logits."""
        return functional.linear(latent, self.weight, self.bias)


def _product_head(policy: Any, embeddings: np.ndarray, n_channels: int, n_offers: int) -> None:
    """Swap ``policy.action_net`` for a :class:`ProductHead`, initialised as SB3 would."""
    head = ProductHead(policy.mlp_extractor.latent_dim_pi, embeddings, n_channels, n_offers)
    if head.n_actions != policy.action_space.n:
        raise ValueError(
            f"{head.n_actions} product actions do not match the action space's "
            f"{policy.action_space.n}"
        )
    if policy.ortho_init:  # SB3's small-gain init of the action net: near-uniform at start
        head.apply(lambda module: policy.init_weights(module, gain=0.01))
    policy.action_net = head
    # the optimiser was built over the dense head's parameters: rebuild it over the new ones
    policy.optimizer = policy.optimizer_class(
        policy.parameters(), lr=policy.optimizer.param_groups[0]["lr"], **policy.optimizer_kwargs
    )


class _ProductHeadPolicy:
    """What both policies below add to SB3's: the head's arguments, the swap, saving them."""

    def __init__(
        self,
        *args: Any,
        embeddings: np.ndarray,
        n_channels: int,
        n_offers: int = 1,
        **kwargs: Any,
    ) -> None:
        self._head_arguments = (np.asarray(embeddings, dtype=np.float32), n_channels, n_offers)
        super().__init__(*args, **kwargs)  # type: ignore[call-arg]

    def _build(self, lr_schedule: Any) -> None:
        super()._build(lr_schedule)  # type: ignore[misc]
        _product_head(self, *self._head_arguments)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        embeddings, n_channels, n_offers = self._head_arguments
        return {
            **super()._get_constructor_parameters(),  # type: ignore[misc]
            "embeddings": embeddings,
            "n_channels": n_channels,
            "n_offers": n_offers,
        }


class ProductActorCriticPolicy(_ProductHeadPolicy, ActorCriticPolicy):
    """SB3's ``MlpPolicy`` (PPO, A2C) with a :class:`ProductHead` actor.

    Args:
        *args: :class:`~stable_baselines3.common.policies.ActorCriticPolicy`'s.
        embeddings: ``(n_products, e)`` product vectors.
        n_channels: Channels per product.
        n_offers: Offers per (product, channel).
        **kwargs: :class:`~stable_baselines3.common.policies.ActorCriticPolicy`'s.
    """


class ProductMaskablePolicy(_ProductHeadPolicy, MaskableActorCriticPolicy):
    """sb3-contrib's MaskablePPO ``MlpPolicy`` with a :class:`ProductHead` actor.

    Args: as :class:`ProductActorCriticPolicy`.
    """


PRODUCT_POLICY_CLASSES: dict[str, type[ActorCriticPolicy]] = {
    "ppo": ProductActorCriticPolicy,
    "a2c": ProductActorCriticPolicy,
    "maskable_ppo": ProductMaskablePolicy,
}
"""Algorithm → its SB3 policy class with a :class:`ProductHead` (DQN has no actor head)."""
