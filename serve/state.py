"""An online learner's state across restarts: atomic snapshots in the operator's state directory.

A bandit served with a state directory learns from every reward; its state is saved as a
snapshot directory (``policy.json``, ``state.npz`` and ``manifest.json``) and a ``CURRENT`` file
names the live snapshot::

    state_dir/
        CURRENT                      # "snapshot-000000000042-1f3a9c0e"
        snapshot-000000000042-1f3a9c0e/
            policy.json  state.npz  manifest.json

A snapshot is written under a temporary name and renamed into place, then ``CURRENT`` is
replaced with :func:`os.replace`; both renames are atomic, so a crash at any point leaves the
previous or the new snapshot live, never a partial one. The manifest records the SHA-256 of the
run's model file (a state directory only ever restores the run it was created for) and of the
snapshot's state file (checked before loading).
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from rec_env.agents.base import OnlinePolicy
from rec_env.agents.runs import file_sha256, load_policy, model_file

__all__ = ["CURRENT_FILE", "MANIFEST_FILE", "PolicyStateStore", "StateManifest"]

CURRENT_FILE = "CURRENT"
MANIFEST_FILE = "manifest.json"
_PREFIX = "snapshot-"


@dataclass(frozen=True)
class StateManifest:
    """What a snapshot holds.

    Attributes:
        algorithm: The policy's algorithm.
        run_sha256: SHA-256 of the model file of the run the state started from.
        n_updates: Rewards learned since the run.
        state_file: Name of the snapshot's state file.
        state_sha256: SHA-256 of that file.
        saved_at: Unix time of the snapshot.
    """

    algorithm: str
    run_sha256: str
    n_updates: int
    state_file: str
    state_sha256: str
    saved_at: float


class PolicyStateStore:
    """Save and restore an online policy in a state directory.

    Args:
        directory: The operator-configured state directory (created if missing).
        algorithm: The served run's algorithm.
        run_sha256: SHA-256 of the served run's model file.
    """

    def __init__(self, directory: str | Path, algorithm: str, run_sha256: str) -> None:
        self.directory = Path(directory)
        self.algorithm = algorithm
        self.run_sha256 = run_sha256
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ValueError(
                f"{self.directory}: cannot create the state directory ({exc})"
            ) from None

    def load(self) -> tuple[OnlinePolicy, int] | None:
        """The live snapshot's policy and its number of updates, or None if there is none.

        Raises:
            ValueError: If the snapshot belongs to another run or algorithm, or is corrupt.
        """
        current = self.directory / CURRENT_FILE
        if not current.is_file():
            return None
        snapshot = self.directory / current.read_text(encoding="utf-8").strip()
        try:
            manifest = StateManifest(
                **json.loads((snapshot / MANIFEST_FILE).read_text(encoding="utf-8"))
            )
        except (OSError, json.JSONDecodeError, TypeError) as exc:
            raise ValueError(f"{snapshot}: unreadable state snapshot ({exc})") from None
        if manifest.algorithm != self.algorithm or manifest.run_sha256 != self.run_sha256:
            raise ValueError(
                f"{self.directory}: holds the state of another model ({manifest.algorithm}, "
                f"model SHA-256 {manifest.run_sha256[:12]}); use a fresh --state-dir"
            )
        state = snapshot / manifest.state_file
        if not state.is_file() or file_sha256(state) != manifest.state_sha256:
            raise ValueError(f"{state}: SHA-256 does not match {MANIFEST_FILE}; refusing to load")
        policy = load_policy(snapshot)
        if not isinstance(policy, OnlinePolicy):
            raise ValueError(f"{snapshot}: holds a {policy.algorithm!r} policy, not an online one")
        return policy, manifest.n_updates

    def save(self, policy: OnlinePolicy, n_updates: int) -> Path:
        """Write a snapshot of ``policy`` and make it the live one; delete older snapshots.

        Returns:
            The snapshot directory.
        """
        name = f"{_PREFIX}{n_updates:012d}-{uuid.uuid4().hex[:8]}"
        staging = self.directory / f".{name}.tmp"
        policy.save(staging)
        state = model_file(staging)
        manifest = StateManifest(
            algorithm=self.algorithm,
            run_sha256=self.run_sha256,
            n_updates=n_updates,
            state_file=state.name,
            state_sha256=file_sha256(state),
            saved_at=time.time(),
        )
        (staging / MANIFEST_FILE).write_text(json.dumps(asdict(manifest), indent=2), "utf-8")
        snapshot = self.directory / name
        os.replace(staging, snapshot)
        pointer = self.directory / f".{CURRENT_FILE}.tmp"
        pointer.write_text(name, encoding="utf-8")
        os.replace(pointer, self.directory / CURRENT_FILE)
        for old in (*self.directory.glob(f"{_PREFIX}*"), *self.directory.glob(f".{_PREFIX}*")):
            if old.name != name:  # older snapshots, and staging left by a crash
                shutil.rmtree(old, ignore_errors=True)
        return snapshot
