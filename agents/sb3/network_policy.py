r"""An SB3 actor served from its numpy copy alone: a policy that needs neither torch nor SB3.

A serving process that only decides needs the actor's forward pass, not the ~300 MB of torch
and Stable-Baselines3 it was trained with. When a run is written, the actor's numpy copy
(:func:`~rec_env.agents.sb3.network.numpy_network`) is saved next to ``model.zip`` as
:data:`NETWORK_FILE` (:func:`save_network`), and its SHA-256 goes into ``run.json``'s
``files`` like every other file (:mod:`rec_env.agents.runs`). :class:`NetworkPolicy` decides
from that file and ``policy.json``:

.. math::

    p(a \mid s) = \frac{m_a \, \mathrm{softmax}(f(s))_a}{\sum_b m_b \, \mathrm{softmax}(f(s))_b}

with ``f`` the actor network and ``m`` the combined masks, the same function the service
computes from the SB3 policy (:meth:`~rec_env.agents.sb3.network.NumpyNetwork.probabilities`),
so decisions are bit for bit those of the torch path. The file is written only for the
algorithms whose probabilities are a masked softmax of a plain MLP (:data:`NETWORK_ALGORITHMS`),
and only if the copy matches the policy on :data:`CHECK_CUSTOMERS` contexts drawn within the
feature bounds; otherwise the run is served through torch.

The file also holds the SB3 policy's learned arrays (``state.<name>``: its ``state_dict``, what
:meth:`~rec_env.agents.base.Policy.weights_sha256` hashes), so that the copy's
:meth:`~rec_env.agents.base.Policy.weights_sha256` is the SB3 policy's and a loader checks it
against ``run.json`` as it does through torch.

Importing this module imports numpy only.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from rec_env.agents.base import FeaturesLike, Policy
from rec_env.agents.sb3.network import NumpyNetwork, numpy_network

__all__ = [
    "CHECK_CUSTOMERS",
    "NETWORK_ALGORITHMS",
    "NETWORK_FILE",
    "NETWORK_POLICY_CLASSES",
    "TOLERANCE",
    "A2CNetworkPolicy",
    "MaskablePPONetworkPolicy",
    "NetworkPolicy",
    "PPONetworkPolicy",
    "network_policy",
    "save_network",
]

NETWORK_FILE = "network.npz"
"""Name of the actor's numpy copy in a run directory."""

NETWORK_ALGORITHMS = ("ppo", "a2c", "maskable_ppo")
"""Algorithms whose probabilities are a masked softmax of the actor's logits."""

TOLERANCE = 1e-5
"""Largest difference from the SB3 policy's probabilities accepted of its numpy copy (when a
run is written, and by the service deciding with the copy of a policy loaded through torch)."""

CHECK_CUSTOMERS = 256
"""Contexts, uniform within the feature bounds, on which the copy must match the policy."""

_STATE = "state."
"""Prefix of the SB3 policy's learned arrays in :data:`NETWORK_FILE`."""


class NetworkPolicy(Policy):
    """The actor of a trained PPO, A2C or MaskablePPO model, in numpy.

    Use the subclass of the algorithm, or :func:`network_policy` to read one from a run's
    files. Its configuration is the SB3 policy's (``policy.json``), so it has the same actions,
    channels, feature space and consent masks, and with the SB3 policy's learned arrays its
    :meth:`weights_sha256`; it cannot be saved or trained.

    Args:
        network: The actor's numpy copy.
        n_actions: Size of the action space.
        action_names: Names of the actions.
        random_state: Seed of the generator used by stochastic :meth:`predict`.
        action_channels: Channel of each action (consent, see
            :class:`~rec_env.agents.base.Policy`).
        features: Feature space of the observations.
        learned: The SB3 policy's learned arrays (its ``state_dict``), for
            :meth:`weights_sha256`.

    Raises:
        ValueError: If the network's input or output width is not the features' or actions'.
    """

    algorithm: ClassVar[str] = "network"
    saved_files: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        network: NumpyNetwork,
        n_actions: int,
        action_names: tuple[str, ...] | list[str] | None = None,
        random_state: int | None = None,
        *,
        action_channels: tuple[str, ...] | list[str] | None = None,
        features: FeaturesLike = None,
        learned: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        super().__init__(
            n_actions,
            action_names,
            random_state,
            action_channels=action_channels,
            features=features,
        )
        n_outputs = int(network.layers[-1].weight.shape[1])
        if network.n_features != len(self.features.names) or n_outputs != self.n_actions:
            raise ValueError(
                f"the network maps {network.n_features} features to {n_outputs} outputs; the "
                f"policy has {len(self.features.names)} features and {self.n_actions} actions"
            )
        self.network = network
        self.learned = dict(learned or {})

    def learned_arrays(self) -> dict[str, np.ndarray]:
        """The SB3 policy's learned arrays (so :meth:`weights_sha256` is the SB3 policy's)."""
        return self.learned

    def _action_probabilities(self, obs: np.ndarray, masks: np.ndarray | None) -> np.ndarray:
        """The masked softmax of the actor's logits (module docstring)."""
        return self.network.probabilities(obs, masks)

    def save(self, directory: str | Path) -> None:
        """Refused: a run is saved from its SB3 policy, which this is a copy of."""
        raise TypeError(f"{type(self).__name__} is a serving copy; save the SB3 policy instead")


