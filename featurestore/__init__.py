"""The feature store: mepipe's on-disk contract (layout, feature table, provenance, read-time views).

>>> from mepipe.featurestore import open_store
>>> store = open_store("data/stores/demo.zarr")          # doctest: +SKIP
>>> store.read("landmarks", "001_1_1").shape             # doctest: +SKIP
(24, 68, 2)
"""
from .features import FEATURES, STATE_NAMES, FeatureDef, feature_def, feature_names
from .integrity import IntegrityError
from .provenance import BuildRecord, ProvenanceError
from .schema import SCHEMA_VERSION
from .store import FeatureStore, IncompleteStoreError, open_store
from .versioning import IncompatibleStoreError

__all__ = ["open_store", "FeatureStore", "IncompleteStoreError", "IncompatibleStoreError", "IntegrityError",
           "ProvenanceError",
           "BuildRecord", "FEATURES", "FeatureDef", "SCHEMA_VERSION", "STATE_NAMES", "feature_def", "feature_names"]
