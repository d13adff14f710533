"""One intra-op thread while explaining: :mod:`rec_env.agents.threads`, under its old name."""

from rec_env.agents.threads import EXPLAIN_THREADS, pinned_threads

__all__ = ["EXPLAIN_THREADS", "pinned_threads"]
