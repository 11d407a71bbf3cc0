"""Synthetic action generators: smooth signals, the `Motion` joint-angle container and one generator per
Human3.6M-like action group (`ACTIONS`). Angles are radians in the body frame of `common.datasets.synthetic_body`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from common.datasets.synthetic_body import (
    HIP,
    L_ELBOW,
    L_HIP,
    L_KNEE,
    L_SHOULDER,
    NECK,
    NUM_JOINTS,
    R_ELBOW,
    R_HIP,
    R_KNEE,
    R_SHOULDER,
    SPINE,
    THORAX,
    SubjectBody,
)

FPS = 50
CAPTURE_CENTER = np.array([0.15, 0.4])
"""Centre of the Human3.6M capture area (world x, y in metres), where the subject acts."""


# --- smooth signals -------------------------------------------------------------------------------------------------


def ease(x: np.ndarray) -> np.ndarray:
    """Cosine ease from 0 to 1 on [0, 1] (zero velocity at both ends), clamped outside."""
    return 0.5 - 0.5 * np.cos(np.pi * np.clip(x, 0.0, 1.0))


def keyframes(t: np.ndarray, times: list[float], values: list[float]) -> np.ndarray:
    """A curve through ``(times[i], values[i])`` with eased transitions; constant before the first/after the last."""
    curve = np.full_like(t, float(values[0]))
    for (t0, v0), (t1, v1) in zip(zip(times, values), zip(times[1:], values[1:])):
        if t1 > t0:
            curve += (v1 - v0) * ease((t - t0) / (t1 - t0))
    return curve


def smooth_noise(rng: np.random.Generator, t: np.ndarray, amplitude: float, max_hz: float = 0.5) -> np.ndarray:
    """Low-frequency wobble: three random sinusoids below ``max_hz`` with a total RMS of about ``amplitude``."""
    freqs = rng.uniform(0.05, max_hz, 3)
    phases = rng.uniform(0, 2 * np.pi, 3)
    weights = rng.uniform(0.5, 1.0, 3)
    weights *= amplitude * np.sqrt(2.0) / np.linalg.norm(weights)
    return sum(w * np.sin(2 * np.pi * f * t + p) for w, f, p in zip(weights, freqs, phases))


def schedule(
    rng: np.random.Generator, duration: float, phases: list[tuple[float, float]], start: float = 0.0
) -> list[tuple[float, float]]:
    """Consecutive ``(start, end)`` intervals of random lengths ``uniform(lo, hi)`` cycling through ``phases``."""
    intervals, now, index = [], start, 0
    while now < duration:
        lo, hi = phases[index % len(phases)]
        length = rng.uniform(lo, hi)
        intervals.append((now, now + length))
        now += length
        index += 1
    return intervals


# --- motions --------------------------------------------------------------------------------------------------------


class Motion:
    """Joint-angle trajectories of one take, built with physically named setters (radians, body frame).

    Attributes set by the action generators:
        angles: (T, 17, 3) local (flexion, abduction, twist) of every joint (root: pitch, roll, 0).
        yaw: (T,) heading about the world vertical (0 = facing world +y).
        ground_xy: (T, 2) world position of the anchor (the root, or the midpoint between the feet).
        anchor_feet: True when ``ground_xy`` is the feet midpoint (standing actions: planted feet), False when it is
            the root (locomotion).
        lift: (T,) extra height of the whole body above the floor contact (flight phase of jumps).
    """

    def __init__(self, t: np.ndarray) -> None:
        self.t = t
        self.angles = np.zeros((len(t), NUM_JOINTS, 3))
        self.yaw = np.zeros(len(t))
        self.ground_xy = np.tile(CAPTURE_CENTER, (len(t), 1))
        self.anchor_feet = True
        self.lift = np.zeros(len(t))
        # rest pose: arms slightly away from the body, elbows slightly bent
        self.arm("right", abduction=0.12, elbow=0.15)
        self.arm("left", abduction=0.12, elbow=0.15)

    def leg(self, side: str, hip_flex=0.0, knee_flex=0.0, abduction=0.0, twist=0.0) -> None:
        """Hip flexion (thigh forward), knee flexion (shin backward), hip abduction (outward), twist."""
        hip, knee, sign = (R_HIP, R_KNEE, 1.0) if side == "right" else (L_HIP, L_KNEE, -1.0)
        self.angles[:, hip] = np.stack(np.broadcast_arrays(hip_flex, -sign * abduction, sign * twist, self.t)[:3], -1)
        self.angles[:, knee, 0] = -np.broadcast_to(knee_flex, self.t.shape)

    def arm(self, side: str, flex=0.0, abduction=0.0, twist=0.0, elbow=0.0) -> None:
        """Shoulder flexion (arm forward/up), abduction (sideways/up), twist (about the arm), elbow flexion."""
        shoulder, elbow_joint, sign = (R_SHOULDER, R_ELBOW, 1.0) if side == "right" else (L_SHOULDER, L_ELBOW, -1.0)
        parts = np.broadcast_arrays(flex, -sign * abduction, sign * twist, self.t)[:3]
        self.angles[:, shoulder] = np.stack(parts, -1)
        self.angles[:, elbow_joint, 0] = np.broadcast_to(elbow, self.t.shape)

    def trunk(self, joint: int, flex=0.0, lateral=0.0, twist=0.0) -> None:
        """Spine/thorax/neck: forward flexion, lateral bend (to the right), twist (to the left)."""
        self.angles[:, joint] = np.stack(np.broadcast_arrays(-np.asarray(flex), lateral, twist, self.t)[:3], -1)

    def root(self, lean=0.0, roll=0.0) -> None:
        """Whole-body forward lean and sideways roll about the pelvis."""
        self.angles[:, HIP] = np.stack(np.broadcast_arrays(-np.asarray(lean), roll, 0.0, self.t)[:3], -1)

    def add_idle(self, rng: np.random.Generator, amount: float = 1.0) -> None:
        """Small breathing-like wobble of trunk, head and arms so that no take is perfectly still."""
        for joint in (SPINE, THORAX, NECK):
            for axis in range(3):
                self.angles[:, joint, axis] += smooth_noise(rng, self.t, 0.025 * amount, 0.4)
        for joint in (L_SHOULDER, R_SHOULDER, L_ELBOW, R_ELBOW):
            self.angles[:, joint, 0] += smooth_noise(rng, self.t, 0.04 * amount, 0.4)


def _gait_angles(motion: Motion, phase: np.ndarray, amplitude: np.ndarray, arm_swing: float) -> None:
    """Leg, pelvis and arm angles of walking at gait ``phase`` (radians, one stride = 2 pi)."""
    for side, offset in (("right", 0.0), ("left", np.pi)):
        p = phase + offset
        swing = (0.5 + 0.5 * np.cos(p)) ** 3  # knee flexes while the leg swings forward
        motion.leg(side, hip_flex=amplitude * (np.sin(p) + 0.3), knee_flex=0.08 + 2.2 * amplitude * swing,
                   abduction=0.04)  # fmt: skip
        other = "left" if side == "right" else "right"
        motion.arm(other, flex=arm_swing * 0.9 * amplitude * np.sin(p), abduction=0.12,
                   elbow=0.3 + arm_swing * 0.25 * amplitude * (1 + np.sin(p)))  # fmt: skip
    motion.root(lean=0.06, roll=0.03 * np.sin(2 * phase))
    motion.trunk(THORAX, flex=0.02, twist=-0.08 * np.sin(phase))


def _ellipse_path(rng: np.random.Generator, distance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions (T, 2) and headings (T,) after walking ``distance`` metres along a random ellipse in the area."""
    radius = np.array([rng.uniform(0.75, 1.0), rng.uniform(1.2, 1.6)])
    center = CAPTURE_CENTER + rng.uniform(-0.15, 0.15, 2)
    direction = rng.choice([-1.0, 1.0])
    start = rng.uniform(0, 2 * np.pi)
    dense = start + direction * np.linspace(0, 2 * np.pi * 8, 8 * 2048 + 1)
    points = center + radius * np.stack([np.cos(dense), np.sin(dense)], -1)
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])
    angle = np.interp(distance, arc, dense)
    xy = center + radius * np.stack([np.cos(angle), np.sin(angle)], -1)
    tangent = direction * np.stack([-radius[0] * np.sin(angle), radius[1] * np.cos(angle)], -1)
    heading = np.arctan2(-tangent[:, 0], tangent[:, 1])  # yaw 0 faces +y; yaw turns counter-clockwise
    return xy, np.unwrap(heading)


