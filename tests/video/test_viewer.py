"""The HTML viewer in a real browser: headless Chromium (Debian's ``chromium`` + ``chromium-driver``) driven by
selenium. The page must load without console errors, draw what its projection says (checked against a projection
computed here and against the colours of the screenshot pixels), and change when the frame slider moves, when the view
is dragged and when the wheel zooms."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import time

import numpy as np
import pytest
from PIL import Image

from common.core.errors import UserError
from common.datasets.synthetic_body import make_subject
from common.datasets.synthetic_motion import generate_take
from common.geometry.skeleton import h36m_17
from common.video.rendering import CENTER_COLOR, ELEVATION, LEFT_COLOR, RADIUS, RIGHT_COLOR
from common.video.viewer import THUMBNAIL_BUDGET, THUMBNAIL_MAX_SIDE, video_thumbnails, write_viewer_html

NUM_FRAMES = 100
FPS = 50
RESOLUTION = (320, 240)
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1500,1000",
                  "--force-device-scale-factor=1", "--hide-scrollbars")


def _find(*names: str) -> str | None:
    return next((path for path in map(shutil.which, names) if path), None)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (requirements-dev.txt)")
    chromium, chromedriver = _find("chromium", "chromium-browser"), _find("chromedriver")
    if chromium is None or chromedriver is None:
        pytest.skip("needs headless Chromium: apt-get install -y chromium chromium-driver")
    os.environ.setdefault("SE_OFFLINE", "true")  # selenium must not look for drivers on the network
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=chromedriver))
    driver.get("about:blank")  # warm up, so that the page's opening time is measured alone
    yield driver
    driver.quit()


def _motion() -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]:
    """World poses (z up), a 'ground truth' that differs, 2D keypoints and matching video frames with a moving bar."""
    rng = np.random.default_rng(0)
    poses = generate_take(make_subject("S1", rng), "Walking", NUM_FRAMES, rng)
    truth = poses + rng.normal(scale=0.03, size=poses.shape).astype(np.float32)
    depth = poses[..., 1] + 4.0
    keypoints = np.stack([160 + 200 * poses[..., 0] / depth, 200 - 200 * poses[..., 2] / depth], axis=-1)
    frames = []
    for index in range(NUM_FRAMES):
        frame = np.zeros((RESOLUTION[1], RESOLUTION[0], 3), np.uint8)
        frame[:, :, 1] = np.linspace(40, 160, RESOLUTION[0], dtype=np.uint8)
        frame[:, 3 * index % RESOLUTION[0]:][:, :12, 0] = 255
        frames.append(frame)
    return poses, truth, keypoints.astype(np.float32), frames


def projection(pose: np.ndarray, azimuth: float, elevation: float, zoom: float, size: float) -> np.ndarray:
    """The documented orbit camera, written independently of viewer.js: ``(J, 2)`` canvas pixels."""
    az, el = np.radians(azimuth), np.radians(elevation)
    eye = np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
    right = np.array([-np.sin(az), np.cos(az), 0.0])
    up = np.cross(eye, right)
    q = pose - [pose[0, 0], pose[0, 1], RADIUS / 2]
    distance = 3 * RADIUS
    scale = zoom * size / (1.25 * RADIUS) * distance / (distance - q @ eye)
    return np.stack([size / 2 + (q @ right) * scale, size / 2 - (q @ up) * scale], axis=-1)


def _state(driver) -> dict:
    return driver.execute_script("return window.viewerState;")


def _canvas_image(driver, index: int) -> np.ndarray:
    canvas = driver.find_elements("css selector", "#panels canvas")[index]
    border = driver.execute_script("return arguments[0].clientLeft;", canvas)
    image = np.asarray(Image.open(io.BytesIO(base64.b64decode(canvas.screenshot_as_base64))).convert("RGB"))
    return image[border:image.shape[0] - border, border:image.shape[1] - border].astype(int)


def _rgb(color: str) -> np.ndarray:
    return np.array([int(color[i:i + 2], 16) for i in (1, 3, 5)])


def _check_drawing(driver, poses: dict[str, np.ndarray], keypoints: np.ndarray) -> list[np.ndarray]:
    """viewerState matches the projection computed here, and the screenshot has each bone's colour at its middle."""
    state = _state(driver)
    skeleton = h36m_17()
    expected_colors = [_rgb(RIGHT_COLOR if c in skeleton.joints_right() else LEFT_COLOR if c in skeleton.joints_left()
                            else CENTER_COLOR) for c, _ in skeleton.bones()]
    images = []
    for index, (name, pose) in enumerate(poses.items()):
        panel = state["panels"][index]
        assert panel["name"] == name
        expected = projection(pose[state["frame"]], state["azimuth"], state["elevation"], state["zoom"],
                              state["panelPx"])
        np.testing.assert_allclose(np.array(panel["joints"]), expected, atol=0.05)
        image = _canvas_image(driver, 1 + index)
        assert image.shape[:2] == (state["panelPx"], state["panelPx"])
        hits = 0
        for (child, parent), color in zip(skeleton.bones(), expected_colors):
            x, y = np.round((expected[child] + expected[parent]) / 2).astype(int)
            hits += np.abs(image[y, x] - color).max() < 40
        assert hits >= 0.8 * len(expected_colors), f"{name}: {hits} of {len(expected_colors)} bones drawn in colour"
        images.append(image)
    scale = state["panelPx"] / RESOLUTION[0]
    offset = (state["panelPx"] - RESOLUTION[1] * scale) / 2
    np.testing.assert_allclose(np.array(state["image"]["joints"]),
                               keypoints[state["frame"]] * scale + [0, offset], atol=0.05)
    images.insert(0, _canvas_image(driver, 0))
    return images


