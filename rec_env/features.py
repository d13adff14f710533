"""The observation vector: names, units, bounds and meaning of every feature.

This table is the single source for the observation space bounds, the env docstring,
the serving schema and the CLI's validation of example customers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "CHANNELS",
    "CONSENT_FEATURES",
    "FEATURES",
    "FEATURE_HIGH",
    "FEATURE_INDEX",
    "FEATURE_NAMES",
    "HISTORY_START",
    "OBS_HIGH",
    "OBS_LOW",
    "PROFILE_FEATURES",
    "Feature",
    "consent_columns",
    "consent_masks",
]

CHANNELS: tuple[str, ...] = ("email", "sms", "push")
"""Contact channels, in the order used by every per-channel array."""


@dataclass(frozen=True)
class Feature:
    """One observed feature of a customer.

    Attributes:
        name: Column name, also the JSON key in example users and API requests.
        unit: Unit of measurement.
        low: Smallest possible value.
        high: Largest possible value.
        binary: Whether the feature only takes the values 0 and 1.
        description: What the feature means.
    """

    name: str
    unit: str
    low: float
    high: float
    binary: bool
    description: str


FEATURES: tuple[Feature, ...] = (
    Feature(
        "recency",
        "days",
        0.0,
        730.0,
        False,
        "Days since the customer last interacted: a purchase, a site visit or an opened message.",
    ),
    Feature(
        "frequency",
        "purchases/year",
        0.0,
        60.0,
        False,
        "Exponentially weighted purchase count with a 365-day time constant "
        "(about the purchases of the last year).",
    ),
    Feature(
        "monetary_value",
        "USD",
        0.0,
        2000.0,
        False,
        "Average order value, exponentially weighted (weight 0.3 on each new order).",
    ),
    Feature(
        "engagement_score",
        "score",
        0.0,
        1.0,
        False,
        "Engagement with the brand: rises with opens, visits and purchases, decays otherwise.",
    ),
    Feature(
        "discount_sensitive",
        "flag",
        0.0,
        1.0,
        True,
        "1 if the CRM tags the customer as a discount / coupon user.",
    ),
    Feature(
        "free_shipping_preferred",
        "flag",
        0.0,
        1.0,
        True,
        "1 if the CRM tags the customer as preferring free shipping offers.",
    ),
    Feature(
        "email_opens",
        "rate",
        0.0,
        1.0,
        False,
        "Observed share of delivered e-mails the customer opened and clicked "
        "(moving average, weight 0.1 per e-mail).",
    ),
    Feature(
        "sms_response",
        "rate",
        0.0,
        1.0,
        False,
        "Observed share of delivered SMS the customer clicked (moving average).",
    ),
    Feature(
        "push_response",
        "rate",
        0.0,
        1.0,
        False,
        "Observed share of delivered push notifications the customer opened (moving average).",
    ),
    Feature(
        "last_purchase_days",
        "days",
        0.0,
        730.0,
        False,
        "Days since the last purchase (RFM recency in the strict sense).",
    ),
    Feature(
        "days_since_contact",
        "days",
        0.0,
        365.0,
        False,
        "Days since a message was last delivered on any channel.",
    ),
    Feature(
        "contacts_last_30d",
        "messages",
        0.0,
        31.0,
        False,
        "Messages delivered in the last 30 days (the last round(30 / cycle_days) cycles).",
    ),
    Feature(
        "discounts_last_90d",
        "offers",
        0.0,
        91.0,
        False,
        "Discount offers delivered in the last 90 days (the last round(90 / cycle_days) cycles).",
    ),
    Feature(
        "consent_email",
        "flag",
        0.0,
        1.0,
        True,
        "1 while the customer accepts marketing e-mail; an unsubscribe sets it to 0 for good.",
    ),
    Feature(
        "consent_sms",
        "flag",
        0.0,
        1.0,
        True,
        "1 while the customer accepts marketing SMS.",
    ),
    Feature(
        "consent_push",
        "flag",
        0.0,
        1.0,
        True,
        "1 while the customer accepts push notifications.",
    ),
)

FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
FEATURE_INDEX: dict[str, int] = {name: i for i, name in enumerate(FEATURE_NAMES)}
PROFILE_FEATURES: tuple[str, ...] = FEATURE_NAMES[:10]
"""The classic marketing profile: the first ten features."""
CONSENT_FEATURES: tuple[str, ...] = tuple(f"consent_{c}" for c in CHANNELS)
FEATURE_HIGH: dict[str, float] = {f.name: f.high for f in FEATURES}
"""Upper bound of each feature by name, for the dynamics' clipping and the samplers."""
OBS_LOW = np.array([f.low for f in FEATURES], dtype=np.float32)
OBS_HIGH = np.array([f.high for f in FEATURES], dtype=np.float32)


HISTORY_START: dict[str, float] = {
    "recency": FEATURE_HIGH["recency"],
    "frequency": 0.0,
    "monetary_value": 0.0,
    "engagement_score": 0.0,
    "discount_sensitive": 0.0,
    "free_shipping_preferred": 0.0,
    "email_opens": 0.045,
    "sms_response": 0.055,
    "push_response": 0.045,
    "last_purchase_days": FEATURE_HIGH["last_purchase_days"],
    "days_since_contact": FEATURE_HIGH["days_since_contact"],
    "contacts_last_30d": 0.0,
    "discounts_last_90d": 0.0,
    "consent_email": 0.0,
    "consent_sms": 0.0,
    "consent_push": 0.0,
}
"""The features of a customer before any event: where the feature builder starts each one.

Nothing bought, seen or sent yet: the day counts at their caps, no average order (the first
order sets it), engagement 0, and the response rates at the default population's medians (a
rate moves a tenth of the way to each message's response, so it needs a prior). Consent and the
CRM tags come from their own tables, not from events.
"""


def consent_masks(consent: np.ndarray, channel: np.ndarray) -> np.ndarray:
    """The one definition of consent masks: which actions may go to which customers.

    An action is allowed when it sends nothing (its channel is ``len(CHANNELS)``) or when the
    customer consents to its channel. Every path that masks actions (the env, the vector envs,
    the policies, the explainer, the service) comes here.

    Args:
        consent: ``(n, len(CHANNELS))`` consent flags in :data:`CHANNELS` order (> 0.5 is
            consent).
        channel: ``(n_actions,)`` channel index of each action
            (:attr:`rec_env.catalog.ActionTable.channel`).

    Returns:
        ``(n, n_actions)`` bool.
    """
    consent = np.asarray(consent) > 0.5
    padded = np.ones((consent.shape[0], len(CHANNELS) + 1), dtype=bool)
    padded[:, : len(CHANNELS)] = consent
    return padded[:, channel]


def consent_columns(feature_names: tuple[str, ...] | list[str]) -> list[int] | None:
    """Column indices of the consent features in ``feature_names`` (:data:`CHANNELS` order).

    Returns:
        The indices, or ``None`` if any consent feature is absent (the context carries no
        consent, for example a foreign data set).
    """
    names = list(feature_names)
    if not all(name in names for name in CONSENT_FEATURES):
        return None
    return [names.index(name) for name in CONSENT_FEATURES]