def _walk(motion: Motion, rng: np.random.Generator, body: SubjectBody, speed: float, amplitude: float,
          arm_swing: float) -> None:  # fmt: skip
    """Walk along an ellipse: the stride length follows the leg length and the speed sets the cadence."""
    t = motion.t
    ramp = ease(t / 1.0)  # start from standing within the first second
    distance = np.cumsum(speed * ramp) / FPS
    stride = 4.0 * body.leg_length * np.sin(amplitude) * 0.85
    phase = 2 * np.pi * distance / stride + rng.uniform(0, 2 * np.pi)
    _gait_angles(motion, phase, amplitude * ramp, arm_swing * body.arm_swing)
    motion.ground_xy, motion.yaw = _ellipse_path(rng, distance)
    motion.yaw = motion.yaw + 0.06 * np.sin(phase)  # pelvis rotation
    motion.anchor_feet = False


def action_walking(motion: Motion, rng: np.random.Generator, body: SubjectBody) -> None:
    """Walking around the area with arm swing, turning continuously along an ellipse."""
    _walk(motion, rng, body, speed=rng.uniform(1.0, 1.3), amplitude=rng.uniform(0.3, 0.36), arm_swing=1.0)
    motion.trunk(NECK, flex=0.05 + smooth_noise(rng, motion.t, 0.05), twist=smooth_noise(rng, motion.t, 0.1))
    motion.add_idle(rng, 0.5)