def test_viewer_page_in_headless_chromium(browser, tmp_path):
    from selenium.webdriver import ActionChains
    from selenium.webdriver.common.actions.wheel_input import ScrollOrigin
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select, WebDriverWait

    world, truth, keypoints, frames = _motion()
    poses = {"Reconstruction": world, "Ground truth": truth}
    summary = write_viewer_html(tmp_path / "viewer.html", poses, h36m_17(), FPS, keypoints_2d=keypoints,
                                frames=iter(frames), azimuth=70.0)
    print(f"\n{summary.describe()}")
    assert summary.thumbnails == NUM_FRAMES and summary.size_bytes < 5e6

    start = time.perf_counter()
    browser.get(summary.path.resolve().as_uri())
    WebDriverWait(browser, 30).until(lambda d: d.execute_script(
        "return window.viewerState && window.viewerState.thumbnailsLoaded === window.viewerState.thumbnails;"))
    print(f"opened in headless Chromium in {time.perf_counter() - start:.2f} s ({summary.size_bytes / 1e6:.2f} MB)")
    severe = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not severe, severe
    state = _state(browser)
    assert (state["frame"], state["numFrames"], state["azimuth"], state["elevation"]) == (0, NUM_FRAMES, 70, ELEVATION)
    assert state["image"]["thumbnail"] == 0
    first = _check_drawing(browser, poses, keypoints)

    browser.find_element("id", "frame").send_keys(Keys.END)  # the slider, as a user moves it
    assert _state(browser)["frame"] == NUM_FRAMES - 1 and _state(browser)["image"]["thumbnail"] == NUM_FRAMES - 1
    last = _check_drawing(browser, poses, keypoints)
    for before, after in zip(first, last):
        assert np.abs(before - after).max() > 100  # every panel changed

    canvas = browser.find_elements("css selector", "#panels canvas")[1]
    ActionChains(browser).move_to_element(canvas).click_and_hold().move_by_offset(80, 30).release().perform()
    state = _state(browser)
    assert state["azimuth"] == pytest.approx(70 - 40) and state["elevation"] == pytest.approx(ELEVATION + 15)
    rotated = _check_drawing(browser, poses, keypoints)
    assert np.abs(rotated[1] - last[1]).max() > 100 and np.abs(rotated[2] - last[2]).max() > 100
    np.testing.assert_array_equal(rotated[0], last[0])  # the 2D panel does not rotate

    ActionChains(browser).scroll_from_origin(ScrollOrigin.from_element(canvas), 0, -200).perform()
    assert _state(browser)["zoom"] > 1.2
    _check_drawing(browser, poses, keypoints)

    Select(browser.find_element("id", "speed")).select_by_value("4")
    assert _state(browser)["speed"] == 4
    browser.find_element("id", "play").click()
    WebDriverWait(browser, 20).until(lambda d: _state(d)["frame"] != NUM_FRAMES - 1)
    browser.find_element("id", "play").click()
    assert _state(browser)["playing"] is False
    for index, image in enumerate(rotated):
        Image.fromarray(image.astype(np.uint8)).save(tmp_path / f"panel{index}.png")
    print(f"screenshots: {tmp_path}")
    assert not [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


def test_viewer_without_2d_panel(browser, tmp_path):
    """A page with 3D panels only (e.g. inference/view.py without --keypoints-2d) works as well."""
    from selenium.webdriver.common.keys import Keys

    world, _, _, _ = _motion()
    summary = write_viewer_html(tmp_path / "only3d.html", {"Pose": world}, h36m_17(), FPS, azimuth=-30.0)
    browser.get(summary.path.resolve().as_uri())
    state = _state(browser)
    assert not [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert state["image"] is None and len(browser.find_elements("css selector", "#panels canvas")) == 1
    np.testing.assert_allclose(np.array(state["panels"][0]["joints"]),
                               projection(world[0], -30.0, ELEVATION, 1.0, state["panelPx"]), atol=0.05)
    browser.find_element("tag name", "body").send_keys(Keys.ARROW_RIGHT)  # keyboard: next frame
    assert _state(browser)["frame"] == 1


def test_thumbnails_stay_within_the_cap():
    rng = np.random.default_rng(0)
    noise = [rng.integers(0, 256, size=(240, 320, 3), dtype=np.uint8) for _ in range(8)]
    frames = (noise[i % 8] for i in range(700))  # incompressible frames: ~16 kB of base64 each
    thumbnails, stride, size = video_thumbnails(frames, 700)
    assert size == (320, 240)
    assert sum(map(len, thumbnails)) <= THUMBNAIL_BUDGET
    assert stride > 1 and len(thumbnails) == -(-700 // stride)
    first = Image.open(io.BytesIO(base64.b64decode(thumbnails[0])))
    assert first.format == "JPEG" and max(first.size) == THUMBNAIL_MAX_SIDE and first.size == (160, 120)


def _page_data(path) -> dict:
    text = path.read_text()
    start = text.index('<script id="viewer-data" type="application/json">') + len(
        '<script id="viewer-data" type="application/json">')
    return json.loads(text[start:text.index("</script>", start)])


def test_view_command_writes_the_page(tmp_path):
    """inference/view.py: the page holds the prediction stood up by the nominal camera, and the 2D keypoints."""
    from common.datasets.custom import nominal_camera
    from common.geometry.keypoint_layouts import to_h36m17
    from common.video.rendering import poses_for_display
    from inference import view

    world, _, keypoints, _ = _motion()
    prediction = (world - world[:, :1]).astype(np.float32)
    np.save(tmp_path / "pred.npy", prediction)
    np.save(tmp_path / "kp.npy", keypoints)
    view.main([str(tmp_path / "pred.npy"), "--output", str(tmp_path / "pred.html"), "--fps", "25",
               "--keypoints-2d", str(tmp_path / "kp.npy")])
    data = _page_data(tmp_path / "pred.html")
    assert data["fps"] == 25 and data["numFrames"] == NUM_FRAMES and data["thumbnails"] is None
    shown = np.frombuffer(base64.b64decode(data["panels"][0]["poses"]), "<f4").reshape(prediction.shape)
    expected = poses_for_display(prediction, nominal_camera("pred", 1000, 1000).orientation)
    np.testing.assert_allclose(shown, expected, atol=1e-6)
    np.testing.assert_allclose(np.frombuffer(base64.b64decode(data["keypoints2d"]["data"]), "<f4"),
                               keypoints.reshape(-1))
    coco = np.concatenate([keypoints, np.ones_like(keypoints[..., :1])], axis=-1)  # x, y, score
    np.savez(tmp_path / "detections.npz", keypoints=coco)  # the infer_video.py / --detections-dir layout
    view.main([str(tmp_path / "pred.npy"), "--output", str(tmp_path / "det.html"), "--keypoints-2d",
               str(tmp_path / "detections.npz")])
    shown_2d = np.frombuffer(base64.b64decode(_page_data(tmp_path / "det.html")["keypoints2d"]["data"]), "<f4")
    np.testing.assert_allclose(shown_2d, to_h36m17(keypoints, "coco").reshape(-1), atol=1e-5)
    with pytest.raises(UserError, match="--keypoints-2d .*expected \\(T, 17, 2\\)"):
        view.main([str(tmp_path / "pred.npy"), "--output", str(tmp_path / "x.html"), "--keypoints-2d",
                   str(tmp_path / "pred.npy")])
    with pytest.raises(UserError, match="--output .*\\.html"):
        view.main([str(tmp_path / "pred.npy"), "--output", str(tmp_path / "x.mp4")])


@pytest.mark.slow
def test_run_render_writes_the_viewer_and_a_bvh(trained_checkpoint, tmp_path):
    """run.py --render --viz-output NAME.html --viz-export NAME.bvh, with --viz-limit/--viz-downsample applied."""
    import run

    data_dir = trained_checkpoint.parent.parent
    html, bvh_path = tmp_path / "walk.html", tmp_path / "walk.bvh"
    assert run.main(["-d", "synthetic", "-k", "gt", "--data-dir", str(data_dir), "-c", str(trained_checkpoint.parent),
                     "--evaluate", trained_checkpoint.name, "--render", "--viz-subject", "S9", "--viz-action",
                     "Walking", "--viz-output", str(html), "--viz-export", str(bvh_path), "--viz-limit", "20",
                     "--viz-downsample", "2", "--nolog", "--no-progress"]) is None
    data = _page_data(html)
    assert data["numFrames"] == 20 and data["fps"] == 25
    assert [panel["name"] for panel in data["panels"]] == ["Reconstruction", "Ground truth"]
    assert bvh_path.read_text().startswith("HIERARCHY\nROOT Hip\n")
