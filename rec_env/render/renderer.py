"""What a single-customer env keeps to render pictures: the timeline and, for ``"human"``, a window.

:class:`CustomerRenderer` records every step while an env renders, draws frames with
:func:`rec_env.render.figure.draw_customer` (matplotlib, imported on the first frame) and shows
them in a matplotlib window for ``render_mode="human"``. Without a display it warns once and
shows nothing (record the frames with ``render_mode="rgb_array"`` instead).
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from rec_env.render.timeline import ActionGlyph, CustomerTimeline, action_glyphs

__all__ = ["IMAGE_RENDER_MODES", "CustomerRenderer", "HumanWindow"]

IMAGE_RENDER_MODES: tuple[str, ...] = ("rgb_array", "human")
"""Render modes that draw the picture (``"ansi"`` is text)."""

_NON_INTERACTIVE = {"agg", "cairo", "pdf", "pgf", "ps", "svg", "template"}


class CustomerRenderer:
    """The pictures of one env's current customer.

    Args:
        actions: The env's action table (strategy ``ActionTable`` or ``ItemActionTable``).
        horizon: Cycles per episode (the time axis).
        render_fps: Frames per second of the ``"human"`` window.
        title: Text before the segment in every frame's header.
    """

    def __init__(self, actions: Any, horizon: int, render_fps: float, title: str = "") -> None:
        self.names: tuple[str, ...] = tuple(actions.names)
        self.glyphs = action_glyphs(actions)
        self.offer_kinds = tuple(dict.fromkeys(g.kind for g in self.glyphs if g.kind != "none"))
        self.timeline = CustomerTimeline(horizon)
        self.title = title
        self.render_fps = render_fps
        self._window: HumanWindow | None = None

    def reset(self) -> None:
        """A new customer: forget the last one's cycles."""
        self.timeline.clear()

    def record(self, action: int, outcome: Mapping[str, float]) -> None:
        """Add a step: the action's index and the step's ``reward`` and ``info`` fields."""
        self.timeline.record(self.names[action], self.glyphs[action], outcome)

    def record_message(self, name: str, glyph: ActionGlyph, outcome: Mapping[str, float]) -> None:
        """Add a step whose message is not one action of the table (a slate of products)."""
        self.timeline.record(name, glyph, outcome)

    def frame(self, features: np.ndarray, segment: str, cycle: int) -> np.ndarray:
        """The ``(450, 800, 3)`` uint8 picture (:func:`rec_env.render.figure.draw_customer`)."""
        from rec_env.render.figure import draw_customer

        return draw_customer(
            features,
            self.timeline,
            segment=segment,
            cycle=cycle,
            title=self.title,
            offer_kinds=self.offer_kinds,
        )

    def show(self, features: np.ndarray, segment: str, cycle: int) -> None:
        """Draw the picture in the ``"human"`` window (or warn once that there is no display)."""
        if self._window is None:
            self._window = HumanWindow(self.render_fps)
        if self._window.available:
            self._window.show(self.frame(features, segment, cycle))

    def close(self) -> None:
        """Close the ``"human"`` window, if one is open."""
        if self._window is not None:
            self._window.close()
            self._window = None


class HumanWindow:
    """A matplotlib window that shows frames at ``render_fps``.

    ``available`` is False, after one ``UserWarning``, when there is no display (no ``DISPLAY`` or
    ``WAYLAND_DISPLAY`` on Linux) or matplotlib's backend cannot open windows.
    """

    def __init__(self, render_fps: float) -> None:
        self.pause = 1.0 / max(float(render_fps), 1e-3)
        self._figure: Any = None
        self._image: Any = None
        reason = _no_display_reason()
        if reason is None:
            import matplotlib.pyplot as plt

            backend = plt.get_backend().lower()
            if backend in _NON_INTERACTIVE:
                reason = f"matplotlib's backend {backend!r} cannot open windows"
        self.available = reason is None
        if reason is not None:
            warnings.warn(
                f"render_mode='human' shows nothing: {reason}. Use render_mode='rgb_array' and "
                "save the frames (e.g. with gymnasium.wrappers.RecordVideo) instead.",
                UserWarning,
                stacklevel=4,
            )

    def show(self, frame: np.ndarray) -> None:
        """Show ``frame`` and let the window's event loop run for one frame's time."""
        import matplotlib.pyplot as plt

        if self._figure is None or not plt.fignum_exists(self._figure.number):
            height, width = frame.shape[:2]
            self._figure = plt.figure("recenv", figsize=(width / 100, height / 100), dpi=100)
            axes = self._figure.add_axes((0.0, 0.0, 1.0, 1.0))
            axes.set_axis_off()
            self._image = axes.imshow(frame)
            plt.show(block=False)
        else:
            self._image.set_data(frame)
        plt.pause(self.pause)

    def close(self) -> None:
        """Close the window."""
        if self._figure is not None:
            import matplotlib.pyplot as plt

            plt.close(self._figure)
            self._figure = None


def _no_display_reason() -> str | None:
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return "no display (DISPLAY and WAYLAND_DISPLAY are not set)"
    return None