class PPONetworkPolicy(NetworkPolicy):
    """The actor of a trained SB3 PPO model, in numpy."""

    algorithm: ClassVar[str] = "ppo"


class A2CNetworkPolicy(NetworkPolicy):
    """The actor of a trained SB3 A2C model, in numpy."""

    algorithm: ClassVar[str] = "a2c"


class MaskablePPONetworkPolicy(NetworkPolicy):
    """The actor of a trained sb3-contrib MaskablePPO model, in numpy.

    Its masked logits give the same probabilities as the renormalised softmax.
    """

    algorithm: ClassVar[str] = "maskable_ppo"


NETWORK_POLICY_CLASSES: dict[str, type[NetworkPolicy]] = {
    cls.algorithm: cls for cls in (PPONetworkPolicy, A2CNetworkPolicy, MaskablePPONetworkPolicy)
}
"""Algorithm name → numpy policy class."""


def _check_contexts(policy: Policy, n: int, seed: int = 0) -> np.ndarray:
    """``(n, d)`` contexts uniform over each feature's ``[center, center + width]`` (seeded).

    For bounded features that is ``[low, high]``; consent flags are 0 or 1, in every
    combination.
    """
    space = policy.features
    rng = np.random.default_rng(seed)
    obs = space.center + space.width * rng.random((n, space.d))
    if space.consent_columns is not None:
        obs[:, space.consent_columns] = rng.random((n, len(space.consent_columns))) < 0.5
    return obs


def save_network(directory: str | Path, policy: Policy) -> bool:
    """Write ``policy``'s actor as :data:`NETWORK_FILE` if it serves without torch exactly.

    Written for :data:`NETWORK_ALGORITHMS` policies with ``Discrete`` actions whose numpy copy
    exists and, rebuilt as a :class:`NetworkPolicy` from the policy's configuration, matches its
    probabilities within :data:`TOLERANCE` on :data:`CHECK_CUSTOMERS` contexts; otherwise a file
    of that name left in ``directory`` (another run's) is removed.

    Returns:
        True if the file was written.
    """
    path = Path(directory) / NETWORK_FILE
    path.unlink(missing_ok=True)
    if policy.algorithm not in NETWORK_ALGORITHMS or hasattr(policy, "slate"):
        return False
    network = numpy_network(policy)
    if network is None:
        return False
    learned = policy.learned_arrays()
    try:
        copy = _network_policy(policy.algorithm, policy.get_config(), network, learned)
    except ValueError:
        return False
    obs = _check_contexts(policy, CHECK_CUSTOMERS)
    expected = policy.action_probabilities(obs)
    if not np.allclose(copy.action_probabilities(obs), expected, rtol=0, atol=TOLERANCE):
        return False
    if copy.weights_sha256() != policy.weights_sha256():
        return False  # a configuration the copy does not reproduce
    arrays = {**network.to_arrays(), **{_STATE + name: a for name, a in learned.items()}}
    with path.open("xb") as handle:
        np.savez(handle, **arrays)
    return True


def _network_policy(
    algorithm: str,
    config: dict[str, Any],
    network: NumpyNetwork,
    learned: Mapping[str, np.ndarray],
) -> NetworkPolicy:
    """The :class:`NetworkPolicy` of ``algorithm`` from its parts.

    Raises:
        ValueError: If there is none, or the configuration has arguments it does not take.
    """
    if algorithm not in NETWORK_POLICY_CLASSES:
        raise ValueError(f"no numpy policy serves {algorithm!r} runs")
    try:
        return NETWORK_POLICY_CLASSES[algorithm](network, **config, learned=learned)
    except TypeError as exc:  # an argument of the SB3 policy the copy does not know
        raise ValueError(f"policy.json: {exc}") from None


def network_policy(payload: dict[str, Any], network_bytes: bytes) -> NetworkPolicy:
    """The numpy policy of a run from its parsed ``policy.json`` and network file.

    Args:
        payload: ``policy.json``: the algorithm, the SB3 policy's constructor arguments
            (``config``) and its generator's state, which the copy continues.
        network_bytes: The bytes of :data:`NETWORK_FILE` (already verified).

    Raises:
        ValueError: If the algorithm has no numpy policy, or the file or configuration is not
            a valid network of this policy.
    """
    try:
        with np.load(io.BytesIO(network_bytes), allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{NETWORK_FILE}: not a network archive ({exc})") from None
    learned = {name[len(_STATE) :]: a for name, a in arrays.items() if name.startswith(_STATE)}
    layers = {name: a for name, a in arrays.items() if not name.startswith(_STATE)}
    try:
        network = NumpyNetwork.from_arrays(layers)
    except ValueError as exc:
        raise ValueError(f"{NETWORK_FILE}: {exc}") from None
    policy = _network_policy(payload["algorithm"], payload["config"], network, learned)
    if "generator_state" in payload:  # as Policy.load does
        policy.random_.bit_generator.state = payload["generator_state"]
    return policy
