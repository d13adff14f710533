r"""A DRR-style actor-critic next-item recommender (torch, CPU), trained off-line by DDPG.

DRR (Liu et al. 2018, "Deep reinforcement learning based recommendation with explicit
user-item interactions modeling") recommends with a deterministic actor whose action is a
vector :math:`a` in item-embedding space; an item's score is :math:`a^\top e_i`. A critic
:math:`Q(s, a)` judges the action and the actor climbs its gradient (DDPG: Lillicrap et al.
2016). This module keeps that structure and adapts the training to logged implicit feedback.

**Embeddings** (fixed during RL training, as DRR pre-trains them with PMF): a rank-``k``
truncated SVD of the binary user × item training matrix :math:`X \approx U\Sigma V^\top` (PureSVD,
Cremonesi et al. 2010; MovieLens's ratings are not in the split, every rating is an interaction).
Item :math:`i` is :math:`e_i = V_i\Sigma^{1/2}`; a user is folded in from the items of the
history :math:`H` alone, :math:`u = \frac{1}{|H|}\sum_{i\in H} V_i\Sigma^{-1/2}` (so
:math:`u^\top e_j` ranks as PureSVD does), which needs no user id and, unlike a user row of
:math:`U`, holds no item of the user's future during training. Both are divided by a global
scale so that their entries are of order 1.

**State** (DRR-ave, the variant Liu et al. found best): with
:math:`\bar e = \sum_{n=1}^{N} w_n e_{h_n}`, a learned weighted pooling of the last :math:`N`
items (zero vectors pad shorter histories),

.. math::

    s = [\,u,\; u \odot \bar e,\; \bar e\,] \in \mathbb{R}^{3k}, \qquad
    a = \sqrt{k}\,\frac{v}{\lVert v\rVert},\; v = \mathrm{MLP}_\mu(s), \qquad
    Q(s, a) = \mathrm{MLP}_Q([\,s,\; a,\; u \odot a,\; \bar e \odot a\,]).

Two departures from DRR, both chosen on the validation items (NDCG@10 of full ranking, all
users): the action is put on a sphere instead of through DRR's ``tanh``, since the ranking by
:math:`a^\top e_i` depends on its direction only and two thirds of the ``tanh`` outputs
saturated; and the critic also reads the products :math:`u \odot a` and :math:`\bar e \odot a`,
whose sums are the dot products the reward depends on, and which an MLP of :math:`[s, a]`
learned too slowly. After 3 epochs: ``tanh`` and interaction critic 0.038, sphere and plain
critic 0.039, both 0.059 (``tanh`` and plain critic, 5 epochs: 0.039; popularity 0.033). Neither
changes what is learned from: a reward, by DDPG.

**Off-line environment.** DRR trains against a simulator fitted to the ratings; here the log
itself answers. Each training interaction, in global time order, is one step: the state is
the user's items before it; the actor's action plus Gaussian noise (std ``noise``) picks the
``slate_size`` best unseen items; the **reward** is the share of that slate among the user's
next ``reward_window`` *training* items (this one included), so no validation or test item is
ever used; the next state is the logged one (the user watched the logged item), and the step
is terminal at the user's last training item. Transitions go to a replay buffer; after each
chunk of ``chunk_size`` steps, one DDPG update on a sampled batch (critic to
:math:`r + \gamma(1 - d)\,Q'(s', \mu'(s'))`, actor to maximise :math:`Q(s, \mu(s))`, targets by
Polyak averaging with rate ``tau``). The state module belongs to the actor (the critic reads its
output, detached in the critic's own update).

**Determinism.** One CPU thread, ``torch.manual_seed(seed)`` and deterministic algorithms within
training (as :class:`~rec_env.agents.recsys.sequential.GRU4Rec`); the exploration noise and the
replay batches come from a numpy generator seeded by ``seed``; the steps are taken in time
order; the SVD is LAPACK's (deterministic on one thread).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from rec_env.agents.recsys.base import Recommender
from rec_env.agents.recsys.sequential import _deterministic_torch, _left_padded
from rec_env.agents.recsys.split import LeaveLastOutSplit, _history_mask
from rec_env.agents.threads import pinned_threads

__all__ = ["DRRRecommender"]


def _svd_embeddings(split: LeaveLastOutSplit, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Item embeddings ``V Σ^{1/2}`` and fold-in rows ``V Σ^{-1/2}``, each ``(n_items, size)``."""
    matrix = _history_mask(split.train_sequences, split.n_items).astype(np.float64)
    _, singular, right = np.linalg.svd(matrix, full_matrices=False)
    rank = min(size, int(np.sum(singular > 1e-9 * singular[0])))
    vectors = np.zeros((split.n_items, size))
    vectors[:, :rank] = right[:rank].T
    root = np.ones(size)
    root[:rank] = np.sqrt(singular[:rank])
    items = vectors * root
    fold_in = vectors / root
    return items / np.sqrt(np.mean(items**2)), fold_in


