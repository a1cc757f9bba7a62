"""Frames and true landmarks of a demo long video, from its plan (:mod:`.long_plan`).

Every frame is the subject's canvas, darkened along the folds of the
expression under way and blended towards closed eyes during a blink, then
warped once: by the sum of the event fields at that frame (expression,
lids, turn or nod parallax), then by the head drift, as a short clip is
(:func:`.motion.frame_maps`). The pixel noise and JPEG quality are the same
for every frame of a video, so nothing but the events themselves tells an
annotated interval from the rest.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace

import cv2
import numpy as np

from .blink import closed_eyes, eye_openings, lid_displacements
from .face import Subject, apply_affine, make_subject
from .long_params import LongDemoParams
from .long_plan import BLINK, MACRO, MICRO, NOD, TURN, VideoPlan, class_of
from .motion import expression_shade, frame_maps, landmark_field
from .params import PRESETS, DemoParams
from .relief import face_relief, parallax
from .synth import noise_frames
from .warp import grid_points


def face_params(params: LongDemoParams) -> DemoParams:
    """The short-clip parameters the videos' faces are rendered with: the ``people`` preset's, with this
    corpus's seed and drift bounds (which size the canvas margin)."""
    return replace(PRESETS[params.people], seed=params.seed, head_shift_px=params.drift_shift_px,
                   head_rotation_deg=params.drift_rotation_deg)


@dataclass(frozen=True)
class Timeline:
    """Per frame index of a video: the amplitude (pixels) of each expression, keyed by (kind, emotion), the eye
    closure (0-1), and the turn and nod angles (degrees)."""

    expression: dict[tuple[str, str], np.ndarray]
    closure: np.ndarray
    yaw: np.ndarray
    pitch: np.ndarray


def timeline(plan: VideoPlan, classes: tuple[str, ...]) -> Timeline:
    """The strength of every event of ``plan`` at every frame index."""
    n = plan.n_frames
    expression = {(kind, name): np.zeros(n) for kind in (MICRO, MACRO) for name in classes}
    closure, yaw, pitch = np.zeros(n), np.zeros(n), np.zeros(n)
    for event in plan.events:
        amount = event.strength * event.profile(plan.first_frame, n)
        if event.kind in (MICRO, MACRO):
            expression[event.kind, event.expression] += amount
        elif event.kind == BLINK:
            closure += amount
        elif event.kind == TURN:
            yaw += amount
        elif event.kind == NOD:
            pitch += amount
    return Timeline(expression, closure, yaw, pitch)


def bounding_box(mask: np.ndarray) -> tuple[slice, slice]:
    """Rows and columns where ``mask`` (H, W) is non-zero."""
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


