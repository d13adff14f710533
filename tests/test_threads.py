"""rec_env.agents.threads: one BLAS and torch thread inside the block, the old limits after."""

from __future__ import annotations

import scipy.linalg  # noqa: F401 - its BLAS is loaded before the limits are read
import threadpoolctl
import torch

from rec_env.agents.threads import pinned_threads


def _blas_threads() -> list[int]:
    return [
        pool["num_threads"]
        for pool in threadpoolctl.threadpool_info()
        if pool["user_api"] == "blas"
    ]


def test_pinning_is_nested_and_restored() -> None:
    torch.set_num_threads(2)
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        before = _blas_threads()
        with pinned_threads():
            with pinned_threads():  # nested: still pinned, and the inner exit restores nothing
                pass
            assert _blas_threads() and max(_blas_threads()) == 1
            assert torch.get_num_threads() == 1
        assert _blas_threads() == before
        assert torch.get_num_threads() == 2


def test_a_library_loaded_after_the_first_pinning_is_pinned_too() -> None:
    import subprocess
    import sys

    script = (
        "import threadpoolctl\n"
        "from rec_env.agents.threads import pinned_threads\n"
        "with pinned_threads():\n"
        "    pass\n"
        "import sklearn.ensemble  # loads scikit-learn's own OpenMP runtime\n"
        "with threadpoolctl.threadpool_limits(limits=2):\n"
        "    with pinned_threads():\n"
        "        print(max(p['num_threads'] for p in threadpoolctl.threadpool_info()))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "1"
