"""Storage back-ends behind one contract (:class:`StoreBackend`), chosen by a registry.

Built in, in the order they are tried: a zip at a URL (``url-zip``), an
HTTP(S) folder (``http``), any other fsspec URL (``fsspec``), a local zip
(``zip``), a local folder (``folder``); plus the read cache (``cache``),
which wraps a remote back-end and is never chosen by URL.
"""
from .base import ReadLimitError, ReadOnlyBackendError, StoreBackend, publish_order
from .cache import CachingBackend
from .folder import FolderBackend
from .fsspec_url import FsspecBackend
from .http import HttpBackend
from .registry import (ENTRY_POINT_GROUP, available_backends, backend_class, open_backend, register_backend,
                       unregister_backend, writable_backend)
from .remote_zip import RemoteZipBackend
from .retry import FetchError, RetryPolicy, read_retrying
from .zipped import ZipBackend

for _builtin in (FolderBackend, ZipBackend, FsspecBackend, HttpBackend, RemoteZipBackend, CachingBackend):
    register_backend(_builtin)

__all__ = ["ENTRY_POINT_GROUP", "CachingBackend", "FetchError", "FolderBackend", "FsspecBackend", "HttpBackend",
           "ReadLimitError", "ReadOnlyBackendError", "RemoteZipBackend", "RetryPolicy", "StoreBackend", "ZipBackend",
           "available_backends", "backend_class", "open_backend", "publish_order", "read_retrying",
           "register_backend", "unregister_backend", "writable_backend"]
