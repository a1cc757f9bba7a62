"""Xia's frame subsets (§III-E): draws and the onset->apex pair each gives STRCN-G, by hand."""
import numpy as np
import pytest

from mepipe.pipeline.stages.subsets import XIA_LEVELS, draw_subsets, subset_onset_apex, subset_pairs, subset_seed


def test_draws_keep_the_level_of_frames_and_repeat():
    seed = subset_seed("001_1_1", 0)
    keep = draw_subsets(24, XIA_LEVELS, seed)
    # round(24 * level): 24, 22 (21.6), 19 (19.2), 17 (16.8), 14 (14.4)
    assert keep.sum(axis=1).tolist() == [24, 22, 19, 17, 14]
    assert np.array_equal(keep, draw_subsets(24, XIA_LEVELS, seed))
    assert not np.array_equal(keep, draw_subsets(24, XIA_LEVELS, subset_seed("001_1_2", 0)))
    assert not np.array_equal(keep, draw_subsets(24, XIA_LEVELS, subset_seed("001_1_1", 1)))
    assert draw_subsets(3, (0.1,), seed).sum() == 2  # never fewer than two frames
    with pytest.raises(ValueError, match="fractions"):
        draw_subsets(24, (1.2,), seed)


def test_subset_pair_by_hand():
    # onset 2 and apex 10 are both dropped: the onset moves to 3, the first kept frame after it;
    # 9 and 11 are equally near the apex and 11 has the larger std-diff
    keep = np.ones(16, dtype=bool)
    keep[[2, 10]] = False
    stddiff = np.array([0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 9, 8, 6, 4, 2, 1], dtype=float)
    assert subset_onset_apex(keep, 2, 10, stddiff) == (3, 11)
    stddiff[9] = 8.5
    assert subset_onset_apex(keep, 2, 10, stddiff) == (3, 9)
    # both kept: the clip's own pair
    assert subset_onset_apex(np.ones(16, dtype=bool), 2, 10, stddiff) == (2, 10)
    # nothing kept at or after the onset: the clip's own pair
    only_early = np.zeros(16, dtype=bool)
    only_early[[0, 1]] = True
    assert subset_onset_apex(only_early, 2, 10, stddiff) == (2, 10)


def test_subset_pairs_are_distinct_and_indexed():
    stddiff = np.arange(12, dtype=float)
    keep = np.ones((3, 12), dtype=bool)
    keep[1, 6] = False  # apex 6 dropped: 5 and 7 tie, 7 has the larger std-diff
    keep[2, [2, 6]] = False  # onset 2 and apex 6 dropped: (3, 7)
    pairs, pair_of = subset_pairs(keep, 2, 6, stddiff)
    assert pairs.tolist() == [[2, 6], [2, 7], [3, 7]]
    assert pair_of.tolist() == [0, 1, 2]
