"""Pictures and text of customers: what the envs' ``render()`` returns.

* The single-customer envs (``render_mode="rgb_array"`` or ``"human"``) draw one customer's
  year with matplotlib (:mod:`rec_env.render.figure`, imported only when a frame is drawn): the
  observed state, the last 13 weeks of messages and outcomes, and the profit so far.
  :class:`CustomerRenderer` keeps the customer's cycles (:mod:`rec_env.render.timeline`).
* The vector envs draw one small numpy picture per customer (:func:`render_rgb`), which a batch
  of thousands can afford.
* ``render_mode="ansi"`` is one line of text (:func:`render_text`).

Importing this package imports numpy only.
"""

from rec_env.render.compact import OUTCOME_LAMPS, render_rgb, render_text
from rec_env.render.renderer import IMAGE_RENDER_MODES, CustomerRenderer, HumanWindow
from rec_env.render.timeline import ActionGlyph, CustomerTimeline, CycleRecord, action_glyphs

__all__ = [
    "IMAGE_RENDER_MODES",
    "OUTCOME_LAMPS",
    "ActionGlyph",
    "CustomerRenderer",
    "CustomerTimeline",
    "CycleRecord",
    "HumanWindow",
    "action_glyphs",
    "render_rgb",
    "render_text",
]
