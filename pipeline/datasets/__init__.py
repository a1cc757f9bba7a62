"""Dataset adapters: dataset root + annotation sheet -> one table of samples.

Importing this package registers every adapter; pick one with
:func:`get_adapter` (``--dataset NAME``) and call it as
``adapter(root, annotations=None, **options)``.
"""
# The adapter modules are imported for their @register_adapter side effect.
from . import casme, casme2, casme3, casme_sq, ckplus, fourdme, manifest, mmew, samm, samm_lv, smic  # noqa: F401
from .base import AdapterResult, Quirk, Sample, adapter_names, adapter_unit, get_adapter

__all__ = ["AdapterResult", "Quirk", "Sample", "adapter_names", "adapter_unit", "get_adapter"]
