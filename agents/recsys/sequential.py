r"""A small GRU4Rec-style sequential recommender (torch, CPU).

The model reads a user's items in time order and predicts the next one (Hidasi et al. 2016,
"Session-based recommendations with recurrent neural networks"), here in the form that later
work found strongest: a full softmax over the catalog with cross-entropy loss at every position
of the sequence (Hidasi and Czapp 2023, "The effect of third party implementations on
reproducibility"), rather than GRU4Rec's sampled ranking losses.

.. math::

    h_t = \mathrm{GRU}(e_{i_t}, h_{t-1}), \qquad
    P(i_{t+1} = j \mid i_{\le t}) = \mathrm{softmax}_j(W h_t + b)

Training sequences are each user's training items (the last ``max_length`` of them); histories
longer than ``max_length`` are cut to their last ``max_length`` items when scoring too.

**Determinism.** Training runs on one CPU thread with ``torch.manual_seed(seed)`` and
``torch.use_deterministic_algorithms(True)`` (restored afterwards), and the batches are shuffled
by a numpy generator seeded by ``seed``: the same seed gives the same weights, bit for bit, on
the same machine and torch build.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from rec_env.agents.recsys.base import Recommender
from rec_env.agents.recsys.split import LeaveLastOutSplit
from rec_env.agents.threads import pinned_threads

__all__ = ["GRU4Rec"]

_PADDING = 0  # embedding row of padding; item i is row i + 1


class _GRUNetwork(nn.Module):
    def __init__(self, n_items: int, embedding_size: int, hidden_size: int, dropout: float):
        super().__init__()
        self.embedding = nn.Embedding(n_items + 1, embedding_size, padding_idx=_PADDING)
        self.dropout = nn.Dropout(dropout)
        self.gru = nn.GRU(embedding_size, hidden_size, batch_first=True)
        self.output = nn.Linear(hidden_size, n_items)

    def forward(self, sequences: torch.Tensor) -> torch.Tensor:
        """``(B, L, n_items)`` next-item logits at every position of ``(B, L)`` sequences."""
        states, _ = self.gru(self.dropout(self.embedding(sequences)))
        return self.output(self.dropout(states))


@contextmanager
def _deterministic_torch(seed: int) -> Iterator[None]:
    """One thread, a seeded torch generator and deterministic kernels within the block."""
    previous = torch.are_deterministic_algorithms_enabled()
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    try:
        with pinned_threads():
            yield
    finally:
        torch.use_deterministic_algorithms(previous)


def _left_padded(sequences: Sequence[np.ndarray], length: int) -> np.ndarray:
    """``(n, length)`` rows of item rows (item + 1), the last ``length`` items right-aligned."""
    padded = np.full((len(sequences), length), _PADDING, dtype=np.int64)
    for row, sequence in enumerate(sequences):
        tail = np.asarray(sequence[-length:], dtype=np.int64) + 1
        if tail.size:
            padded[row, -tail.size :] = tail
    return padded


class GRU4Rec(Recommender):
    """GRU next-item model trained with full-softmax cross-entropy.

    Args:
        embedding_size: Item embedding size.
        hidden_size: GRU state size.
        max_length: Items of a sequence read (the most recent ones).
        epochs: Passes over the training sequences.
        batch_size: Sequences per gradient step.
        learning_rate: Adam step size.
        dropout: Dropout on the embeddings and the states.
        seed: Seed of the weights, dropout and batch order.

    Attributes:
        losses_: Mean training loss of each epoch.
    """

    name = "GRU4Rec"

    def __init__(
        self,
        *,
        embedding_size: int = 64,
        hidden_size: int = 128,
        max_length: int = 50,
        epochs: int = 10,
        batch_size: int = 32,
        learning_rate: float = 3e-3,
        dropout: float = 0.2,
        seed: int = 0,
    ) -> None:
        for name, value in (
            ("embedding_size", embedding_size),
            ("hidden_size", hidden_size),
            ("max_length", max_length),
            ("epochs", epochs),
            ("batch_size", batch_size),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if not learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {learning_rate}")
        self.embedding_size = embedding_size
        self.hidden_size = hidden_size
        self.max_length = max_length
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.dropout = dropout
        self.seed = seed
        self.losses_: list[float] = []

    def fit(self, split: LeaveLastOutSplit) -> GRU4Rec:
        """Train on each user's training items: read ``i_1..i_{T-1}``, predict ``i_2..i_T``."""
        # one extra position so that max_length items are read and max_length - 1 predicted
        sequences = _left_padded(split.train_sequences, self.max_length + 1)
        inputs = torch.from_numpy(sequences[:, :-1])
        targets = torch.from_numpy(sequences[:, 1:] - 1)  # padding becomes -1, ignored
        rng = np.random.default_rng(self.seed)
        n_batches = max(1, -(-len(sequences) // self.batch_size))
        with _deterministic_torch(self.seed):
            self.network_ = _GRUNetwork(
                split.n_items, self.embedding_size, self.hidden_size, self.dropout
            )
            optimiser = torch.optim.Adam(self.network_.parameters(), lr=self.learning_rate)
            self.network_.train()
            self.losses_ = []
            for _ in range(self.epochs):
                batches = np.array_split(rng.permutation(len(sequences)), n_batches)
                losses = [
                    self._step(optimiser, inputs[index], targets[index])
                    for index in map(torch.from_numpy, batches)
                ]
                self.losses_.append(float(np.mean(losses)))
            self.network_.eval()
        return self

    def _step(
        self, optimiser: torch.optim.Optimizer, inputs: torch.Tensor, targets: torch.Tensor
    ) -> float:
        """One Adam step on the mean cross-entropy of a batch's non-padding positions."""
        logits = self.network_(inputs)
        loss = nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-1
        )
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        return loss.item()

    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Next-item logits after reading each history (its last ``max_length`` items)."""
        padded = torch.from_numpy(_left_padded(histories, self.max_length))
        with torch.no_grad(), pinned_threads():
            logits = self.network_(padded)[:, -1, :]
        return logits.numpy().astype(np.float64)