def action_walk_together(motion: Motion, rng: np.random.Generator, body: SubjectBody) -> None:
    """Slower walking beside a (virtual) partner: smaller strides and arm swing, head turned to the side."""
    _walk(motion, rng, body, speed=rng.uniform(0.7, 0.9), amplitude=rng.uniform(0.22, 0.27), arm_swing=0.6)
    side = rng.choice([-1.0, 1.0])
    glances = keyframes(motion.t, *_random_holds(rng, motion.t[-1], [0.0, 0.5 * side], 1.0, 3.0, 0.6))
    motion.trunk(NECK, flex=0.08, twist=glances + smooth_noise(rng, motion.t, 0.05))
    motion.add_idle(rng, 0.5)


def _random_holds(
    rng: np.random.Generator, duration: float, levels: list[float], hold_min: float, hold_max: float, move: float
) -> tuple[list[float], list[float]]:
    """Keyframes that alternate between ``levels`` (cycling), holding each for a random time, moving in ``move`` s."""
    times, values, now, index = [0.0], [levels[0]], 0.0, 0
    while now < duration:
        now += rng.uniform(hold_min, hold_max)
        times.append(now)
        values.append(values[-1])
        index += 1
        now += move
        times.append(now)
        values.append(levels[index % len(levels)])
    return times, values


def _step_in_place(motion: Motion, activity: np.ndarray, frequency: float) -> None:
    """Small alternating steps (used while turning on the spot); ``activity`` in [0, 1] gates them."""
    phase = 2 * np.pi * frequency * motion.t
    for side, offset in (("right", 0.0), ("left", np.pi)):
        lift = activity * np.clip(np.sin(phase + offset), 0.0, None) ** 2
        motion.leg(side, hip_flex=0.05 + 0.35 * lift, knee_flex=0.1 + 0.6 * lift, abduction=0.05)


def action_directions(motion: Motion, rng: np.random.Generator, body: SubjectBody) -> None:
    """Turning on the spot towards new directions (stepping while turning) and pointing with either arm."""
    t, duration = motion.t, motion.t[-1]
    times, values, turning = [0.0], [rng.uniform(-np.pi, np.pi)], np.zeros_like(t)
    for index, (start, end) in enumerate(schedule(rng, duration, [(1.2, 2.5), (0.9, 1.4)])):
        if index % 2 == 1:  # intervals alternate: hold the heading, then turn to a new one
            times += [start, end]
            values += [values[-1], values[-1] + rng.choice([-1, 1]) * rng.uniform(0.6, 1.8)]
            turning += np.sin(np.pi * np.clip((t - start) / (end - start), 0, 1)) ** 2
    motion.yaw = keyframes(t, times, values)
    _step_in_place(motion, np.clip(turning, 0, 1), frequency=1.8 * body.tempo)
    for side in ("right", "left"):
        raise_level = keyframes(t, *_random_holds(rng, duration, [0.0, 1.0], 1.5, 4.0, 0.7 / body.tempo))
        motion.arm(side, flex=0.1 + 1.25 * raise_level, abduction=0.12 + 0.25 * raise_level,
                   elbow=0.15 + 0.1 * (1 - raise_level))  # fmt: skip
    motion.trunk(NECK, flex=smooth_noise(rng, t, 0.08), twist=smooth_noise(rng, t, 0.2))
    motion.ground_xy = CAPTURE_CENTER + rng.uniform(-0.3, 0.3, 2) + np.stack(
        [smooth_noise(rng, t, 0.1, 0.1), smooth_noise(rng, t, 0.1, 0.1)], -1
    )
    motion.add_idle(rng)