class _StateModule(nn.Module):
    """DRR-ave: ``[u, u ⊙ ē, ē]`` with ``ē`` a learned weighted sum of the last items."""

    def __init__(self, item_embeddings: torch.Tensor, history_length: int):
        super().__init__()
        padded = torch.cat([torch.zeros(1, item_embeddings.shape[1]), item_embeddings])
        self.register_buffer("items", padded)  # row 0 pads; item i is row i + 1
        self.weights = nn.Parameter(torch.full((history_length,), 1.0 / history_length))

    def forward(self, users: torch.Tensor, histories: torch.Tensor) -> torch.Tensor:
        pooled = torch.einsum("n,bnk->bk", self.weights, self.items[histories])
        return torch.cat([users, users * pooled, pooled], dim=1)


def _mlp(inputs: int, hidden: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(inputs, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, outputs),
    )


class _Actor(nn.Module):
    def __init__(self, item_embeddings: torch.Tensor, history_length: int, hidden: int):
        super().__init__()
        size = item_embeddings.shape[1]
        self.state = _StateModule(item_embeddings, history_length)
        self.policy = _mlp(3 * size, hidden, size)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return _on_sphere(self.policy(states))


def _on_sphere(vectors: torch.Tensor) -> torch.Tensor:
    """Rows scaled to norm ``sqrt(k)``: the ranking ``a · e_i`` depends on the direction only."""
    norms = torch.linalg.vector_norm(vectors, dim=1, keepdim=True).clamp_min(1e-6)
    return vectors / norms * vectors.shape[1] ** 0.5


