"""Side-by-side rendering: the input frame with its 2D skeleton next to one 3D skeleton panel per pose sequence.

The matplotlib figure is built once (`SkeletonFigure`); every frame only updates the artists' data and redraws the
Agg canvas into an RGB array, which is piped to `common.video.video_io.VideoWriter` (MP4 through imageio-ffmpeg, GIF
through Pillow). Right-side bones are red, left-side bones blue, the others dark grey; each 3D panel shows a ground
plane at height 0 and looks at the subject from the dataset camera's azimuth.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from mpl_toolkits.mplot3d.art3d import Line3DCollection, Poly3DCollection
from PIL import Image
from tqdm import tqdm

from common.core.errors import UserError
from common.geometry.camera import camera_to_world
from common.geometry.skeleton import Skeleton
from common.video.video_io import VideoWriter, read_video_frames, video_metadata

RIGHT_COLOR = "#d62728"
LEFT_COLOR = "#1f5fd6"
CENTER_COLOR = "#303030"
DPI = 100
RADIUS = 1.7
"""Side of the 3D view box in metres (the box follows the root horizontally; height 0..RADIUS)."""
ELEVATION = 15.0


def poses_for_display(poses_camera: np.ndarray, orientation: np.ndarray | None) -> np.ndarray:
    """Camera-space poses ``(T, J, 3)`` -> world-aligned poses (z up) standing on the plane z = 0.

    The camera's camera-to-world rotation ``orientation`` (quaternion w, x, y, z) turns the camera frame into the
    world frame (translation ignored: the poses keep their root-relative position); without an orientation the
    camera is taken as level (camera x right, y down, z forward: world = (x, z, -y)). The lowest joint of the whole
    sequence is then put on the ground, as VideoPose3D does.
    """
    poses_camera = np.asarray(poses_camera, dtype=np.float32)
    if orientation is None:
        world = np.stack([poses_camera[..., 0], poses_camera[..., 2], -poses_camera[..., 1]], axis=-1)
    else:
        rotation = np.broadcast_to(np.asarray(orientation, dtype=np.float32), poses_camera.shape[:-1] + (4,))
        world = np.asarray(camera_to_world(poses_camera, rotation, np.zeros(3, dtype=np.float32)), dtype=np.float32)
    world = np.array(world, dtype=np.float32)
    world[..., 2] -= world[..., 2].min()
    return world


def _side_colors(joints: Iterable[int], left: Sequence[int], right: Sequence[int]) -> list[str]:
    """Colour of each joint (or of the bone it stands for): right red, left blue, centre dark grey."""
    return [RIGHT_COLOR if j in right else LEFT_COLOR if j in left else CENTER_COLOR for j in joints]


def _bone_side(child: int, parent: int, left: Sequence[int], right: Sequence[int]) -> int:
    """Joint whose side colours a bone: the child, or the parent when the child is central (e.g. hip-to-hip)."""
    if child in left or child in right:
        return child
    return parent


class SkeletonFigure:
    """A figure with the input panel (image + 2D skeleton) and one 3D panel per pose sequence, drawn in place.

    Args:
        skeleton: 3D skeleton (bones from its parents, colours from its left/right joints).
        pose_names: title of each 3D panel, in order.
        resolution: ``(w, h)`` of the input frames in pixels.
        viz_size: size of every panel in inches (100 pixels per inch).
        azimuth: viewing azimuth of the 3D panels in degrees.
        bones_2d: ``(a, b)`` joint pairs drawn on the image (default: the 3D skeleton's bones).
        joints_left_2d, joints_right_2d: sides of the 2D joints (default: the 3D skeleton's).
    """

    def __init__(
        self,
        skeleton: Skeleton,
        pose_names: Sequence[str],
        resolution: tuple[int, int],
        viz_size: float = 6,
        azimuth: float = 70.0,
        bones_2d: Sequence[tuple[int, int]] | None = None,
        joints_left_2d: Sequence[int] | None = None,
        joints_right_2d: Sequence[int] | None = None,
        title_2d: str = "Input",
    ) -> None:
        self.skeleton = skeleton
        self.resolution = (int(resolution[0]), int(resolution[1]))
        num_panels = 1 + len(pose_names)
        self.figure = Figure(figsize=(viz_size * num_panels, viz_size), dpi=DPI)
        # The input panel is transparent: the input frame is composited under it in `draw`; the 3D panels are opaque.
        self.figure.patch.set_alpha(0.0)
        self.figure.add_artist(Rectangle((1.0 / num_panels, 0.0), 1.0, 1.0, transform=self.figure.transFigure,
                                         facecolor="white", edgecolor="none", zorder=-10))
        self.canvas = FigureCanvasAgg(self.figure)
        self._bones_3d = skeleton.bones()
        self._bones_2d = list(bones_2d) if bones_2d is not None else self._bones_3d
        left_2d = skeleton.joints_left() if joints_left_2d is None else list(joints_left_2d)
        right_2d = skeleton.joints_right() if joints_right_2d is None else list(joints_right_2d)
        self._build_input_panel(num_panels, left_2d, right_2d, title_2d)
        self._build_pose_panels(pose_names, num_panels, azimuth)

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the rendered frames in pixels."""
        width, height = self.canvas.get_width_height()
        return int(width), int(height)

    def _build_input_panel(self, num_panels: int, left: Sequence[int], right: Sequence[int], title: str) -> None:
        w, h = self.resolution
        ax = self.figure.add_axes((0.0, 0.0, 1.0 / num_panels, 1.0))
        ax.set_axis_off()
        ax.set_xlim(0, w)  # pixel i covers [i, i + 1), the convention of the detectors' coordinates
        ax.set_ylim(h, 0)
        ax.set_aspect("equal", adjustable="box", anchor="C")
        sides = [_bone_side(a, b, left, right) for a, b in self._bones_2d]
        self._lines_2d = LineCollection(np.zeros((len(self._bones_2d), 2, 2)), colors=_side_colors(sides, left, right),
                                        linewidths=2.5, capstyle="round")
        ax.add_collection(self._lines_2d)
        self._points_2d = ax.plot([], [], "o", color="#ffd000", markersize=3.5, markeredgewidth=0)[0]
        ax.text(0.02, 0.98, title, transform=ax.transAxes, va="top", color="white", fontsize=12,
                bbox={"facecolor": "black", "alpha": 0.5, "linewidth": 0})
        self.ax_2d = ax
        # The frame is composited under the transparent figure with numpy (much faster than imshow's resampling):
        # the image area of the input panel, in output pixels, is where the equal-aspect axes end up.
        self.canvas.draw()
        x0, y0, x1, y1 = ax.get_window_extent().extents
        height = self.size[1]
        self._image_box = (int(round(height - y1)), int(round(height - y0)), int(round(x0)), int(round(x1)))
        self._background = np.full((height, self.size[0], 3), 255, np.uint8)
        top, bottom, left_px, right_px = self._image_box
        self._panel_px = int(round(self.size[0] / num_panels))
        self._background[:, : self._panel_px] = 0
        self._image_size = (right_px - left_px, bottom - top)

    def _build_pose_panels(self, pose_names: Sequence[str], num_panels: int, azimuth: float) -> None:
        left, right = self.skeleton.joints_left(), self.skeleton.joints_right()
        colors = _side_colors([child for child, _ in self._bones_3d], left, right)
        self.axes_3d = []
        self._lines_3d = []
        self._grounds = []
        for index, name in enumerate(pose_names):
            ax = self.figure.add_axes((float(index + 1) / num_panels, 0.0, 1.0 / num_panels, 1.0), projection="3d")
            ax.view_init(elev=ELEVATION, azim=azimuth)
            ax.set_xlim3d(-RADIUS / 2, RADIUS / 2)
            ax.set_ylim3d(-RADIUS / 2, RADIUS / 2)
            ax.set_zlim3d(0, RADIUS)
            ax.set_box_aspect((1, 1, 1), zoom=1.15)
            ax.computed_zorder = False  # the ground stays under the skeleton
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_zticks([])
            ax.patch.set_facecolor("white")
            ax.text2D(0.03, 0.97, name, transform=ax.transAxes, va="top", fontsize=12)
            ground = Poly3DCollection([self._ground_square(0.0, 0.0)], facecolor="#b0b0b0", alpha=0.35,
                                      edgecolor="none", zorder=1)
            ax.add_collection3d(ground)
            self._grounds.append(ground)
            lines = Line3DCollection(np.zeros((len(self._bones_3d), 2, 3)), colors=colors, linewidths=3, zorder=2)
            ax.add_collection3d(lines)
            self._lines_3d.append(lines)
            self.axes_3d.append(ax)

    @staticmethod
    def _ground_square(cx: float, cy: float) -> list[tuple[float, float, float]]:
        half = RADIUS / 2
        return [(cx - half, cy - half, 0.0), (cx + half, cy - half, 0.0), (cx + half, cy + half, 0.0),
                (cx - half, cy + half, 0.0)]

    def draw(self, image: np.ndarray | None, keypoints_2d: np.ndarray, poses: Sequence[np.ndarray]) -> np.ndarray:
        """Update every artist for one frame and return the rendered ``(h, w, 3)`` uint8 RGB image.

        Args:
            image: ``(h, w, 3)`` uint8 input frame, or None to keep the previous one (black at first).
            keypoints_2d: ``(J2, 2)`` pixels.
            poses: one ``(J, 3)`` world-aligned pose (z up, metres) per 3D panel.
        """
        if image is not None:
            self._set_image(image)
        bones_2d = np.asarray(self._bones_2d).reshape(-1, 2)
        self._lines_2d.set_segments(keypoints_2d[bones_2d])
        self._points_2d.set_data(keypoints_2d[:, 0], keypoints_2d[:, 1])
        bones_3d = np.asarray(self._bones_3d).reshape(-1, 2)
        for ax, lines, ground, pose in zip(self.axes_3d, self._lines_3d, self._grounds, poses):
            cx, cy = float(pose[0, 0]), float(pose[0, 1])
            ax.set_xlim3d(cx - RADIUS / 2, cx + RADIUS / 2)
            ax.set_ylim3d(cy - RADIUS / 2, cy + RADIUS / 2)
            ground.set_verts([self._ground_square(cx, cy)])
            lines.set_segments(pose[bones_3d])
        self.canvas.draw()
        rgba = np.asarray(self.canvas.buffer_rgba())
        split = self._panel_px
        frame = np.empty_like(self._background)
        frame[:, split:] = rgba[:, split:, :3]  # the 3D panels are opaque
        # input panel: the few drawn pixels (skeleton, title) are alpha-blended over the frame (straight alpha)
        panel = frame[:, :split]
        panel[:] = self._background[:, :split]
        drawn = rgba[:, :split, 3] > 0
        alpha = rgba[:, :split][drawn][:, 3:4].astype(np.uint16)
        panel[drawn] = (rgba[:, :split][drawn][:, :3] * alpha + panel[drawn] * (255 - alpha)) // 255
        return frame

    def _set_image(self, image: np.ndarray) -> None:
        """Place the input frame (resized to the panel's image area when its size differs) in the background."""
        top, bottom, left, right = self._image_box
        if (image.shape[1], image.shape[0]) != self._image_size:
            image = np.asarray(Image.fromarray(image).resize(self._image_size, Image.BILINEAR))
        self._background[top:bottom, left:right] = image


def _video_frames(path: str | os.PathLike, skip: int) -> Iterator[np.ndarray]:
    return itertools.islice(read_video_frames(path), skip, None)


def render_animation(
    keypoints_2d: np.ndarray,
    poses: Mapping[str, np.ndarray],
    skeleton: Skeleton,
    fps: float,
    output_path: str | os.PathLike,
    *,
    azimuth: float = 70.0,
    bitrate: float = 3000,
    viz_size: float = 6,
    input_video_path: str | os.PathLike | None = None,
    input_video_skip: int = 0,
    downsample: int = 1,
    limit: int = -1,
    resolution: tuple[int, int] | None = None,
    bones_2d: Sequence[tuple[int, int]] | None = None,
    joints_left_2d: Sequence[int] | None = None,
    joints_right_2d: Sequence[int] | None = None,
    progress: bool = True,
) -> int:
    """Render the 2D input and the 3D poses side by side into ``output_path`` (``.mp4`` or ``.gif``).

    Args:
        keypoints_2d: ``(T, J2, 2)`` 2D keypoints in pixels of the input video.
        poses: panel title -> ``(T, J, 3)`` world-aligned poses (z up, metres; see `poses_for_display`), e.g.
            ``{"Reconstruction": ..., "Ground truth": ...}``.
        skeleton: skeleton of the 3D poses (and of the 2D keypoints unless ``bones_2d`` is given).
        fps: frame rate of the sequence.
        output_path: ``.mp4`` (H.264 at ``bitrate`` kbit/s) or ``.gif``.
        azimuth: viewing azimuth of the 3D panels (the dataset camera's).
        viz_size: size of each panel in inches (100 pixels per inch).
        input_video_path: video shown behind the 2D keypoints (None: black background of ``resolution``).
        input_video_skip: number of leading video frames that have no keypoints.
        downsample: keep every ``downsample``-th frame (the output frame rate is divided accordingly).
        limit: render at most this many output frames (< 1: all).
        resolution: ``(w, h)`` of the 2D coordinate frame; required without a video, taken from the video otherwise.
        bones_2d, joints_left_2d, joints_right_2d: 2D skeleton when the 2D layout differs from the 3D one.
        progress: show a tqdm progress bar.

    Returns:
        The number of frames written.
    """
    keypoints_2d = np.asarray(keypoints_2d, dtype=np.float32)
    for name, pose in poses.items():
        if len(pose) != len(keypoints_2d) or np.asarray(pose).shape[1:] != (skeleton.num_joints(), 3):
            raise ValueError(f"pose sequence {name!r} has shape {np.asarray(pose).shape}, expected "
                             f"({len(keypoints_2d)}, {skeleton.num_joints()}, 3) like the 2D keypoints")
    resolution, indices = _frame_plan(len(keypoints_2d), input_video_path, input_video_skip, downsample, limit,
                                      resolution)
    figure = SkeletonFigure(skeleton, list(poses), resolution, viz_size, azimuth, bones_2d, joints_left_2d,
                            joints_right_2d)
    frames = _video_frames(input_video_path, input_video_skip) if input_video_path is not None else None
    pose_arrays = [np.asarray(pose, dtype=np.float32) for pose in poses.values()]
    wanted = set(indices)
    written = 0
    description = f"rendering {os.path.basename(output_path)}"
    with VideoWriter(output_path, fps / downsample, bitrate) as writer, \
            tqdm(total=len(indices), desc=description, unit="frame", disable=not progress) as bar:
        for index in range(indices[-1] + 1):
            image = next(frames, None) if frames is not None else None
            if frames is not None and image is None:
                break  # the video ends before the keypoints
            if index not in wanted:
                continue
            writer.write(figure.draw(image, keypoints_2d[index], [pose[index] for pose in pose_arrays]))
            written += 1
            bar.update()
    return written


def _frame_plan(num_frames: int, input_video_path, input_video_skip: int, downsample: int, limit: int,
                resolution: tuple[int, int] | None) -> tuple[tuple[int, int], list[int]]:
    """The 2D frame's resolution (the video's when there is one) and the indices of the frames to render."""
    if downsample < 1:
        raise UserError(f"--viz-downsample {downsample}: expected a positive integer")
    if input_video_path is not None:
        meta = video_metadata(input_video_path)
        resolution = (meta["w"], meta["h"])
        num_frames = min(num_frames, max(meta["num_frames"] - input_video_skip, 0))
        if num_frames == 0:
            raise UserError(f"--viz-video {input_video_path}: no frame left after skipping {input_video_skip}")
    elif resolution is None:
        raise UserError("--render: the resolution of the 2D keypoints is needed when no --viz-video is given")
    indices = list(range(0, num_frames, downsample))
    return resolution, indices[:limit] if limit >= 1 else indices