def action_greeting(motion: Motion, rng: np.random.Generator, body: SubjectBody) -> None:
    """Waving with a raised hand, then lowering it; a slight bow now and then."""
    t, duration = motion.t, motion.t[-1]
    side = str(rng.choice(["right", "left"]))
    raised = keyframes(t, *_random_holds(rng, duration, [0.0, 1.0], 1.0, 2.5, 0.6 / body.tempo))
    wave = np.sin(2 * np.pi * rng.uniform(1.6, 2.4) * body.tempo * t)
    motion.arm(side, flex=0.15 + 0.35 * raised, abduction=0.12 + 1.2 * raised, twist=-1.5 * raised,
               elbow=0.15 + raised * (1.6 + 0.35 * wave))  # fmt: skip
    other = "left" if side == "right" else "right"
    motion.arm(other, flex=0.1 + smooth_noise(rng, t, 0.1), abduction=0.12, elbow=0.2 + smooth_noise(rng, t, 0.1))
    bow = keyframes(t, *_random_holds(rng, duration, [0.0, 0.35], 2.0, 4.0, 0.8))
    motion.trunk(SPINE, flex=bow * (1 - raised), lateral=0.05 * raised)
    motion.trunk(NECK, flex=0.5 * bow + smooth_noise(rng, t, 0.05), twist=smooth_noise(rng, t, 0.15))
    motion.yaw = rng.uniform(-np.pi, np.pi) + smooth_noise(rng, t, 0.3, 0.15)
    _weight_shift(motion, rng)
    motion.add_idle(rng)


def _weight_shift(motion: Motion, rng: np.random.Generator, amount: float = 1.0) -> None:
    """Slow side-to-side weight shifts of a standing subject (pelvis roll with hip abduction)."""
    shift = smooth_noise(rng, motion.t, 0.04 * amount, 0.3)
    knee = 0.06 + np.abs(smooth_noise(rng, motion.t, 0.05 * amount, 0.3))
    motion.root(lean=0.02, roll=shift)
    motion.leg("right", hip_flex=0.03, knee_flex=knee, abduction=0.05 - shift)
    motion.leg("left", hip_flex=0.03, knee_flex=knee, abduction=0.05 + shift)


def action_discussion(motion: Motion, rng: np.random.Generator, body: SubjectBody) -> None:
    """Talking with both hands: forearms up, lively gestures, head nods and turns, weight shifts."""
    t = motion.t
    for side in ("right", "left"):
        motion.arm(side, flex=0.35 + smooth_noise(rng, t, 0.25, 0.9 * body.tempo),
                   abduction=0.2 + np.abs(smooth_noise(rng, t, 0.15, 0.7)),
                   twist=smooth_noise(rng, t, 0.2, 0.5),
                   elbow=1.2 + smooth_noise(rng, t, 0.3, 1.0 * body.tempo))  # fmt: skip
    motion.trunk(NECK, flex=0.1 + smooth_noise(rng, t, 0.1, 1.0), twist=smooth_noise(rng, t, 0.3, 0.3))
    motion.trunk(SPINE, flex=0.05 + smooth_noise(rng, t, 0.05), twist=smooth_noise(rng, t, 0.1))
    motion.yaw = rng.uniform(-np.pi, np.pi) + smooth_noise(rng, t, 0.4, 0.1)
    _weight_shift(motion, rng, 1.5)
    motion.add_idle(rng)


