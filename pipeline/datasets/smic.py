"""SMIC, high-speed (HS) or normal-speed visual (VIS) and near-infrared (NIR).

Frames are ``<root>/HS/s1/micro/negative/s1_ne_01/image106034.bmp``; the
label is the folder (positive, negative, surprise). There is no sheet: onset
and offset are the clip's first and last frame numbers and there is no apex
(the apex stage estimates it).

References
----------
Li, X., Pfister, T., Huang, X., Zhao, G., & Pietikäinen, M. (2013). A
spontaneous micro-expression database: Inducement, collection and baseline.
IEEE FG 2013. https://doi.org/10.1109/FG.2013.6553717
"""
from __future__ import annotations

import re
from pathlib import Path

from mepipe.featurestore.errors import ConfigError

from .base import AdapterResult, Quirk, Sample, register_adapter
from .sheets import clip_frames, finding

SMIC_FPS = {"HS": 100.0, "VIS": 25.0, "NIR": 25.0}
SMIC_LABELS = ("positive", "negative", "surprise")
MICRO_DIR = "micro"

_SUBJECT_DIR = re.compile(r"^s\d+$", re.IGNORECASE)


def _subject_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and _SUBJECT_DIR.match(p.name))


def _modality_root(root: Path, modality: str) -> Path:
    """``root/<modality>``, or ``root`` itself when it already holds ``s*/micro`` folders."""
    nested = root / modality
    if nested.is_dir():
        return nested
    if root.is_dir() and any((p / MICRO_DIR).is_dir() for p in _subject_dirs(root)):
        return root
    expected = nested / "s1" / MICRO_DIR / "<label>" / "<clip>"
    raise FileNotFoundError(f"no SMIC {modality} frames under {root}: expected {expected}/")


def _clip_sample(
    clip_dir: Path, subject: str, label: str, fps: float, dataset: str = "smic"
) -> tuple[Sample, list[Quirk]]:
    sample_id = clip_dir.name
    frames = clip_frames(clip_dir, sample_id, source=str(clip_dir))
    findings = frames.findings
    if label not in SMIC_LABELS:
        message = f"label folder {label!r} is none of {', '.join(SMIC_LABELS)}"
        findings += finding(sample_id, "unknown_label", message, str(clip_dir))
    sample = Sample(
        sample=sample_id,
        dataset=dataset,
        subject=subject,
        clip=clip_dir.name,
        fps=fps,
        frame_files=frames.files,
        frame_numbers=frames.numbers,
        onset=frames.numbers[0] if frames.numbers else None,
        offset=frames.numbers[-1] if frames.numbers else None,
        emotion=label,
        flags=findings.flags,
        error=frames.error,
    )
    return sample, list(findings.quirks)


@register_adapter("smic")
def load_smic(
    root: Path,
    annotations: Path | None = None,
    *,
    modality: str = "HS",
    fps: float | None = None,
    dataset: str = "smic",
) -> AdapterResult:
    """SMIC micro-expression clips of one modality: sample id ``"s1_ne_01"``, subject ``"s1"``.

    Parameters
    ----------
    root
        The SMIC folder holding ``HS``, ``VIS``, ``NIR`` (or one of them).
    annotations
        Unused: SMIC labels come from the folder names. Must be None.
    modality
        ``"HS"`` (100 fps), ``"VIS"`` or ``"NIR"`` (25 fps).
    fps
        Overrides the modality's frame rate.
    dataset
        The dataset name written into every sample.
    """
    if annotations is not None:
        raise ConfigError(f"SMIC has no annotation sheet (labels are folder names); got annotations={annotations}")
    key = modality.upper()
    if key not in SMIC_FPS:
        raise ConfigError(f"SMIC modality {modality!r} is unknown; use one of {', '.join(SMIC_FPS)}")
    rate = SMIC_FPS[key] if fps is None else float(fps)
    result = AdapterResult()
    for subject_dir in _subject_dirs(_modality_root(Path(root), key)):
        for label_dir in sorted(p for p in (subject_dir / MICRO_DIR).glob("*") if p.is_dir()):
            for clip_dir in sorted(p for p in label_dir.iterdir() if p.is_dir()):
                sample, quirks = _clip_sample(clip_dir, subject_dir.name, label_dir.name.lower(), rate, dataset)
                result.samples.append(sample)
                result.quirks.extend(quirks)
    return result


@register_adapter("demo-smic")
def load_demo_smic(root: Path, annotations: Path | None = None, *, fps: float | None = None) -> AdapterResult:
    """The synthetic demo in the SMIC-HS layout (``mepipe.pipeline.demo``): read as SMIC-HS, named ``demo-smic``."""
    return load_smic(root, annotations, modality="HS", fps=fps, dataset="demo-smic")
