"""Parameters of the synthetic demo dataset.

Every number the generator uses lives here, so a demo is fully described by
one :class:`DemoParams` (written to ``demo.json`` next to the frames).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FORMAT_VERSION = 1
"""Version of the demo layout and generator; bump when output bytes change."""


@dataclass(frozen=True)
class DemoParams:
    """What to generate and how.

    Lengths are pixels of the written frames, angles degrees, ranges
    ``(low, high)`` of a uniform draw.

    Parameters
    ----------
    seed : int
        Root seed. Every subject and clip draws from its own generator derived
        from ``(seed, subject, class, clip)``, so changing ``n_subjects`` or
        ``n_clips`` leaves the other clips byte-identical.
    n_subjects, n_clips : int
        Subjects ``"001"...`` and clips per subject and class.
    classes : tuple of str
        Expression classes to generate, a subset of ``"Happiness"``,
        ``"Surprise"``, ``"Anger"`` (see :mod:`.motion`).
    n_frames, fps : int, float
        Frames per clip and their frame rate (SAMM: 200 fps; recorded in demo.json).
    frame_size : tuple of int
        ``(height, width)`` of every frame.
    interocular_px : float
        Eye-centre distance of the canonical face; subjects vary around it.
    eye_line : tuple of float
        Eye midpoint of the canonical face as fractions ``(x, y)`` of the
        frame. High in the frame, because Xia's crop (SPEC §2.3) taken
        literally runs from the eye line 2.2·d down.
    first_frame_range : tuple of int
        Range of the first frame number of a clip: numbers never start at 0
        or 1, so consumers must map frames by the number in the file name.
    onset_range : tuple of int
        Onset as a frame index within the clip.
    apex_range : tuple of float
        Apex index as fractions of ``n_frames`` (the middle third).
    offset_margin : int
        Least number of frames between the offset and the last frame.
    min_phase : int
        Least number of frames between onset and apex and between apex and offset.
    amplitude_px : tuple of float
        Apex displacement of the most-moving landmark of a clip.
    head_shift_px, head_rotation_deg : float
        Bounds of the rigid head pose at the first and the last frame; the pose
        drifts smoothly between them (:class:`.motion.HeadDrift`).
    noise_sigma : float
        Standard deviation of the per-frame Gaussian pixel noise (grey levels).
    noise_tile_margin : int
        Extra rows and columns of the per-clip noise tile whose windows give
        the frames their noise (``margin²`` distinct windows, at least ``n_frames``).
    jpeg_quality : int
        JPEG quality of the written frames.
    scale_jitter, face_width_jitter, eye_distance_jitter, jaw_jitter : float
        Identity geometry: global scale, jaw width, eye distance and jaw drop,
        as fractions (of the face size or the inter-ocular distance).
    brightness_range, contrast_range, gamma_range : tuple of float
        Identity photometry on intensities in [0, 1].
    gradient_strength : float
        Largest relative change of a smooth linear illumination gradient
        across the frame.
    forehead_anchor, temple_anchor : float
        Still points that confine expression motion to the face: above the
        brows and beside the outer brow ends, in inter-ocular distances.
    map_stride : int
        Pixel stride of the coarse grid on which displacement fields are
        evaluated before bilinear upsampling (speed; fields are smooth).
    inverse_iterations : int
        Fixed-point iterations that invert the forward expression field.
    erratum_clip : str or None
        Clip whose apex is written wrongly in the sheet (outside
        onset..offset, like SAMM's 028_4_1); ``None`` writes no erratum.
    """

    seed: int = 0
    n_subjects: int = 6
    n_clips: int = 2
    classes: tuple[str, ...] = ("Happiness", "Surprise", "Anger")
    n_frames: int = 24
    fps: float = 200.0
    frame_size: tuple[int, int] = (384, 384)
    interocular_px: float = 110.0
    eye_line: tuple[float, float] = (0.5, 0.3)
    first_frame_range: tuple[int, int] = (1000, 8000)
    onset_range: tuple[int, int] = (2, 4)
    apex_range: tuple[float, float] = (1 / 3, 2 / 3)
    offset_margin: int = 2
    min_phase: int = 3
    amplitude_px: tuple[float, float] = (2.5, 4.0)
    head_shift_px: float = 2.0
    head_rotation_deg: float = 1.0
    noise_sigma: float = 2.0
    noise_tile_margin: int = 16
    jpeg_quality: int = 95
    scale_jitter: float = 0.03
    face_width_jitter: float = 0.06
    eye_distance_jitter: float = 0.04
    jaw_jitter: float = 0.06
    brightness_range: tuple[float, float] = (-0.08, 0.08)
    contrast_range: tuple[float, float] = (0.85, 1.15)
    gamma_range: tuple[float, float] = (0.85, 1.2)
    gradient_strength: float = 0.15
    forehead_anchor: float = 0.5
    temple_anchor: float = 0.3
    map_stride: int = 4
    inverse_iterations: int = 4
    erratum_clip: str | None = "001_3_1"

    def apex_bounds(self) -> tuple[int, int]:
        """First and last frame index the apex may take (the ``apex_range`` fraction of the clip)."""
        low, high = (int(np.ceil(f * self.n_frames)) for f in self.apex_range)
        return low, high - 1

    def __post_init__(self) -> None:
        if not 1 <= self.n_subjects <= 999:
            raise ValueError(f"n_subjects must be in 1..999, got {self.n_subjects}")
        if self.n_clips < 1:
            raise ValueError(f"n_clips must be at least 1, got {self.n_clips}")
        first_apex, last_apex = self.apex_bounds()
        if self.onset_range[0] < 1 or self.onset_range[1] + self.min_phase > first_apex:
            raise ValueError(
                f"onset_range {self.onset_range} must start at index 1 or later and end "
                f"{self.min_phase} frames before the earliest apex (index {first_apex})"
            )
        if last_apex + self.min_phase > self.n_frames - 1 - self.offset_margin:
            raise ValueError(
                f"n_frames={self.n_frames} leaves no room for an offset {self.min_phase} frames "
                f"after the latest apex (index {last_apex}) and {self.offset_margin} before the end; "
                "use more frames"
            )
        if self.noise_tile_margin**2 < self.n_frames:
            raise ValueError(
                f"noise_tile_margin={self.noise_tile_margin} gives fewer noise windows than "
                f"n_frames={self.n_frames}"
            )
        if self.first_frame_range[0] < 2 or self.first_frame_range[1] + self.n_frames > 99999:
            raise ValueError(
                f"first_frame_range {self.first_frame_range} must start above 1 and keep frame "
                "numbers within 5 digits"
            )