def _sit_pose(motion: Motion, rng: np.random.Generator, seated: np.ndarray) -> None:
    """Leg, trunk and arm angles for a sitting level ``seated`` in [0, 1] (0 standing, 1 on a chair)."""
    speed = np.gradient(seated) * FPS
    transition = (speed / max(np.abs(speed).max(), 1e-9)) ** 2  # smooth bump while getting up or sitting down
    knee_extra = smooth_noise(rng, motion.t, 0.08, 0.2)
    for side in ("right", "left"):
        motion.leg(side, hip_flex=0.03 + 1.42 * seated, knee_flex=0.06 + (1.45 + knee_extra) * seated,
                   abduction=0.05 + 0.12 * seated)  # fmt: skip
    motion.root(lean=0.02 + 0.55 * transition + 0.1 * seated)
    motion.trunk(SPINE, flex=0.25 * transition)
    for side in ("right", "left"):
        motion.arm(side, flex=0.1 + 0.5 * transition + 0.5 * seated, abduction=0.15, elbow=0.15 + 0.9 * seated)


def action_sitting_down(motion: Motion, rng: np.random.Generator, body: SubjectBody) -> None:
    """Sitting down on a (virtual) chair and standing up again, repeatedly, with a forward lean in transitions."""
    t, duration = motion.t, motion.t[-1]
    seated = keyframes(t, *_random_holds(rng, duration, [0.0, 1.0], 1.0, 2.5, rng.uniform(1.3, 1.8) / body.tempo))
    _sit_pose(motion, rng, seated)
    motion.trunk(NECK, flex=0.1 + smooth_noise(rng, t, 0.08), twist=smooth_noise(rng, t, 0.15))
    motion.yaw = rng.uniform(-np.pi, np.pi) + smooth_noise(rng, t, 0.1, 0.1)
    motion.add_idle(rng)


def action_sitting(motion: Motion, rng: np.random.Generator, body: SubjectBody) -> None:
    """Seated the whole take: eating-like hand-to-mouth movements, leaning, head movements."""
    t, duration = motion.t, motion.t[-1]
    _sit_pose(motion, rng, np.ones_like(t))
    side = str(rng.choice(["right", "left"]))
    to_mouth = keyframes(t, *_random_holds(rng, duration, [0.0, 1.0], 0.8, 2.5, 0.6 / body.tempo))
    motion.arm(side, flex=0.6 + 0.4 * to_mouth, abduction=0.2, twist=0.3 * to_mouth, elbow=1.0 + 1.1 * to_mouth)
    other = "left" if side == "right" else "right"
    motion.arm(other, flex=0.6 + smooth_noise(rng, t, 0.15), abduction=0.2, elbow=1.1 + smooth_noise(rng, t, 0.2))
    motion.trunk(SPINE, flex=0.15 + 0.15 * to_mouth + smooth_noise(rng, t, 0.05))
    motion.trunk(NECK, flex=0.2 * to_mouth + smooth_noise(rng, t, 0.08), twist=smooth_noise(rng, t, 0.25, 0.3))
    motion.yaw = rng.uniform(-np.pi, np.pi) + smooth_noise(rng, t, 0.05, 0.1)
    motion.add_idle(rng)


def action_purchases(motion: Motion, rng: np.random.Generator, body: SubjectBody) -> None:
    """Squatting down to pick something up, standing up, side steps to the next spot."""
    t, duration = motion.t, motion.t[-1]
    squat = keyframes(t, *_random_holds(rng, duration, [0.0, 1.0], 0.8, 1.8, rng.uniform(0.9, 1.3) / body.tempo))
    for side in ("right", "left"):
        motion.leg(side, hip_flex=0.05 + 1.75 * squat, knee_flex=0.08 + 2.0 * squat, abduction=0.06 + 0.2 * squat)
    motion.root(lean=0.02 + 0.35 * squat)
    motion.trunk(SPINE, flex=0.3 * squat)
    motion.trunk(NECK, flex=0.2 + 0.2 * squat + smooth_noise(rng, t, 0.05), twist=smooth_noise(rng, t, 0.15))
    reach = str(rng.choice(["right", "left"]))
    for side in ("right", "left"):
        amount = 1.0 if side == reach else 0.5
        motion.arm(side, flex=0.15 + amount * 0.9 * squat, abduction=0.15, elbow=0.2 + 0.5 * (1 - squat) * amount)
    # shuffle to a new spot (feet anchored) between squats
    spots = [CAPTURE_CENTER + rng.uniform(-0.4, 0.4, 2) for _ in range(8)]
    times, spot_index = _random_holds(rng, duration, list(range(len(spots))), 2.0, 3.5, 1.2)
    index = np.asarray(spot_index, dtype=int)
    motion.ground_xy = np.stack(
        [keyframes(t, times, [spots[i][0] for i in index]), keyframes(t, times, [spots[i][1] for i in index])], -1
    )
    motion.yaw = rng.uniform(-np.pi, np.pi) + smooth_noise(rng, t, 0.4, 0.1)
    motion.add_idle(rng)


