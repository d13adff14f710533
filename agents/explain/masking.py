"""The actions an explained policy may take: consent (where the features carry it) and exclusions.

The consent mask is part of the explained function. Where the feature space has the consent
columns (:func:`rec_env.features.consent_columns`), the mask of every coalition is recomputed
from that coalition's consent values with :func:`rec_env.features.consent_masks`
(:meth:`ActionMasking.allowed`), so
``consent_sms = 0`` gets the credit for the probability that moved off the SMS actions. A foreign
feature space without them has no consent mask; only the caller's exclusions apply.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rec_env.catalog import ActionTable
from rec_env.features import consent_columns, consent_masks

__all__ = ["ActionMasking"]


@dataclass(frozen=True)
class ActionMasking:
    """Allowed actions of the rows of an ``(n, d)`` context.

    Attributes:
        n_actions: Number of actions.
        columns: Columns of the consent features (:data:`~rec_env.features.CHANNELS` order), or
            None if the feature space has none.
        channel: ``(n_actions,)`` channel index of each action (with ``columns`` only).
    """

    n_actions: int
    columns: list[int] | None = None
    channel: np.ndarray | None = None

    @classmethod
    def for_features(
        cls, feature_names: tuple[str, ...], n_actions: int, table: ActionTable | None
    ) -> ActionMasking:
        """The masking of a feature space: consent masks if it has the consent columns.

        Raises:
            ValueError: If the features carry consent but ``table`` is None or has another
                number of actions.
        """
        columns = consent_columns(feature_names)
        if columns is None:
            return cls(n_actions)
        if table is None or table.n_actions != n_actions:
            found = "no catalog" if table is None else f"a catalog of {table.n_actions}"
            raise ValueError(
                f"the features carry consent, so the policy's {n_actions} actions need a catalog "
                f"with their channels; got {found}"
            )
        return cls(n_actions, columns, np.asarray(table.channel))

    def allowed(self, obs: np.ndarray, excluded: np.ndarray | None = None) -> np.ndarray:
        """``(n, n_actions)`` bool: consent on the action's channel (if known), not excluded.

        Args:
            obs: ``(n, d)`` contexts.
            excluded: ``(n_actions,)`` or ``(n, n_actions)`` bool, True for excluded actions.
        """
        obs = np.atleast_2d(obs)
        if self.columns is None:
            masks = np.ones((obs.shape[0], self.n_actions), dtype=bool)
        else:
            assert self.channel is not None
            masks = consent_masks(obs[:, self.columns], self.channel)
        if excluded is not None:
            masks &= ~np.asarray(excluded, dtype=bool)
        return masks
