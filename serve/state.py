"""An online learner's state across restarts: durable snapshots in the operator's state directory.

The decision log is the source of truth of what a bandit has learned: every reward it learns
from is logged first, with a monotonic sequence number (its *seq*). A snapshot only makes
restarts fast. It holds the policy after learning every reward up to its *watermark* (the seq
of the last reward learned); at startup the service restores the newest intact snapshot and
replays the logged rewards after the watermark
(:meth:`~rec_env.serve.service.DecisionService.from_settings`)::

    state_dir/
        CURRENT                      # "snapshot-000000000042-1f3a9c0e" (watermark 42)
        snapshot-000000000042-1f3a9c0e/
            policy.json  state.npz  manifest.json
        snapshot-000000000037-7d01b2aa/   # the previous one, kept as a fallback

Writing a snapshot (:meth:`PolicyStateStore.save`):

1. the policy's files and the manifest (their SHA-256, the watermark, the run's SHA-256) are
   written into a staging directory, each file fsynced, then the directory;
2. the staging directory is renamed into place and the state directory fsynced;
3. ``CURRENT`` is written to a temporary file, fsynced, renamed over the old one, and the state
   directory fsynced again;
4. only then are snapshots older than the previous one deleted (the last two are kept).

A crash or a power loss at any point leaves at least one intact snapshot. Loading
(:meth:`PolicyStateStore.load`) tries the snapshots newest first, so a ``CURRENT`` that is
garbage or names a missing, partial or corrupt snapshot costs only a longer replay, with a
warning. A state directory that holds another model's state is refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rec_env.agents.base import OnlinePolicy
from rec_env.agents.integrity import load_verified_policy

__all__ = [
    "CURRENT_FILE",
    "MANIFEST_FILE",
    "PolicyStateStore",
    "RestoredState",
    "StateManifest",
]

logger = logging.getLogger(__name__)

CURRENT_FILE = "CURRENT"
MANIFEST_FILE = "manifest.json"
_PREFIX = "snapshot-"
_DISCARDED = "discarded-"
_NAME = re.compile(r"snapshot-\d{12}-[0-9a-f]{8}")


@dataclass(frozen=True)
class StateManifest:
    """What a snapshot holds.

    Attributes:
        algorithm: The policy's algorithm.
        run_sha256: SHA-256 of the model file of the run the state started from.
        n_updates: Rewards learned since the run.
        reward_seq: The watermark: seq of the last reward learned (0: none).
        files: SHA-256 of each file of the snapshot but the manifest, by name.
        saved_at: Unix time of the snapshot.
        log_id: Identity of the decision log whose rewards the policy learned (its watermark
            is a position in that log only).
    """

    algorithm: str
    run_sha256: str
    n_updates: int
    reward_seq: int
    files: dict[str, str] = field(default_factory=dict)
    saved_at: float = 0.0
    log_id: str = ""


@dataclass(frozen=True)
class RestoredState:
    """A snapshot loaded by :meth:`PolicyStateStore.load`.

    Attributes:
        policy: The policy as it was when the snapshot was taken.
        n_updates: Rewards it had learned from.
        reward_seq: Seq of the last reward it learned (replay the log after it).
        snapshot: The snapshot directory.
        log_id: Identity of the decision log it learned from.
    """

    policy: OnlinePolicy
    n_updates: int
    reward_seq: int
    snapshot: Path
    log_id: str = ""


def _sha256(path: Path) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    """Flush a file or a directory (its entries: creations, renames) to the disk."""
    flags = os.O_RDONLY
    if path.is_dir():
        if os.name == "nt":  # pragma: no cover - Windows cannot open a directory
            return
        flags |= os.O_DIRECTORY
    descriptor = os.open(path, flags)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _write_durably(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` and fsync it (not its directory)."""
    with path.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


_FIELD_TYPES = {
    "algorithm": str,
    "run_sha256": str,
    "n_updates": int,
    "reward_seq": int,
    "files": dict,
    "saved_at": (int, float),
    "log_id": str,
}


