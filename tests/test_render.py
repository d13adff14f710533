"""The env's pictures: rgb_array frames, the human window, recording with Gymnasium's wrappers."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from gymnasium.wrappers import RecordVideo, RenderCollection

import rec_env.render.renderer as renderer_module
from rec_env import ENV_ID
from rec_env.env import RecommendationEnv
from rec_env.render import CustomerTimeline, action_glyphs

HORIZON = 4
FRAME_SHAPE = (450, 800, 3)


def make_env(render_mode: str = "rgb_array", horizon: int = HORIZON) -> gym.Env:
    return gym.make(ENV_ID, render_mode=render_mode, horizon=horizon, max_episode_steps=horizon)


def play(env: gym.Env, seed: int, actions: list[str]) -> np.ndarray:
    """The frame after reset and ``actions`` (names)."""
    env.reset(seed=seed)
    for name in actions:
        env.step(env.unwrapped.action_names.index(name))
    return env.render()


def colour_pixels(frame: np.ndarray, hex_colour: str, alpha: float = 1.0) -> int:
    """Pixels of ``hex_colour`` drawn with ``alpha`` over the white background."""
    rgb = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)])
    rgb = np.round(alpha * rgb + (1.0 - alpha) * 255.0)
    return int((np.abs(frame.astype(int) - rgb).sum(axis=2) < 8).sum())


@pytest.fixture(scope="module")
def first_week() -> tuple[np.ndarray, np.ndarray, gym.Env]:
    """Frames before and after a recommendation by e-mail (drawn once: frames cost ~0.1 s)."""
    env = make_env()
    env.reset(seed=0, options={"customer": {"consent_email": 1.0}})
    before = env.render()
    env.step(env.unwrapped.action_names.index("recommendation_email"))
    return before, env.render(), env


def test_rgb_array_frames_have_one_fixed_shape(first_week: tuple) -> None:
    for frame in first_week[:2]:
        assert frame.shape == FRAME_SHAPE and frame.dtype == np.uint8
    assert make_env().metadata["render_modes"] == ["human", "ansi", "rgb_array"]
    assert make_env().metadata["render_fps"] > 0


def test_same_seed_same_frames_and_another_customer_another_picture() -> None:
    actions = ["recommendation_email", "discount_20_email"]
    first = play(make_env(), 3, actions)
    np.testing.assert_array_equal(play(make_env(), 3, actions), first)
    assert not np.array_equal(play(make_env(), 4, actions), first)


def test_a_message_appears_in_the_calendar_in_its_offer_colour(first_week: tuple) -> None:
    before, after, env = first_week
    assert not np.array_equal(before, after)
    # the recommendation colour is in the legend; the message's cell adds it, faded if not opened
    alpha = 1.0 if env.unwrapped.renderer.timeline.cycles[-1].opened else 0.45
    colour = "#8e5cc4"  # recommendation
    cell = colour_pixels(after, colour, alpha) - colour_pixels(before, colour, alpha)
    assert cell > 200


def test_timeline_follows_the_steps_and_restarts_with_a_customer() -> None:
    env = RecommendationEnv(render_mode="rgb_array")
    env.reset(seed=1)
    profit = 0.0
    for name in ("discount_15_email", "no_action", "recommendation_push"):
        _, reward, _, _, info = env.step(env.action_names.index(name))
        profit += info["profit"]
    timeline = env.renderer.timeline
    assert [c.action for c in timeline.cycles] == [
        "discount_15_email",
        "no_action",
        "recommendation_push",
    ]
    assert timeline.cycles[-1].reward == reward
    assert timeline.cumulative_profit()[-1] == pytest.approx(profit)
    env.reset(seed=2)
    assert len(timeline) == 0
    assert RecommendationEnv().renderer is None  # nothing is recorded without a picture


def test_action_glyphs_name_channel_and_offer() -> None:
    env = RecommendationEnv()
    glyphs = dict(zip(env.action_names, action_glyphs(env.model.actions), strict=True))
    assert (glyphs["no_action"].channel, glyphs["no_action"].kind) == ("none", "none")
    assert glyphs["discount_15_sms"].channel == "sms" and glyphs["discount_15_sms"].label == "15%"
    assert glyphs["free_shipping_push"].kind == "free_shipping"
    assert CustomerTimeline(52).cumulative_profit().tolist() == [0.0]


def test_gymnasium_checkers_pass_with_a_picture(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="render_mode='human' shows nothing")
        # check_env renders an env made with each of the metadata's render modes
        gym_check_env(make_env("human").unwrapped)
        play(make_env(), 0, ["discount_10_email"])  # through gym.make's passive checker


def test_human_without_a_display_warns_once_and_renders_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    env = RecommendationEnv(render_mode="human")
    with pytest.warns(UserWarning, match="no display.*rgb_array"):
        env.reset(seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env.step(0)
        assert env.render() is None
    env.close()


def test_human_with_a_non_interactive_backend_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    import matplotlib.pyplot as plt

    monkeypatch.setenv("DISPLAY", ":99")
    plt.switch_backend("agg")
    with pytest.warns(UserWarning, match="backend 'agg' cannot open windows"):
        RecommendationEnv(render_mode="human").reset(seed=0)


def test_human_window_shows_every_step(monkeypatch: pytest.MonkeyPatch) -> None:
    import matplotlib.pyplot as plt

    # Agg stands in for a window toolkit: the window's figure is drawn, just never on a screen.
    monkeypatch.setenv("DISPLAY", ":99")
    monkeypatch.setattr(renderer_module, "_NON_INTERACTIVE", set())
    plt.switch_backend("agg")
    env = RecommendationEnv(render_mode="human", horizon=HORIZON)
    env.renderer.render_fps = 1000  # no need to wait between frames
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*non-interactive.*")
        env.reset(seed=0)
        assert plt.fignum_exists("recenv")
        window = plt.figure("recenv")
        shown = np.asarray(window.axes[0].images[0].get_array()).copy()
        env.step(env.action_names.index("recommendation_email"))
        assert not np.array_equal(window.axes[0].images[0].get_array(), shown)
    env.close()
    assert not plt.fignum_exists("recenv")


def test_render_collection_gathers_one_frame_per_step() -> None:
    env = RenderCollection(make_env(horizon=1))
    env.reset(seed=0)
    done, steps = False, 0
    while not done:
        _, _, terminated, truncated, _ = env.step(0)
        done, steps = terminated or truncated, steps + 1
    frames = env.render()
    assert len(frames) == steps + 1 and frames[0].shape == FRAME_SHAPE


def test_record_video_writes_an_episode(tmp_path: Path) -> None:
    pytest.importorskip("moviepy", reason="RecordVideo writes MP4 with moviepy")
    env = RecordVideo(make_env(horizon=1), str(tmp_path / "videos"), episode_trigger=lambda _: True)
    env.reset(seed=0)
    done = False
    while not done:
        _, _, terminated, truncated, _ = env.step(1)
        done = terminated or truncated
    env.close()
    videos = list((tmp_path / "videos").glob("*.mp4"))
    assert len(videos) == 1 and videos[0].stat().st_size > 1000


@pytest.mark.parametrize(
    ("env_id", "shown"),
    [("rec_env/ItemRecommendation-v0", "P0001"), ("rec_env/SlateRecommendation-v0", "email: ")],
)
def test_item_worlds_draw_the_same_picture_with_products(env_id: str, shown: str) -> None:
    env = gym.make(env_id, render_mode="rgb_array")
    assert env.metadata["render_modes"] == ["human", "ansi", "rgb_array"]
    env.reset(seed=0)
    before = env.render()
    if "Slate" in env_id:
        model = env.unwrapped.model
        action = np.zeros(model.action_dim, dtype=np.float32)
        action[model.embeddings.shape[1] + 1] = 1.0  # scores: products, no message, e-mail, …
    else:
        action = env.unwrapped.action_names.index("P0001:email")
    env.step(action)
    after = env.render()
    assert after.shape == FRAME_SHAPE and not np.array_equal(before, after)
    record = env.unwrapped.renderer.timeline.cycles[-1]
    assert record.action.startswith(shown) and record.glyph.kind == "product"
    with pytest.raises(ValueError, match="render_mode"):
        type(env.unwrapped)(render_mode="video")


def test_import_stays_free_of_matplotlib() -> None:
    code = (
        "import sys, rec_env, rec_env.render; "
        "print([m for m in ('matplotlib', 'PIL') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
