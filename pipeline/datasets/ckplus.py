"""CK+, the extended Cohn-Kanade posed-expression dataset.

Frames are ``cohn-kanade-images/S005/001/S005_001_00000001.png``; each
sequence runs from neutral (first frame, the onset) to the peak (last frame,
apex and offset). Labels are ``Emotion/S005/001/*_emotion.txt`` holding one
code 0-7; only some sequences have one. Action units, where present, are
``FACS/S005/001/*_facs.txt`` (rows of AU number and intensity).

References
----------
Lucey, P., Cohn, J. F., Kanade, T., Saragih, J., Ambadar, Z., & Matthews, I.
(2010). The Extended Cohn-Kanade Dataset (CK+). IEEE CVPR Workshops.
https://doi.org/10.1109/CVPRW.2010.5543262
"""
from __future__ import annotations

from pathlib import Path

from .base import AdapterResult, Quirk, Sample, register_adapter
from .sheets import Findings, clip_frames, finding, require_dir

CKPLUS_FPS = 30.0
IMAGES_DIR = "cohn-kanade-images"
EMOTION_DIR = "Emotion"
FACS_DIR = "FACS"
EMOTIONS = ("neutral", "anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")


def _find_dir(root: Path, name: str) -> Path | None:
    """``root/name`` or ``root/<child>/name`` (the archives unpack one level deep)."""
    if (root / name).is_dir():
        return root / name
    nested = sorted(p / name for p in root.iterdir() if p.is_dir() and (p / name).is_dir())
    return nested[0] if nested else None


def _read_code_file(path: Path) -> list[list[float]]:
    """Rows of floats from a CK+ label file (``   7.0000000e+00`` per line)."""
    return [[float(x) for x in line.split()] for line in path.read_text().splitlines() if line.strip()]


def read_emotion(folder: Path | None, sample: str) -> tuple[str, Findings]:
    """The emotion name of a sequence, or ``""`` with a flag when it has none or it is unreadable."""
    files = sorted(folder.glob("*_emotion.txt")) if folder is not None and folder.is_dir() else []
    if not files:
        where = f"no *_emotion.txt in {folder}" if folder else "no Emotion folder"
        return "", finding(sample, "no_emotion_label", f"{where}; emotion left empty", str(folder or ""))
    try:
        code = _read_code_file(files[0])[0][0]
    except (ValueError, IndexError):
        code = float("nan")
    if not float(code).is_integer() or not 0 <= code < len(EMOTIONS):
        message = f"{files[0].name} holds no emotion code 0..{len(EMOTIONS) - 1}; emotion left empty"
        return "", finding(sample, "emotion_unparsable", message, str(files[0]))
    return EMOTIONS[int(code)], Findings()


def read_action_units(folder: Path | None) -> str:
    """Action units of a sequence as ``"1+2+5"`` (intensities dropped), ``""`` when absent or unreadable."""
    files = sorted(folder.glob("*_facs.txt")) if folder is not None and folder.is_dir() else []
    if not files:
        return ""
    try:
        rows = _read_code_file(files[0])
    except ValueError:
        return ""
    return "+".join(str(int(row[0])) for row in rows if row)


def _sequence_sample(
    seq_dir: Path, emotion_root: Path | None, facs_root: Path | None, fps: float
) -> tuple[Sample, list[Quirk]]:
    subject, clip = seq_dir.parent.name, seq_dir.name
    sample_id = f"{subject}_{clip}"
    rel = Path(subject) / clip
    frames = clip_frames(seq_dir, sample_id, source=str(seq_dir))
    emotion, label_findings = read_emotion(emotion_root / rel if emotion_root else None, sample_id)
    findings = frames.findings + label_findings
    last = frames.numbers[-1] if frames.numbers else None
    sample = Sample(
        sample=sample_id,
        dataset="ckplus",
        subject=subject,
        clip=clip,
        fps=fps,
        frame_files=frames.files,
        frame_numbers=frames.numbers,
        onset=frames.numbers[0] if frames.numbers else None,
        apex=last,
        offset=last,
        emotion=emotion,
        action_units=read_action_units(facs_root / rel if facs_root else None),
        flags=findings.flags,
        error=frames.error,
    )
    return sample, list(findings.quirks)


def _visible_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


@register_adapter("ckplus")
def load_ckplus(root: Path, annotations: Path | None = None, *, fps: float = CKPLUS_FPS) -> AdapterResult:
    """CK+ sequences: sample id ``"S005_001"``, subject ``"S005"``, emotion by name.

    Parameters
    ----------
    root
        Folder holding ``cohn-kanade-images`` and ``Emotion`` (directly or one
        level down, as the archives unpack).
    annotations
        The ``Emotion`` folder, when it is not under ``root``.
    fps
        Frame rate [30].

    Returns
    -------
    AdapterResult
        ``emotion`` is one of neutral, anger, contempt, disgust, fear, happy,
        sadness, surprise, or ``""`` (flag ``no_emotion_label``) for the
        sequences CK+ leaves unlabelled; they are kept.
    """
    root = require_dir(root, "CK+")
    images = _find_dir(root, IMAGES_DIR)
    if images is None:
        raise FileNotFoundError(f"no {IMAGES_DIR} folder in {root} or one level below")
    emotion_root = Path(annotations) if annotations is not None else _find_dir(root, EMOTION_DIR)
    if annotations is not None and not emotion_root.is_dir():
        raise FileNotFoundError(f"CK+ Emotion folder {emotion_root} does not exist")
    facs_root = _find_dir(root, FACS_DIR)
    result = AdapterResult(sheet=str(emotion_root) if emotion_root else None)
    for subject_dir in _visible_dirs(images):
        for seq_dir in _visible_dirs(subject_dir):
            sample, quirks = _sequence_sample(seq_dir, emotion_root, facs_root, fps)
            result.samples.append(sample)
            result.quirks.extend(quirks)
    return result
