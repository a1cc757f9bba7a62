"""Parameters of the synthetic demo datasets.

Every number the generator uses lives here, so a demo is fully described by
one :class:`DemoParams` (written to ``demo.json`` next to the frames).
:data:`PRESETS` holds the four demo corpora, one per layout: ``demo``
(SAMM), ``demo-casme2`` (CASME II raw), ``demo-smic`` (SMIC-HS) and
``demo-casme3`` (CAS(ME)³ part A).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FORMAT_VERSION = 3
"""Version of the demo layouts and generator; bump when output bytes change."""

LAYOUTS = ("samm", "casme2", "smic", "casme3")
"""Dataset layouts a demo can be written in (:mod:`.layouts`)."""

FRAME_NUMBER_LIMIT = {"samm": 99999, "casme2": 99999, "smic": 999999, "casme3": 99999}
"""Largest frame number a layout's file names carry (SAMM pads to 5 digits, SMIC-HS uses 6)."""


@dataclass(frozen=True)
class DemoParams:
    """What to generate and how.

    Lengths are pixels of the written frames, angles degrees, ranges
    ``(low, high)`` of a uniform draw.

    Parameters
    ----------
    layout : {"samm", "casme2", "smic", "casme3"}
        Folder layout, file names and annotation format (:mod:`.layouts`).
    seed : int
        Root seed. Every subject and clip draws from its own generator derived
        from ``(seed, subject, class, clip)``, so changing ``n_subjects`` or
        ``n_clips`` leaves the other clips byte-identical.
    n_subjects, n_clips : int
        Subjects (numbered from 1) and clips per subject and class.
    identities : tuple of int
        Rows of :data:`.identities.IDENTITIES` that subjects 1, 2, ... get:
        who each subject is. Distinct presets use disjoint rows, so no person
        appears in two demo corpora.
    classes : tuple of str
        Expression classes to generate, named as the layout's annotations
        name them (:data:`.motion.LAYOUT_CLASSES`).
    extra_clips : tuple of str
        Classes of which each subject gets one more clip (clip number
        ``n_clips + 1``), e.g. CASME II's ``"others"``, which the MEGC 2019
        composite leaves out.
    colour : bool
        Write colour (BGR) frames; greyscale otherwise (SAMM is greyscale).
    n_frames, fps : int, float
        Frames per clip and their frame rate (SAMM: 200 fps; recorded in demo.json).
    frame_size : tuple of int
        ``(height, width)`` of every frame.
    interocular_px : float
        Eye-centre distance of the canonical face; subjects vary around it.
    eye_line : tuple of float
        Eye midpoint of the canonical face as fractions ``(x, y)`` of the
        frame. High in the frame, because Xia's crop (Xia et al. 2019, eq. 1) taken
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
    fold_depth : float
        Darkening at the deepest point of a class's skin folds at the apex, as
        a fraction of the grey level (:mod:`.folds`; 0 draws none).
    fold_width, fold_blur : float
        Stroke width and feathering (Gaussian sigma) of a fold, in inter-ocular distances.
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
    scale_jitter : float
        Largest relative change of a subject's overall face size (who a
        subject is comes from :data:`.identities.IDENTITIES`).
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
        Clip (its :func:`.layouts.clip_key`) whose apex is written wrongly in the sheet: outside
        onset..offset in the SAMM and CAS(ME)³ layouts (like SAMM's 028_4_1), ``/`` in the
        CASME II layout (like CASME II's sub04 EP12_01f); ``None`` writes no
        erratum. SMIC has no sheet and takes ``None``.
    composite_skip : tuple of str
        Clips (keys, as ``erratum_clip``) the demo's MEGC 2019 composite list leaves out although the
        megc-3 scheme maps their emotion, as the official list leaves out 5
        of the 150 such CASME II clips (:mod:`.composite`).
    """

    layout: str = "samm"
    seed: int = 0
    n_subjects: int = 6
    n_clips: int = 2
    identities: tuple[int, ...] = (0, 1, 2, 10, 4, 5)
    classes: tuple[str, ...] = ("Happiness", "Surprise", "Anger")
    extra_clips: tuple[str, ...] = ()
    colour: bool = False
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
    amplitude_px: tuple[float, float] = (5.0, 8.0)
    fold_depth: float = 0.3
    fold_width: float = 0.03
    fold_blur: float = 0.02
    head_shift_px: float = 2.0
    head_rotation_deg: float = 1.0
    noise_sigma: float = 1.0
    noise_tile_margin: int = 16
    jpeg_quality: int = 95
    scale_jitter: float = 0.03
    brightness_range: tuple[float, float] = (-0.08, 0.08)
    contrast_range: tuple[float, float] = (0.85, 1.15)
    gamma_range: tuple[float, float] = (0.85, 1.2)
    gradient_strength: float = 0.15
    forehead_anchor: float = 0.5
    temple_anchor: float = 0.3
    map_stride: int = 4
    inverse_iterations: int = 4
    erratum_clip: str | None = "001_3_1"
    composite_skip: tuple[str, ...] = ()

    def apex_bounds(self) -> tuple[int, int]:
        """First and last frame index the apex may take (the ``apex_range`` fraction of the clip)."""
        low, high = (int(np.ceil(f * self.n_frames)) for f in self.apex_range)
        return low, high - 1

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout {self.layout!r} is unknown; use one of {', '.join(LAYOUTS)}")
        if not 1 <= self.n_subjects <= len(self.identities):
            raise ValueError(
                f"n_subjects must be in 1..{len(self.identities)} (one identity each), got {self.n_subjects}"
            )
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
        limit = FRAME_NUMBER_LIMIT[self.layout]
        if self.first_frame_range[0] < 2 or self.first_frame_range[1] + self.n_frames > limit:
            raise ValueError(
                f"first_frame_range {self.first_frame_range} must start above 1 and keep frame "
                f"numbers up to {limit} ({self.layout} file names)"
            )


