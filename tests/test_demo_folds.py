"""The skin folds a demo expression deepens: where they are drawn, and that the frames show them."""
from __future__ import annotations

import numpy as np
import pytest

from mepipe.pipeline.demo import DemoParams
from mepipe.pipeline.demo.face import make_subject
from mepipe.pipeline.demo.folds import FOLDS, fold_lines, fold_shade
from mepipe.pipeline.demo.motion import LAYOUT_CLASSES, ExpressionClass, expression_basis, expression_shade
from mepipe.pipeline.demo.synth import plan_clip, render_clip


def _face() -> np.ndarray:
    """68 iBUG points of a symmetric face: eye centres (100, 100) and (200, 100), so d = 100, midline x = 150."""
    points = np.zeros((68, 2))
    for rows, x0 in ((range(36, 42), 100), (range(42, 48), 200)):
        angles = np.linspace(0, 2 * np.pi, 6, endpoint=False)
        points[list(rows)] = np.stack([x0 + 15 * np.cos(angles), 100 + 5 * np.sin(angles)], axis=1)
    points[17:22] = [[70 + 15 * k, 70] for k in range(5)]           # image-left brow, inner end x = 130
    points[22:27] = [[170 + 15 * k, 70] for k in range(5)]          # image-right brow, inner end x = 170
    points[27:31] = [[150, 100 + 15 * k] for k in range(4)]         # nose bridge
    points[31:36] = [[130 + 10 * k, 170] for k in range(5)]         # nose base, wings x = 130, 170
    points[48:60] = [[120 + 5 * k, 210] for k in range(12)]
    points[48], points[54] = [120, 210], [180, 210]                  # mouth corners
    points[56:59] = [[160, 225], [150, 227], [140, 225]]             # lower lip
    points[:17] = [[40 + 14 * k, 100 + 8 * k] for k in range(17)]
    return points


def test_fold_lines_sit_where_the_docstring_says():
    face = _face()
    left, right = fold_lines("glabella", face)
    assert np.allclose(left[:, 0], 150 - 10) and np.allclose(right[:, 0], 150 + 10)
    assert np.allclose(left[:, 1], [70 - 30, 70 + 5])
    forehead = fold_lines("forehead", face)
    assert [line[0, 1] for line in forehead] == pytest.approx([70 - 12, 70 - 22, 70 - 32])
    naso_left, naso_right = fold_lines("nasolabial", face)
    assert naso_left[0] == pytest.approx([130 - 12, 170 - 2]) and naso_left[-1] == pytest.approx([120 - 12, 218])
    assert np.allclose(naso_right[:, 0], 300 - naso_left[:, 0]) and np.allclose(naso_right[:, 1], naso_left[:, 1])
    (chin,) = fold_lines("chin", face)
    assert np.allclose(chin[:, 1], face[[58, 57, 56], 1] + 18)
    with pytest.raises(ValueError, match="unknown fold 'dimple'"):
        fold_lines("dimple", face)


def test_fold_shade_peaks_at_one_on_the_lines_and_is_zero_far_away():
    face = _face()
    shade = fold_shade(("glabella",), face, (300, 300), width=0.03, blur=0.02)
    assert shade.max() == pytest.approx(1.0)
    assert shade[55, 140] > 0.5 and shade[55, 160] > 0.5 and shade[55, 150] < 0.2
    assert shade[200, 60] == 0
    assert not fold_shade((), face, (300, 300), 0.03, 0.02).any()
    with pytest.raises(ValueError, match="unknown folds"):
        ExpressionClass("x", 1, 1, {48: (0, 1)}, ("dimple",))


def _frames(subject, cls, params, folds: bool) -> list[np.ndarray]:
    truth, rng = plan_clip(subject, cls, 1, params)
    shade = expression_shade(subject, cls, params) if folds else None
    return list(render_clip(subject, expression_basis(subject, cls, params), truth, rng, params, shade=shade)), truth


def test_each_class_darkens_its_own_fold_in_proportion_to_the_expression():
    """A clip with folds differs from the same clip without them only along its class's folds, most at the apex."""
    params = DemoParams(n_subjects=1, n_clips=1)
    subject = make_subject(1, params)
    centres = {name: np.concatenate([(line[1:] + line[:-1]) / 2 for line in fold_lines(name, subject.frame_landmarks)])
               for name in FOLDS}
    for cls in LAYOUT_CLASSES["samm"].values():
        with_folds, truth = _frames(subject, cls, params, folds=True)
        without, _ = _frames(subject, cls, params, folds=False)
        assert np.array_equal(with_folds[0], without[0]), "the first frame, before the onset, has no folds"
        loss = {name: [np.mean([float(b[y - 1:y + 2, x - 1:x + 2].mean()) - float(a[y - 1:y + 2, x - 1:x + 2].mean())
                                for x, y in np.rint(points).astype(int)])
                       for a, b in zip(with_folds, without)]
                for name, points in centres.items()}
        (fold,) = cls.folds
        apex = truth.apex_index
        grey = float(np.mean([without[apex][y, x] for x, y in np.rint(centres[fold]).astype(int)]))
        assert loss[fold][apex] > 0.2 * params.fold_depth * grey, (cls.name, loss[fold][apex], grey)
        assert int(np.argmax(loss[fold])) == apex or loss[fold][apex] > 0.95 * max(loss[fold])
        for name in set(FOLDS) - {fold}:
            assert abs(loss[name][apex]) < 0.1 * loss[fold][apex], (cls.name, name, loss[name][apex])
