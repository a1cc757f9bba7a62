"""Goshtasby's local weighted mean (Xia eq. 2) on hand-checkable control points."""
import numpy as np
import pytest

from mepipe.pipeline.stages.lwm import LocalWeightedMean, lwm_weight

# A regular pentagon around a centre point: 6 points not on one conic, so each
# quadratic through them is unique. The centre's 5th-nearest point is at 1, a
# vertex's at 2 sin 72° (the two far vertices).
PENTAGON = np.array([[0.0, 0.0]] + [[np.cos(a), np.sin(a)] for a in np.deg2rad(90 + 72 * np.arange(5))])


def test_weight_by_hand():
    # W(R) = 1 - 3 R^2 + 2 R^3: 1 at 0, 0.5 at 0.5, 0 at and beyond 1
    assert lwm_weight(np.array([0.0, 0.5, 0.1, 1.0, 1.5])) == pytest.approx([1.0, 0.5, 0.972, 0.0, 0.0])


def test_radii_are_the_distance_to_the_fifth_nearest_point():
    lwm = LocalWeightedMean.fit(PENTAGON, n=6)
    assert lwm.radii[0] == pytest.approx(1.0)
    assert lwm.radii[1:] == pytest.approx([2 * np.sin(np.deg2rad(72))] * 5)


def test_constant_values_fade_outside_the_points_reach_by_hand():
    lwm = LocalWeightedMean.fit(PENTAGON, n=6)
    ones = np.ones(6)
    # at the centre every weight counts and they sum past 1: the mean of constants is the constant
    assert lwm(ones, np.array([[0.0, 0.0]])) == pytest.approx([1.0])
    # (0, 2.5) is 1.5 from the top vertex (R = 1.5 / 1.902 = 0.7886, W = 0.1152) and out of every other
    # point's reach, so the sum of weights is below 1 and the value fades to W itself
    r = 1.5 / (2 * np.sin(np.deg2rad(72)))
    assert lwm(ones, np.array([[0.0, 2.5]])) == pytest.approx([1 - 3 * r ** 2 + 2 * r ** 3])
    assert lwm(ones, np.array([[0.0, 2.5]]))[0] == pytest.approx(0.1152, abs=1e-4)
    assert lwm(ones, np.array([[0.0, 5.0]])) == pytest.approx([0.0])


def test_interpolates_its_control_points_with_six_neighbours():
    rng = np.random.default_rng(3)
    points = rng.uniform(0, 100, (30, 2))
    values = rng.normal(size=(30, 2))
    lwm = LocalWeightedMean.fit(points, n=6)
    assert lwm(values, points) == pytest.approx(values, abs=1e-8)


@pytest.mark.parametrize("n", [6, 12])
def test_reproduces_a_quadratic_field(n):
    rng = np.random.default_rng(4)
    points = rng.uniform(0, 100, (40, 2))

    def field(p):
        x, y = p[:, 0], p[:, 1]
        return np.stack([3 + 0.2 * x - 0.1 * y + 1e-3 * x * y, -1 + 0.05 * x + 2e-3 * y * y - 1e-3 * x * x], 1)

    lwm = LocalWeightedMean.fit(points, n=n)
    query = rng.uniform(20, 80, (200, 2))
    # where the weights sum to 1 or more the mean is Goshtasby's, and every polynomial is the field itself
    total = sum(lwm_weight(np.linalg.norm(query - p, axis=1) / r) for p, r in zip(points, lwm.radii))
    query = query[total >= 1]
    assert len(query) > 50
    assert lwm(field(points), query) == pytest.approx(field(query), abs=1e-8)


def test_operator_is_linear_in_the_values():
    rng = np.random.default_rng(5)
    points = rng.uniform(0, 50, (12, 2))
    lwm = LocalWeightedMean.fit(points, n=8)
    query = rng.uniform(0, 50, (7, 2))
    values = rng.normal(size=(12, 2))
    assert lwm.operator(query) @ values == pytest.approx(lwm(values, query))


def test_collinear_neighbourhoods_stay_bounded():
    # Points on the line y = 2x leave the quadratic undetermined across it. A field quadratic along the
    # line is still reproduced on it, and off the line the undetermined part is zero, not arbitrary.
    t = np.arange(10.0)
    line = np.stack([t, 2 * t], 1)
    lwm = LocalWeightedMean.fit(line, n=6)
    values = 1 + t - 0.1 * t ** 2
    assert lwm(values, line) == pytest.approx(values, abs=1e-8)
    off_line = line[4] + np.array([2.0, -1.0])  # perpendicular to the line, 2.2 from point 4
    assert abs(lwm(values, off_line[None])[0] - values[4]) < 1.0


@pytest.mark.parametrize("points, n, match", [
    (np.zeros((5, 3)), 6, "shape"),
    (np.arange(10.0).reshape(5, 2), 6, "n=6"),
    (np.zeros((8, 2)), 6, "coincide"),
])
def test_bad_control_points_raise(points, n, match):
    with pytest.raises(ValueError, match=match):
        LocalWeightedMean.fit(points, n)
