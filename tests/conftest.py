from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from rec_env import build_model
from rec_env.dynamics import CustomerBatch, CustomerModel


@pytest.fixture(scope="session")
def model() -> CustomerModel:
    return build_model("default", "profit")


@pytest.fixture(scope="session")
def conversion_model() -> CustomerModel:
    return build_model("default", "conversion")


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Pin torch (if imported) and BLAS to one thread for the requesting module's tests.

    Tiny trainings are hundreds of small tensor operations: with the machine's other cores busy,
    a second intra-op thread makes each one wait (a 256-step PPO took 6 s instead of 0.3 s).
    """
    from rec_env.agents.threads import pinned_threads

    with pinned_threads():
        yield


def make_batch(
    model: CustomerModel, n: int, seed: int = 0, **features: float
) -> tuple[CustomerBatch, np.random.Generator]:
    """``n`` customers from the population with some observed features overridden."""
    rng = np.random.default_rng(seed)
    batch = model.new_batch(n)
    model.draw_customers(batch, np.arange(n), rng)
    for name, value in features.items():
        batch.feature(name)[:] = value
    # keep the ring buffers consistent with overridden windowed counts
    rows = np.arange(n)
    observed = batch.features.T.copy()
    model.set_customers(batch, rows, observed, batch.hidden.T.copy(), batch.segment.copy())
    return batch, rng


def copy_batch(model: CustomerModel, batch: CustomerBatch) -> CustomerBatch:
    clone = model.new_batch(batch.n)
    clone.features[:] = batch.features
    clone.hidden[:] = batch.hidden
    clone.contact_history[:] = batch.contact_history
    clone.discount_history[:] = batch.discount_history
    clone.segment[:] = batch.segment
    clone.cursor = batch.cursor
    return clone