@dataclass(frozen=True)
class Performer:
    """A subject with everything its videos need, computed once.

    Fields are forward displacements on the canvas's coarse grid
    (:func:`.warp.grid_points`), ``moves`` the same motions at the 68
    landmarks: per expression (kind, emotion) at unit amplitude, the lids in
    pixels at full closure, and the face's depth for turns and nods.
    """

    subject: Subject
    face: DemoParams
    fold_full_px: float
    bases: dict[tuple[str, str], np.ndarray]
    moves: dict[tuple[str, str], np.ndarray]
    shades: dict[tuple[str, str], tuple[tuple[slice, slice], np.ndarray]]
    lid_field: np.ndarray
    lid_moves: np.ndarray
    eyes_box: tuple[slice, slice]
    eyes_mask: np.ndarray
    eyes_closed: np.ndarray
    depth_grid: np.ndarray
    depth_landmarks: np.ndarray

    @classmethod
    def make(cls, number: int, subject_id: str, params: LongDemoParams) -> Performer:
        """Subject ``number`` of the ``people`` preset (the same person as there) and its fields."""
        face = face_params(params)
        subject = make_subject(number, face, subject_id)
        shape = subject.image.shape[:2]
        bases, moves, shades = {}, {}, {}
        for key in ((kind, name) for kind in (MICRO, MACRO) for name in face.classes):
            expression = class_of(*key)
            moves[key] = expression.displacements()
            bases[key] = landmark_field(subject, moves[key], face)
            shade = expression_shade(subject, expression, face)
            box = bounding_box(shade)
            shades[key] = (box, shade[box])
        lid_moves = lid_displacements(subject.landmarks, params.lid_travel)
        openings = eye_openings(subject.landmarks, shape)
        box = bounding_box(openings)
        grid = grid_points(shape, face.map_stride)
        return cls(
            subject=subject, face=face, fold_full_px=params.fold_full_px, bases=bases, moves=moves, shades=shades,
            lid_field=landmark_field(subject, lid_moves, face), lid_moves=lid_moves, eyes_box=box,
            eyes_mask=openings[box], eyes_closed=closed_eyes(subject.image, subject.landmarks)[box],
            depth_grid=face_relief(subject.landmarks, grid, params.face_depth, params.nose_depth),
            depth_landmarks=face_relief(subject.landmarks, subject.landmarks, params.face_depth, params.nose_depth),
        )

    def field(self, line: Timeline, index: int) -> np.ndarray:
        """Forward displacement field of every event at frame ``index``, (gh, gw, 2) float64."""
        out = float(line.closure[index]) * self.lid_field
        for key, amplitude in line.expression.items():
            if amplitude[index]:
                out = out + amplitude[index] * self.bases[key]
        if line.yaw[index] or line.pitch[index]:
            out = out + parallax(self.depth_grid, line.yaw[index], line.pitch[index])
        return out

    def landmarks(self, line: Timeline, index: int) -> np.ndarray:
        """True landmarks (68, 2) at frame ``index`` before the head drift, frame pixels."""
        points = self.subject.frame_landmarks + float(line.closure[index]) * self.lid_moves
        for key, amplitude in line.expression.items():
            points = points + amplitude[index] * self.moves[key]
        return points + parallax(self.depth_landmarks, line.yaw[index], line.pitch[index])

    def look(self, line: Timeline, index: int) -> np.ndarray:
        """The canvas at frame ``index``: folds of the expression under way, eyes closing in a blink."""
        face = self.subject.image
        changed = False
        for key, amplitude in line.expression.items():
            weight = min(1.0, amplitude[index] / self.fold_full_px)
            if weight > 0:
                face = face if changed else face.copy()
                changed = True
                box, shade = self.shades[key]
                face[box] *= 1 - np.float32(weight) * channels_like(shade, face)
        closure = float(line.closure[index])
        if closure > 0:
            face = face if changed else face.copy()
            box = self.eyes_box
            weight = np.float32(closure) * channels_like(self.eyes_mask, face)
            face[box] += weight * (self.eyes_closed - face[box])
        return face


def channels_like(mask: np.ndarray, image: np.ndarray) -> np.ndarray:
    """A (H, W) mask shaped to multiply ``image`` ((H, W) or (H, W, C))."""
    return mask[..., None] if image.ndim == 3 else mask


def noise_margin(n_frames: int) -> int:
    """The smallest noise-tile margin giving every frame of a video its own window (``margin**2 >= n_frames``)."""
    return math.isqrt(n_frames - 1) + 1


def render_video(performer: Performer, plan: VideoPlan, params: LongDemoParams) -> Iterator[np.ndarray]:
    """Yield the video's frames, (H, W) uint8 (greyscale, as SAMM), in frame order.

    The noise comes from the video's own generator ``(seed, subject, video, 1)``.
    """
    line = timeline(plan, performer.face.classes)
    rng = np.random.default_rng([params.seed, plan.subject_number, plan.video_number, 1])
    noise = noise_frames(rng, performer.face, n_frames=plan.n_frames, margin=noise_margin(plan.n_frames))
    for index, grain in enumerate(noise):
        maps = frame_maps(performer.subject, performer.field(line, index), 1.0, plan.wander.affine(index),
                          performer.face)
        frame = cv2.remap(performer.look(line, index), maps, None, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
        frame += grain
        np.rint(frame, out=frame)
        yield np.clip(frame, 0, 255, out=frame).astype(np.uint8)


def video_landmarks(performer: Performer, plan: VideoPlan) -> np.ndarray:
    """True landmarks of every frame of the video, (n_frames, 68, 2) float64 frame pixels."""
    line = timeline(plan, performer.face.classes)
    return np.stack([apply_affine(plan.wander.affine(i), performer.landmarks(line, i)) for i in range(plan.n_frames)])
