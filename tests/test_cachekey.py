"""Cache keys: canonical, chained, and sensitive to exactly what they should be."""
from dataclasses import dataclass

import pytest

from mepipe.featurestore.cachekey import canonical, params_json, stage_key


@dataclass(frozen=True)
class P:
    a: int = 1
    b: tuple = (1.5, 2.5)


def test_canonical_json_is_order_independent():
    assert params_json({"x": 1, "y": [1, 2]}) == params_json({"y": (1, 2), "x": 1})
    assert params_json(P()) == '{"a":1,"b":[1.5,2.5]}'


def test_unhashable_parameters_raise():
    with pytest.raises(TypeError, match="cannot make a cache key"):
        canonical(object())


def test_key_changes_with_each_ingredient():
    base = stage_key("align", "1", P(), {"landmarks": "k1"}, "digest")
    assert base == stage_key("align", "1", P(), {"landmarks": "k1"}, "digest")
    variants = [stage_key("apex", "1", P(), {"landmarks": "k1"}, "digest"),
                stage_key("align", "2", P(), {"landmarks": "k1"}, "digest"),
                stage_key("align", "1", P(a=2), {"landmarks": "k1"}, "digest"),
                stage_key("align", "1", P(), {"landmarks": "k2"}, "digest"),
                stage_key("align", "1", P(), {"landmarks": "k1"}, "other")]
    assert len({base, *variants}) == 6