PRESETS: dict[str, DemoParams] = {
    # SAMM layout: 6 subjects × 3 classes × 2 clips (the learnability tests' 36-clip design).
    "demo": DemoParams(identities=(0, 1, 2, 10, 4, 5)),
    # CASME II raw layout at 640×480 colour, one clip per class and subject (build time); "others"
    # clips and one sheet-mapped clip stay out of the demo composite list, and sub01's disgust clip
    # has "/" for its apex, as sub04 EP12_01f has.
    "demo-casme2": DemoParams(
        layout="casme2",
        n_subjects=3,
        n_clips=1,
        identities=(6, 7, 8),
        classes=("happiness", "surprise", "disgust", "repression"),
        extra_clips=("others",),
        colour=True,
        frame_size=(480, 640),
        interocular_px=90.0,
        eye_line=(0.5, 0.36),
        first_frame_range=(20, 400),
        amplitude_px=(4.0, 6.6),
        erratum_clip="sub01/EP03_01",
        composite_skip=("sub03/EP06_01",),
    ),
    # SMIC-HS layout at 100 fps (20 frames = 200 ms, a typical SMIC-HS clip), 400×300 colour BMP: the face
    # (dlib box ~200 px) stays above dlib's 80 px window at the landmark stage's 0.5 detection scale, and
    # uncompressed frames stay at ~130 MB.
    "demo-smic": DemoParams(
        layout="smic",
        n_subjects=3,
        n_frames=20,
        identities=(9, 3, 11),
        classes=("positive", "surprise", "negative"),
        colour=True,
        fps=100.0,
        frame_size=(300, 400),
        interocular_px=80.0,
        eye_line=(0.5, 0.34),
        first_frame_range=(100000, 900000),
        amplitude_px=(3.8, 6.0),
        head_shift_px=1.5,
        erratum_clip=None,
    ),
    # CAS(ME)³ part A layout at 30 fps, 640×480 colour: 3 subjects × 3 classes × 2 clips, clip k of every
    # class cut from video k (letter a, b) of its subject; 24 frames = 0.8 s of video per clip, onset..offset
    # about half a second. spNO.2's happy clip in video b has its apex written with a digit lost.
    "demo-casme3": DemoParams(
        layout="casme3",
        n_subjects=3,
        n_clips=2,
        identities=(12, 13, 14),
        classes=("happy", "surprise", "disgust"),
        colour=True,
        fps=30.0,
        frame_size=(480, 640),
        interocular_px=90.0,
        eye_line=(0.5, 0.36),
        first_frame_range=(20, 80),
        amplitude_px=(4.0, 6.6),
        erratum_clip="spNO.2/b/happy",
    ),
}
"""The four demo corpora by dataset name (``mepipe build --dataset NAME``)."""