def action_posing(motion: Motion, rng: np.random.Generator, body: SubjectBody) -> None:
    """Jumping on the spot with an arm swing, holding an arms-up pose between jumps."""
    t, duration = motion.t, motion.t[-1]
    crouch = np.zeros_like(t)
    arms_up = np.zeros_like(t)
    arms_back = np.zeros_like(t)
    flight_time = rng.uniform(0.38, 0.46)
    height = 9.81 * flight_time**2 / 8  # apex height of a ballistic flight of that duration
    now = rng.uniform(0.5, 1.0)
    while now + 1.6 < duration:
        takeoff = now + 0.45
        land = takeoff + flight_time
        window = (t >= takeoff) & (t <= land)
        motion.lift[window] += height * np.sin(np.pi * (t[window] - takeoff) / flight_time) ** 2
        crouch += np.exp(-(((t - (takeoff - 0.2)) / 0.13) ** 2)) + 0.8 * np.exp(-(((t - (land + 0.12)) / 0.13) ** 2))
        arms_back += np.exp(-(((t - (takeoff - 0.2)) / 0.15) ** 2))
        arms_up += np.exp(-(((t - (takeoff + flight_time / 2)) / 0.25) ** 2))
        now = land + rng.uniform(1.0, 1.8) / body.tempo
    for side in ("right", "left"):
        motion.leg(side, hip_flex=0.03 + 0.9 * crouch, knee_flex=0.06 + 1.3 * crouch, abduction=0.06)
        motion.arm(side, flex=0.1 + 2.0 * arms_up - 0.6 * arms_back, abduction=0.15 + 0.8 * arms_up, elbow=0.2)
    motion.root(lean=0.05 + 0.45 * crouch)
    motion.trunk(NECK, flex=0.05 - 0.15 * arms_up)
    motion.yaw = rng.uniform(-np.pi, np.pi) + smooth_noise(rng, t, 0.1, 0.1)
    motion.add_idle(rng, 0.5)


def action_waiting(motion: Motion, rng: np.random.Generator, body: SubjectBody) -> None:
    """Standing and waiting: weight shifts, arms crossed or on the hips for a while, looking around."""
    t, duration = motion.t, motion.t[-1]
    folded = keyframes(t, *_random_holds(rng, duration, [0.0, 1.0], 1.5, 4.0, 1.0))
    for side in ("right", "left"):
        motion.arm(side, flex=0.1 + 0.45 * folded, abduction=0.15 + 0.1 * folded, elbow=0.15 + 1.75 * folded)
    motion.trunk(NECK, flex=smooth_noise(rng, t, 0.1), twist=smooth_noise(rng, t, 0.45, 0.2))
    motion.yaw = rng.uniform(-np.pi, np.pi) + smooth_noise(rng, t, 0.5, 0.08)
    _weight_shift(motion, rng, 1.2)
    motion.ground_xy = CAPTURE_CENTER + rng.uniform(-0.3, 0.3, 2)
    motion.add_idle(rng)


ActionGenerator = Callable[[Motion, np.random.Generator, SubjectBody], None]

ACTIONS: dict[str, ActionGenerator] = {
    "Directions": action_directions,
    "Discussion": action_discussion,
    "Greeting": action_greeting,
    "Posing": action_posing,
    "Purchases": action_purchases,
    "Sitting": action_sitting,
    "SittingDown": action_sitting_down,
    "Waiting": action_waiting,
    "WalkTogether": action_walk_together,
    "Walking": action_walking,
}
"""Synthetic action groups (Human3.6M group names whose motion they imitate) -> generator."""