def _parse_manifest(text: str) -> StateManifest:
    """A manifest from its JSON text.

    Raises:
        ValueError: If it is not JSON.
        TypeError: If a field is missing, unknown or of the wrong type.
    """
    payload = json.loads(text)
    if not isinstance(payload, dict):
        raise TypeError("not a JSON object")
    manifest = StateManifest(**payload)
    for name, kind in _FIELD_TYPES.items():
        value = getattr(manifest, name)
        if isinstance(value, bool) or not isinstance(value, kind):
            raise TypeError(f"{name} is {value!r}")
    return manifest


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
        self.log_id = ""  # the decision log's identity, set once the log is open
        self._live: str | None = None  # the snapshot last loaded or saved: known intact
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ValueError(
                f"{self.directory}: cannot create the state directory ({exc})"
            ) from None

    # ------------------------------------------------------------------ loading
    def load(self, max_reward_seq: int | None = None) -> RestoredState | None:
        """The newest intact snapshot, or None if there is none (start from the run).

        Snapshots are tried newest first (by watermark); a missing, partial or corrupt one is
        skipped with a warning, and so is a garbage ``CURRENT``: the log's replay makes the
        fallback lossless.

        Args:
            max_reward_seq: The decision log's last reward seq. A snapshot with a higher
                watermark learned rewards the log no longer holds (it lost its last commits in
                a power loss, or is another database): it is renamed ``discarded-...`` so it is
                never loaded, and an older one is used.

        Raises:
            ValueError: If a snapshot belongs to another model (run or algorithm).
        """
        current = self._current()
        manifests = self._manifests()
        ordered = sorted(
            manifests.items(),
            key=lambda item: (item[1].reward_seq, item[1].n_updates, item[1].saved_at),
            reverse=True,
        )
        for name, manifest in ordered:
            if max_reward_seq is not None and manifest.reward_seq > max_reward_seq:
                ahead = f"watermark {manifest.reward_seq} > the log's last reward {max_reward_seq}"
                self._discard(name, ahead)
                continue
            restored = self._restore(name, manifest)
            if restored is not None:
                if current is not None and current != name:
                    logger.warning(
                        "%s: %s names %s; restored %s", self.directory, CURRENT_FILE, current, name
                    )
                self._live = name
                return restored
        if current is not None or manifests:
            logger.warning("%s: no intact snapshot; starting from the run", self.directory)
        return None

    def _current(self) -> str | None:
        """The snapshot ``CURRENT`` names, or None if it is missing or garbage (warned)."""
        path = self.directory / CURRENT_FILE
        if not path.exists():
            return None
        try:
            name = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            name = ""
        if _NAME.fullmatch(name) is None:
            logger.warning("%s: unreadable; falling back to the newest intact snapshot", path)
            return None
        return name

    def _manifests(self) -> dict[str, StateManifest]:
        """The readable manifests of the snapshots, by snapshot name (unreadable: warned).

        Raises:
            ValueError: If one belongs to another model.
        """
        manifests = {}
        for snapshot in self.directory.glob(f"{_PREFIX}*"):
            if _NAME.fullmatch(snapshot.name) is None:
                continue
            try:
                manifest = _parse_manifest((snapshot / MANIFEST_FILE).read_text(encoding="utf-8"))
            except (OSError, ValueError, TypeError) as exc:  # JSONDecodeError is a ValueError
                logger.warning("%s: unreadable state snapshot, skipped (%s)", snapshot, exc)
                continue
            if manifest.algorithm != self.algorithm or manifest.run_sha256 != self.run_sha256:
                raise ValueError(
                    f"{self.directory}: holds the state of another model ({manifest.algorithm}, "
                    f"model SHA-256 {manifest.run_sha256[:12]}); use a fresh --state-dir"
                )
            manifests[snapshot.name] = manifest
        return manifests

    def _restore(self, name: str, manifest: StateManifest) -> RestoredState | None:
        """Load one snapshot after checking its files, or None (warned) if it is not intact."""
        snapshot = self.directory / name
        try:
            present = {p.name for p in snapshot.iterdir() if p.name != MANIFEST_FILE}
            if not manifest.files or present != set(manifest.files):
                raise ValueError(f"holds {sorted(present)}, expected {sorted(manifest.files)}")
            # from exactly the bytes whose SHA-256 was checked, as for a run directory
            policy = load_verified_policy(snapshot, manifest.algorithm, manifest.files)
        except (OSError, ValueError, KeyError) as exc:
            logger.warning("%s: corrupt state snapshot, skipped (%s)", snapshot, exc)
            return None
        if not isinstance(policy, OnlinePolicy) or policy.algorithm != self.algorithm:
            logger.warning("%s: not a %s policy, skipped", snapshot, self.algorithm)
            return None
        return RestoredState(
            policy, manifest.n_updates, manifest.reward_seq, snapshot, manifest.log_id
        )

    def _discard(self, name: str, reason: str) -> None:
        """Rename a snapshot so that it is never loaded again (kept for the operator)."""
        target = self.directory / f"{_DISCARDED}{name}"
        logger.warning("%s: %s; renamed to %s", self.directory / name, reason, target.name)
        os.replace(self.directory / name, target)
        _fsync(self.directory)

    # ------------------------------------------------------------------ saving
    def save(self, policy: OnlinePolicy, n_updates: int, reward_seq: int) -> Path:
        """Write a durable snapshot of ``policy`` and make it the live one (module docstring).

        Args:
            policy: The policy (not changed while this runs: pass a copy if it learns).
            n_updates: Rewards it has learned from.
            reward_seq: Seq of the last reward it learned.

        Returns:
            The snapshot directory.
        """
        name = f"{_PREFIX}{reward_seq:012d}-{uuid.uuid4().hex[:8]}"
        staging = self.directory / f".{name}.tmp"
        try:
            policy.save(staging)
            files = {path.name: _sha256(path) for path in sorted(staging.iterdir())}
            manifest = StateManifest(
                algorithm=self.algorithm,
                run_sha256=self.run_sha256,
                n_updates=n_updates,
                reward_seq=reward_seq,
                files=files,
                saved_at=time.time(),
                log_id=self.log_id,
            )
            _write_durably(staging / MANIFEST_FILE, json.dumps(asdict(manifest), indent=2))
            for file_name in files:
                _fsync(staging / file_name)
            _fsync(staging)
            snapshot = self.directory / name
            os.replace(staging, snapshot)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        _fsync(self.directory)
        pointer = self.directory / f".{CURRENT_FILE}.tmp"
        _write_durably(pointer, name)
        os.replace(pointer, self.directory / CURRENT_FILE)
        _fsync(self.directory)
        previous, self._live = self._live, name
        self._prune(keep={name, previous})
        return snapshot

    def _prune(self, keep: set[str | None]) -> None:
        """Delete every snapshot but ``keep``, and staging directories left by a crash.

        ``keep`` holds the new snapshot and the previous live one (its fallback); this runs
        only once the new snapshot and ``CURRENT`` are durable.
        """
        for old in (*self.directory.glob(f"{_PREFIX}*"), *self.directory.glob(f".{_PREFIX}*")):
            if old.name not in keep:
                with contextlib.suppress(OSError):
                    shutil.rmtree(old)
