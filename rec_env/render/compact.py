"""Small pictures and one-line texts of a customer, with numpy alone.

The vector envs draw one :func:`render_rgb` picture per customer (a batch of 1,024 cannot afford a
matplotlib figure each); the single-customer envs draw :func:`rec_env.render.figure.draw_customer`.

:func:`render_rgb` draws a small ``(H, W, 3)`` uint8 picture:

* top: one bar per observed feature, scaled to [0, 1] (:func:`rec_env.wrappers.scale_features`);
  blue for the profile, purple for the CRM flags, orange for the contact state, and the three
  consent flags green (consent) or red (none);
* one block per action: grey if allowed, dark if its channel has no consent, yellow for the
  action taken in the last cycle;
* five lamps for the last cycle's outcome: delivered, opened, purchased, unsubscribed, churned;
* the last reward as a bar from the centre, green to the right when positive, red to the left
  when negative (log scale, full width at 100).

:func:`render_text` is the ``"ansi"`` form: the last action and reward, then every feature.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from rec_env.features import CONSENT_FEATURES, FEATURE_NAMES
from rec_env.wrappers import scale_features

__all__ = ["OUTCOME_LAMPS", "render_rgb", "render_text"]

OUTCOME_LAMPS: tuple[str, ...] = ("delivered", "opened", "purchased", "unsubscribed", "churned")
"""Outcome fields shown as lamps, left to right."""

_BAR, _GAP, _MARGIN = 8, 2, 4
_FEATURE_ROWS, _ACTION_ROWS, _LAMP_ROWS, _REWARD_ROWS = 60, 12, 12, 10
_REWARD_FULL_SCALE = 100.0

_BACKGROUND = (24, 24, 32)
_TRACK = (52, 52, 64)
_PROFILE, _FLAG, _CONTACT_STATE = (70, 130, 220), (160, 100, 220), (230, 150, 40)
_CONSENT_ON, _CONSENT_OFF = (60, 180, 90), (200, 60, 60)
_ALLOWED, _MASKED, _TAKEN = (100, 100, 112), (40, 40, 48), (240, 200, 40)
_LAMP_OFF = (60, 60, 70)
_LAMP_ON = ((60, 200, 220), (90, 140, 250), (60, 200, 90), (240, 150, 40), (220, 50, 50))
_POSITIVE, _NEGATIVE, _CENTRE = (60, 200, 90), (220, 60, 60), (200, 200, 200)
_CONTACT_STATE_FEATURES = ("days_since_contact", "contacts_last_30d", "discounts_last_90d")
_FLAG_FEATURES = ("discount_sensitive", "free_shipping_preferred")


def _feature_colour(name: str, value: float) -> tuple[int, int, int]:
    if name in CONSENT_FEATURES:
        return _CONSENT_ON if value > 0.5 else _CONSENT_OFF
    if name in _FLAG_FEATURES:
        return _FLAG
    if name in _CONTACT_STATE_FEATURES:
        return _CONTACT_STATE
    return _PROFILE


def _draw_features(image: np.ndarray, top: int, features: np.ndarray) -> None:
    scaled = scale_features(features)
    for i, (name, value) in enumerate(zip(FEATURE_NAMES, features, strict=True)):
        x = _MARGIN + i * (_BAR + _GAP)
        image[top : top + _FEATURE_ROWS, x : x + _BAR] = _TRACK
        if name in CONSENT_FEATURES:  # a flag that matters either way: always a full bar
            height = _FEATURE_ROWS
        else:
            height = round(float(scaled[i]) * _FEATURE_ROWS)
        colour = _feature_colour(name, float(value))
        image[top + _FEATURE_ROWS - height : top + _FEATURE_ROWS, x : x + _BAR] = colour


def _draw_actions(image: np.ndarray, top: int, masks: np.ndarray, action: int | None) -> None:
    width = (image.shape[1] - 2 * _MARGIN) // masks.size
    for a, allowed in enumerate(masks):
        x = _MARGIN + a * width
        colour = _TAKEN if a == action else (_ALLOWED if allowed else _MASKED)
        image[top : top + _ACTION_ROWS, x : x + max(width - 1, 1)] = colour


def _draw_outcome(image: np.ndarray, top: int, outcome: Mapping[str, float] | None) -> None:
    width = (image.shape[1] - 2 * _MARGIN) // len(OUTCOME_LAMPS)
    for k, name in enumerate(OUTCOME_LAMPS):
        lit = outcome is not None and outcome.get(name, 0.0) > 0.5
        x = _MARGIN + k * width
        image[top : top + _LAMP_ROWS, x : x + width - 2] = _LAMP_ON[k] if lit else _LAMP_OFF
    top += _LAMP_ROWS + 6
    centre = image.shape[1] // 2
    image[top : top + _REWARD_ROWS, centre] = _CENTRE
    reward = 0.0 if outcome is None else float(outcome.get("reward", 0.0))
    half = centre - _MARGIN
    fraction = min(np.log1p(abs(reward)) / np.log1p(_REWARD_FULL_SCALE), 1.0)
    length = max(round(half * fraction), 1)  # a non-zero reward always shows its sign
    if reward > 0:
        image[top : top + _REWARD_ROWS, centre + 1 : centre + 1 + length] = _POSITIVE
    elif reward < 0:
        image[top : top + _REWARD_ROWS, centre - length : centre] = _NEGATIVE


def render_rgb(
    features: np.ndarray,
    masks: np.ndarray,
    action: int | None = None,
    outcome: Mapping[str, float] | None = None,
) -> np.ndarray:
    """A picture of one customer and of the last cycle (layout in the module docstring).

    Args:
        features: ``(n_features,)`` observed features in the env's units.
        masks: ``(n_actions,)`` bool, False for actions on channels without consent.
        action: The action of the last cycle, or ``None`` before the first.
        outcome: The last cycle's ``reward`` and outcome fields (:data:`OUTCOME_LAMPS`), or
            ``None`` before the first.

    Returns:
        ``(H, W, 3)`` uint8 image; its size depends only on the number of actions.
    """
    masks = np.asarray(masks, dtype=bool)
    width = max(2 * _MARGIN + len(FEATURE_NAMES) * (_BAR + _GAP), 2 * _MARGIN + 6 * masks.size)
    rows = (_FEATURE_ROWS, _ACTION_ROWS, _LAMP_ROWS, _REWARD_ROWS)
    height = 2 * _MARGIN + sum(rows) + 6 * (len(rows) - 1)
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[:] = _BACKGROUND
    top = _MARGIN
    _draw_features(image, top, np.asarray(features, dtype=np.float64))
    top += _FEATURE_ROWS + 6
    _draw_actions(image, top, masks, action)
    top += _ACTION_ROWS + 6
    _draw_outcome(image, top, outcome)
    return image


def render_text(
    features: np.ndarray,
    cycle: int,
    segment: str,
    action_names: Sequence[str],
    action: int | None = None,
    outcome: Mapping[str, float] | None = None,
    feature_names: Sequence[str] = FEATURE_NAMES,
) -> str:
    """The ``"ansi"`` rendering: cycle, segment, last action and reward, then the features.

    Example: ``cycle 3 [bargain_hunters] last: discount_10_email reward=+2.35 (delivered,
    opened, purchased) | recency=0, frequency=4.1, …``.
    """
    if action is None or outcome is None:
        last = "last: none"
    else:
        happened = [name for name in OUTCOME_LAMPS if outcome.get(name, 0.0) > 0.5]
        last = f"last: {action_names[action]} reward={float(outcome.get('reward', 0.0)):+.4g}"
        last += f" ({', '.join(happened)})" if happened else ""
    cells = [f"{name}={value:.4g}" for name, value in zip(feature_names, features, strict=True)]
    return f"cycle {cycle} [{segment}] {last} | " + ", ".join(cells)
