"""Loading a saved policy from exactly the bytes that were hashed.

A run directory (:mod:`rec_env.agents.runs`) records the SHA-256 of every file its policy's
loader reads. :func:`load_verified_policy` reads each of those files once into memory, refusing
symbolic links and anything but regular files, checks its hash, writes the verified bytes into
a private temporary directory and loads the policy from there: a file swapped or altered
between the check and the load cannot be loaded. It also refuses a list of files that is not
exactly what the algorithm's loader reads, and a known policy file present but unlisted.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rec_env.agents.base import POLICY_FILE, Policy, read_policy_file

__all__ = [
    "POLICY_FILES",
    "RUN_FILE",
    "file_sha256",
    "load_policy",
    "load_verified_policy",
    "model_file",
    "policy_class",
    "policy_digests",
    "read_verified_files",
    "refuse_unlisted",
]

RUN_FILE = "run.json"
"""The record of a run directory, which holds the hashes."""

POLICY_FILES: tuple[str, ...] = ("model.zip", "state.npz", POLICY_FILE)
"""Every file a policy loader may read, by name in the run directory (the main model first)."""


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_file(directory: str | Path) -> Path:
    """The main file of a saved policy: ``model.zip``, ``state.npz``, else ``policy.json``.

    Raises:
        ValueError: If the directory holds none of them.
    """
    directory = Path(directory)
    for name in POLICY_FILES:
        if (directory / name).is_file():
            return directory / name
    raise ValueError(f"{directory}: no model file ({', '.join(POLICY_FILES)})")


def policy_class(algorithm: str) -> type[Policy]:
    """The policy class that loads runs of ``algorithm`` (SB3, bandit, baseline or offline).

    Raises:
        ValueError: If no saved policy has that algorithm.
    """
    from rec_env.agents import baselines
    from rec_env.agents.registry import BANDIT_ALGORITHMS, SB3_ALGORITHMS

    if algorithm in SB3_ALGORITHMS:
        from rec_env.agents.sb3 import POLICY_CLASSES

        return POLICY_CLASSES[algorithm]
    if algorithm in BANDIT_ALGORITHMS:
        from rec_env.agents.bandits import BANDITS

        return BANDITS[algorithm]
    stateless = (baselines.RandomPolicy, baselines.FixedActionPolicy, baselines.FlagTargetedPolicy)
    for cls in stateless:
        if cls.algorithm == algorithm:
            return cls
    from rec_env.agents.offline.learners import offline_policy_classes

    offline = offline_policy_classes()  # learned from logs (recenv offline)
    if algorithm in offline:
        return offline[algorithm]
    raise ValueError(f"unknown algorithm {algorithm!r}: no saved policy has it")


def load_policy(directory: str | Path) -> Policy:
    """Load a saved policy by the algorithm in its ``policy.json``, *unverified*.

    For directories this process wrote itself; a run directory goes through
    :func:`rec_env.agents.runs.load_run`, which loads through :func:`load_verified_policy`.

    Raises:
        ValueError: If ``policy.json`` is missing or malformed or names an unknown algorithm.
    """
    algorithm = read_policy_file(directory)["algorithm"]
    try:
        cls = policy_class(algorithm)
    except ValueError:
        raise ValueError(f"{directory}: unknown algorithm {algorithm!r} in policy.json") from None
    return cls.load(directory)


def policy_digests(directory: str | Path, policy: Policy) -> dict[str, Any]:
    """The integrity fields of ``run.json`` for ``policy``, just saved into ``directory``.

    Returns:
        ``{"files": {name: SHA-256}, "weights_sha256": ...}``, to pass to
        :class:`~rec_env.agents.runs.RunInfo`.
    """
    directory = Path(directory)
    files = {name: file_sha256(directory / name) for name in sorted(policy.saved_files)}
    return {"files": files, "weights_sha256": policy.weights_sha256()}


def _read_regular_file(path: Path) -> bytes:
    """The bytes of ``path``, which must be a regular file and not a symbolic link.

    Raises:
        ValueError: If it is missing, a link, not a regular file or unreadable.
    """
    try:
        # O_NONBLOCK: a FIFO planted under a policy file's name must not block the open.
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        descriptor = os.open(path, flags)
    except FileNotFoundError:
        raise ValueError(f"{path}: missing") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # O_NOFOLLOW on a symbolic link
            raise ValueError(
                f"{path}: a symbolic link; a run directory holds its own files"
            ) from None
        raise ValueError(f"{path}: cannot be read ({exc.strerror})") from None
    with os.fdopen(descriptor, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise ValueError(f"{path}: not a regular file")
        return handle.read()


def _check_listed(directory: Path, cls: type[Policy], files: dict[str, str]) -> None:
    """Refuse ``files`` unless it lists exactly what ``cls`` loads, and no other policy file.

    Raises:
        ValueError: Naming the file missing from, or extra in, ``files``.
    """
    where = directory / RUN_FILE
    for name in cls.saved_files:
        if name not in files:
            raise ValueError(
                f"{where}: files does not list {name}, which a {cls.algorithm} policy loads; "
                "refusing the run"
            )
    for name in files:
        if name not in cls.saved_files:
            raise ValueError(
                f"{where}: files lists {name}, which a {cls.algorithm} policy does not load; "
                "refusing the run"
            )
    refuse_unlisted(directory, files)


def refuse_unlisted(
    directory: str | Path, files: Mapping[str, str], names: Sequence[str] = POLICY_FILES
) -> None:
    """Refuse a run directory holding one of ``names`` that ``files`` does not list.

    Raises:
        ValueError: Naming the file present but not listed (not hashed).
    """
    directory = Path(directory)
    for name in names:
        if name not in files and os.path.lexists(directory / name):
            raise ValueError(
                f"{directory / name}: present but not listed in {RUN_FILE} (not hashed); "
                "refusing the run"
            )


def read_verified_files(
    directory: str | Path, files: dict[str, str], *, check_sha256: bool = True
) -> dict[str, bytes]:
    """The bytes of each of ``files`` in ``directory``, read once and checked against its hash.

    Args:
        directory: The directory holding the files.
        files: ``{name: SHA-256}``.
        check_sha256: Compare each file's SHA-256 with ``files``.

    Raises:
        ValueError: If a file is missing, a link, not a regular file, or altered.
    """
    directory = Path(directory)
    contents = {name: _read_regular_file(directory / name) for name in files}
    for name, data in contents.items():
        if check_sha256 and hashlib.sha256(data).hexdigest() != files[name]:
            raise ValueError(
                f"{directory / name}: SHA-256 does not match {RUN_FILE}; refusing to load it"
            )
    return contents


def load_verified_policy(
    directory: str | Path,
    algorithm: str,
    files: dict[str, str],
    weights_sha256: str | None = None,
    *,
    check_sha256: bool = True,
) -> Policy:
    """Load the ``algorithm`` policy of ``directory`` from exactly the bytes hashed in ``files``.

    Each file is read once into memory and its SHA-256 checked; the verified bytes are written
    into a private temporary directory and the policy is loaded from there, so no change to
    ``directory`` between the check and the load can matter.

    Args:
        directory: The directory holding the policy's files.
        algorithm: The policy's algorithm (it picks the loader and the files it needs).
        files: ``{name: SHA-256}`` of every file the loader reads.
        weights_sha256: Expected :meth:`~rec_env.agents.base.Policy.weights_sha256` of the
            loaded policy (``None``: not checked).
        check_sha256: Compare the files' SHA-256 with ``files`` (``False`` only for
            directories this process wrote itself).

    Raises:
        ValueError: If ``files`` does not list exactly the loader's files, a known policy file
            is present but unlisted, a file is missing, a link or altered, the policy cannot
            be loaded, or its weights do not match.
    """
    directory = Path(directory)
    cls = policy_class(algorithm)
    _check_listed(directory, cls, files)
    contents = read_verified_files(directory, files, check_sha256=check_sha256)
    with tempfile.TemporaryDirectory(prefix="recenv-verified-") as private:
        for name, data in contents.items():
            with open(Path(private) / name, "xb") as handle:
                handle.write(data)
        try:
            policy = cls.load(private)
        except ValueError as exc:
            raise ValueError(str(exc).replace(private, str(directory))) from None
        except Exception as exc:  # a run directory is input: unreadable is bad input
            kind = type(exc).__name__
            raise ValueError(f"{directory}: cannot load its {algorithm} policy ({kind})") from exc
    if weights_sha256 is not None and policy.weights_sha256() != weights_sha256:
        raise ValueError(
            f"{directory}: the loaded policy's weights do not match weights_sha256 in "
            f"{RUN_FILE}; refusing it"
        )
    return policy
