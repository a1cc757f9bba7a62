"""Xia's frame-subset augmentation: the frames a subset keeps, and the onset→apex pair it gives STRCN-G.

Xia et al. (2019, §III-E) augment the training data twice over: every clip is
magnified with each α of a list, and then "some frames are randomly selected
out from one sequence with a percentage", at five percentages (100, 90, 80,
70 and 60 %), one random selection each, for 10 × 5 = 50 versions of a clip.
Magnification comes first, so the frames of a subset are frames of the
clip magnified as a whole:

- **STRCN-A** reads the magnified clip time-normalised to T frames; a subset
  is its kept frames, time-normalised. Nothing beyond the magnified clips
  needs storing.
- **STRCN-G** reads one flow field, onset frame → apex frame. A subset changes
  it only when it drops one of the two: its sequence then starts at its first
  kept frame at or after the onset, and its apex is the kept frame nearest
  the apex (ties: the one with the larger std-diff, Xia eq. 5). Each distinct
  (onset, apex) pair is one more TV-L1 flow per α, so the store holds the
  flows of the pairs its subsets need, and which pair each subset uses.

Draws are seeded by the clip's sample id and a seed, so a rebuild draws the
same subsets.

References
----------
.. [1] Z. Xia, X. Hong, X. Gao, X. Feng, G. Zhao, "Spatiotemporal recurrent
   convolutional networks for recognizing spontaneous micro-expressions",
   IEEE Trans. Multimedia 22(3), 2020, §III-E. https://doi.org/10.1109/TMM.2019.2931351
"""
from __future__ import annotations

import zlib

import numpy as np

XIA_LEVELS = (1.0, 0.9, 0.8, 0.7, 0.6)
"""Xia's five percentages of frames kept, as fractions."""


def subset_seed(sample: str, seed: int) -> list[int]:
    """The random-generator seed of a clip's draws: its sample id (CRC-32) and the configured seed."""
    return [zlib.crc32(sample.encode("utf-8")), int(seed)]


def draw_subsets(n_frames: int, levels: tuple[float, ...], seed: list[int]) -> np.ndarray:
    """One random subset of frames per level.

    Parameters
    ----------
    n_frames : int
        Frames of the clip, T >= 2.
    levels : tuple of float
        Fractions of frames kept, each in (0, 1]: subset k keeps
        ``max(2, round(levels[k] * T))`` frames drawn uniformly without
        replacement (1.0 keeps every frame).
    seed : list of int
        From :func:`subset_seed`; draw k uses the generator seeded by ``seed + [k]``.

    Returns
    -------
    ndarray, shape (len(levels), T), bool
        ``keep[k, t]``: subset k keeps frame t.
    """
    if n_frames < 2:
        raise ValueError(f"a clip needs at least 2 frames for frame subsets, got {n_frames}")
    keep = np.zeros((len(levels), n_frames), dtype=bool)
    for k, level in enumerate(levels):
        if not 0 < level <= 1:
            raise ValueError(f"subset levels must be fractions in (0, 1], got {level!r}")
        count = min(n_frames, max(2, int(round(level * n_frames))))
        chosen = np.random.default_rng([*seed, k]).choice(n_frames, size=count, replace=False)
        keep[k, chosen] = True
    return keep


def subset_onset_apex(keep: np.ndarray, onset: int, apex: int, stddiff: np.ndarray) -> tuple[int, int]:
    """The (onset, apex) frame pair of one subset (module docstring).

    The onset moves to the first kept frame at or after it, the apex to the
    kept frame nearest it after that onset (ties: larger ``stddiff``). A
    subset that keeps no frame at or after the onset, or none after that
    first one, keeps the clip's own pair.
    """
    keep = np.asarray(keep, dtype=bool)
    if not 0 <= onset < apex < len(keep):
        raise ValueError(f"need 0 <= onset < apex < {len(keep)}, got onset={onset}, apex={apex}")
    kept = np.flatnonzero(keep)
    starts = kept[kept >= onset]
    if not starts.size:
        return onset, apex
    first = int(starts[0])
    later = kept[kept > first]
    if not later.size:
        return onset, apex
    distance = np.abs(later - apex)
    nearest = later[distance == distance.min()]
    peak = int(nearest[np.argmax(np.asarray(stddiff)[nearest])])
    return first, peak


def subset_pairs(keep: np.ndarray, onset: int, apex: int,
                 stddiff: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct (onset, apex) pairs of a clip's subsets, the clip's own pair first.

    Returns
    -------
    pairs : ndarray, shape (P, 2), int32
        (onset, apex) frame indices; ``pairs[0]`` is ``(onset, apex)``.
    pair_of : ndarray, shape (K,), int32
        Index into ``pairs`` of each subset's pair.
    """
    pairs = [(int(onset), int(apex))]
    pair_of = []
    for row in np.asarray(keep, dtype=bool):
        pair = subset_onset_apex(row, onset, apex, stddiff)
        if pair not in pairs:
            pairs.append(pair)
        pair_of.append(pairs.index(pair))
    return np.array(pairs, dtype=np.int32).reshape(-1, 2), np.array(pair_of, dtype=np.int32)
