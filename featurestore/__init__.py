"""The feature store: mepipe's on-disk contract (layout, schema, provenance, cache keys).

>>> from mepipe.featurestore import open_store
>>> store = open_store("data/stores/demo.zarr")          # doctest: +SKIP
>>> store.read("landmarks", "001_1_1").shape             # doctest: +SKIP
(24, 68, 2)
"""
from .schema import SCHEMA_VERSION, STATE_NAMES, feature_names, feature_spec
from .store import FeatureStore, IncompleteStoreError, open_store
from .versioning import IncompatibleStoreError

__all__ = ["open_store", "FeatureStore", "IncompleteStoreError", "IncompatibleStoreError",
           "SCHEMA_VERSION", "STATE_NAMES", "feature_names", "feature_spec"]