class _Critic(nn.Module):
    """``Q`` of ``[s, a, u ⊙ a, ē ⊙ a]``: the products whose sums give ``a``'s dot products."""

    def __init__(self, size: int, hidden: int):
        super().__init__()
        self.size = size
        self.value = _mlp(6 * size, hidden, 1)

    def forward(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        users, pooled = states[:, : self.size], states[:, 2 * self.size :]
        inputs = torch.cat([states, actions, users * actions, pooled * actions], dim=1)
        return self.value(inputs).squeeze(1)


class _LoggedSteps:
    """Every (user, position ≥ 1) state of the training log, and the steps between them.

    State ``(u, t)`` is what user ``u`` had watched before their ``t``-th training item (0-based):
    its fold-in user vector and its last ``history_length`` items (padded). A step is a training
    interaction at position ``t ≥ 1``, in global time order, from state ``(u, t)`` to ``(u, t+1)``.
    """

    def __init__(self, split: LeaveLastOutSplit, fold_in: np.ndarray, history_length: int):
        self.sequences = split.train_sequences
        lengths = np.array([len(sequence) for sequence in self.sequences])
        # state (u, t) for t = 1..T_u is row offsets[u] + t - 1
        self.offsets = np.cumsum(lengths) - lengths
        histories, users = [], []
        for sequence in self.sequences:
            prefix_means = (
                np.cumsum(fold_in[sequence], axis=0) / np.arange(1, len(sequence) + 1)[:, None]
            )
            users.append(prefix_means)
            histories.append(
                _left_padded([sequence[:t] for t in range(1, len(sequence) + 1)], history_length)
            )
        user_vectors = np.concatenate(users)
        self.user_scale = float(np.sqrt(np.mean(user_vectors**2))) or 1.0
        self.users = torch.from_numpy((user_vectors / self.user_scale).astype(np.float32))
        self.histories = torch.from_numpy(np.concatenate(histories))
        # steps: global order keeps each user's order, so positions are running counts
        order = np.argsort(split.train_users, kind="stable")
        starts = np.cumsum(lengths) - lengths
        position = np.empty(split.train_users.size, dtype=np.int64)
        position[order] = np.arange(order.size) - np.repeat(starts, lengths)
        keep = position >= 1
        self.step_users = split.train_users[keep]
        self.step_positions = position[keep]
        self.step_states = self.offsets[self.step_users] + self.step_positions - 1
        self.step_done = self.step_positions + 1 == lengths[self.step_users]

    def masks(self, steps: np.ndarray, n_items: int, window: int) -> tuple[np.ndarray, np.ndarray]:
        """``(len(steps), n_items)`` items seen before each step, and its next ``window``."""
        seen = np.zeros((steps.size, n_items), dtype=bool)
        upcoming = np.zeros_like(seen)
        for row, (user, position) in enumerate(
            zip(self.step_users[steps], self.step_positions[steps], strict=True)
        ):
            sequence = self.sequences[user]
            seen[row, sequence[:position]] = True
            upcoming[row, sequence[position : position + window]] = True
        return seen, upcoming


class DRRRecommender(Recommender):
    """DRR-ave actor-critic trained by DDPG on the training log (module docstring).

    Args:
        embedding_size: Rank ``k`` of the SVD item embeddings (the action size).
        history_length: Last items ``N`` pooled into the state.
        hidden_size: Width of the two hidden layers of the actor and the critic.
        slate_size: Items recommended per training step.
        reward_window: Next training items of the user that count as hits.
        epochs: Passes over the training steps.
        chunk_size: Steps acted on between two updates.
        batch_size: Transitions per DDPG update.
        buffer_size: Capacity of the replay buffer (oldest overwritten).
        gamma: Discount factor.
        tau: Polyak rate of the target networks.
        actor_learning_rate: Adam step size of the actor (and state module).
        critic_learning_rate: Adam step size of the critic.
        noise: Standard deviation of the Gaussian exploration noise on the action.
        seed: Seed of the weights, the exploration noise and the replay batches.

    Attributes:
        rewards_: Mean training reward of each epoch (of the noisy actions).
        critic_losses_: Mean critic loss of each epoch.
    """

    name = "DRR (actor-critic)"

    def __init__(
        self,
        *,
        embedding_size: int = 32,
        history_length: int = 10,
        hidden_size: int = 128,
        slate_size: int = 10,
        reward_window: int = 10,
        epochs: int = 6,
        chunk_size: int = 64,
        batch_size: int = 64,
        buffer_size: int = 100_000,
        gamma: float = 0.9,
        tau: float = 0.01,
        actor_learning_rate: float = 1e-4,
        critic_learning_rate: float = 1e-3,
        noise: float = 0.2,
        seed: int = 0,
    ) -> None:
        for name, value in (
            ("embedding_size", embedding_size),
            ("history_length", history_length),
            ("hidden_size", hidden_size),
            ("slate_size", slate_size),
            ("reward_window", reward_window),
            ("epochs", epochs),
            ("chunk_size", chunk_size),
            ("batch_size", batch_size),
            ("buffer_size", buffer_size),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not 0.0 <= gamma < 1.0:
            raise ValueError(f"gamma must be in [0, 1), got {gamma}")
        if not 0.0 < tau <= 1.0:
            raise ValueError(f"tau must be in (0, 1], got {tau}")
        for name, rate in (("actor", actor_learning_rate), ("critic", critic_learning_rate)):
            if not rate > 0:
                raise ValueError(f"{name}_learning_rate must be positive, got {rate}")
        if not noise >= 0:
            raise ValueError(f"noise must be non-negative, got {noise}")
        self.embedding_size = embedding_size
        self.history_length = history_length
        self.hidden_size = hidden_size
        self.slate_size = slate_size
        self.reward_window = reward_window
        self.epochs = epochs
        self.chunk_size = chunk_size
        self.batch_size = batch_size
        self.buffer_size = buffer_size
        self.gamma = gamma
        self.tau = tau
        self.actor_learning_rate = actor_learning_rate
        self.critic_learning_rate = critic_learning_rate
        self.noise = noise
        self.seed = seed
        self.rewards_: list[float] = []
        self.critic_losses_: list[float] = []

    def fit(self, split: LeaveLastOutSplit) -> DRRRecommender:
        """Embed by SVD, then run DDPG over the logged steps for ``epochs`` passes."""
        rng = np.random.default_rng(self.seed)
        with _deterministic_torch(self.seed):
            items, self.fold_in_ = _svd_embeddings(split, self.embedding_size)
            steps = _LoggedSteps(split, self.fold_in_, self.history_length)
            self.user_scale_ = steps.user_scale
            self.items_ = items.astype(np.float32)
            n_steps = steps.step_states.size
            if n_steps == 0:
                raise ValueError("DRR needs a user with at least 2 training items to learn from")
            chunks = np.array_split(np.arange(n_steps), max(1, -(-n_steps // self.chunk_size)))
            networks = _DDPGNetworks(self, torch.from_numpy(self.items_))
            buffer = _ReplayBuffer(self.buffer_size, self.embedding_size)
            self.rewards_, self.critic_losses_ = [], []
            for _ in range(self.epochs):
                rewards, losses = [], []
                for chunk in chunks:
                    actions, reward = self._act(networks.actor, steps, chunk, rng)
                    buffer.add(steps.step_states[chunk], actions, reward, steps.step_done[chunk])
                    rewards.append(reward)
                    if buffer.size >= self.batch_size:
                        batch = buffer.sample(self.batch_size, rng)
                        losses.append(networks.update(steps, batch, self.gamma, self.tau))
                self.rewards_.append(float(np.mean(np.concatenate(rewards))))
                self.critic_losses_.append(float(np.mean(losses)) if losses else float("nan"))
            self.actor_ = networks.actor.eval()
        return self

    def _act(
        self, actor: _Actor, steps: _LoggedSteps, chunk: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Noisy actions of a chunk of steps and their rewards (slate hits / slate size)."""
        states = torch.from_numpy(steps.step_states[chunk])
        with torch.no_grad():
            actions = actor(actor.state(steps.users[states], steps.histories[states])).numpy()
        noisy = torch.from_numpy(actions + self.noise * rng.standard_normal(actions.shape))
        actions = _on_sphere(noisy).numpy().astype(np.float32)
        seen, upcoming = steps.masks(chunk, self.items_.shape[0], self.reward_window)
        scores = np.where(seen, -np.inf, actions @ self.items_.T)
        size = min(self.slate_size, scores.shape[1])
        slates = np.argpartition(-scores, size - 1, axis=1)[:, :size]
        hits = np.take_along_axis(upcoming, slates, axis=1)
        return actions, hits.sum(axis=1) / self.slate_size

    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """``a · e_i`` for every item, ``a`` the actor's action in the history's state."""
        user_vectors = np.zeros((len(histories), self.embedding_size))
        for row, history in enumerate(histories):
            if len(history):
                user_vectors[row] = self.fold_in_[np.asarray(history)].mean(axis=0)
        user_tensor = torch.from_numpy((user_vectors / self.user_scale_).astype(np.float32))
        padded = torch.from_numpy(_left_padded(histories, self.history_length))
        with torch.no_grad(), pinned_threads():
            actions = self.actor_(self.actor_.state(user_tensor, padded)).numpy()
        return (actions @ self.items_.T).astype(np.float64)


class _ReplayBuffer:
    """A ring of (state row, action, reward, done); the next state is row + 1."""

    def __init__(self, capacity: int, action_size: int):
        self.states = np.zeros(capacity, dtype=np.int64)
        self.actions = np.zeros((capacity, action_size), dtype=np.float32)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.done = np.zeros(capacity, dtype=np.float32)
        self.size = 0
        self._next = 0

    def add(self, states: np.ndarray, actions: np.ndarray, rewards: np.ndarray, done: np.ndarray):
        slots = (self._next + np.arange(states.size)) % self.states.size
        self.states[slots], self.actions[slots] = states, actions
        self.rewards[slots], self.done[slots] = rewards, done
        self._next = int(slots[-1] + 1) % self.states.size
        self.size = min(self.size + states.size, self.states.size)

    def sample(self, batch_size: int, rng: np.random.Generator) -> tuple[torch.Tensor, ...]:
        index = rng.integers(0, self.size, batch_size)
        return tuple(
            torch.from_numpy(array[index])
            for array in (self.states, self.actions, self.rewards, self.done)
        )


class _DDPGNetworks:
    """Actor, critic, their targets and optimisers, and the DDPG update."""

    def __init__(self, options: DRRRecommender, items: torch.Tensor):
        self.actor = _Actor(items, options.history_length, options.hidden_size)
        self.critic = _Critic(options.embedding_size, options.hidden_size)
        self.target_actor = copy.deepcopy(self.actor).requires_grad_(False)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_optimiser = torch.optim.Adam(
            self.actor.parameters(), lr=options.actor_learning_rate, foreach=True
        )
        self.critic_optimiser = torch.optim.Adam(
            self.critic.parameters(), lr=options.critic_learning_rate, foreach=True
        )

    def update(
        self, steps: _LoggedSteps, batch: tuple[torch.Tensor, ...], gamma: float, tau: float
    ) -> float:
        """One critic and one actor step on a batch; returns the critic's loss."""
        states, actions, rewards, done = batch
        encoded = self.actor.state(steps.users[states], steps.histories[states])
        with torch.no_grad():
            following = self.target_actor.state(
                steps.users[states + 1], steps.histories[states + 1]
            )
            following_value = self.target_critic(following, self.target_actor(following))
            targets = rewards + gamma * (1.0 - done) * following_value
        critic_loss = nn.functional.mse_loss(self.critic(encoded.detach(), actions), targets)
        self.critic_optimiser.zero_grad()
        critic_loss.backward()
        self.critic_optimiser.step()
        actor_loss = -self.critic(encoded, self.actor(encoded)).mean()
        self.actor_optimiser.zero_grad()
        actor_loss.backward()
        self.actor_optimiser.step()
        with torch.no_grad():
            for network, target in (
                (self.actor, self.target_actor),
                (self.critic, self.target_critic),
            ):
                for parameter, target_parameter in zip(
                    network.parameters(), target.parameters(), strict=True
                ):
                    target_parameter.lerp_(parameter, tau)
        return critic_loss.item()
