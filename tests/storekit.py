"""Tiny stores and a fault-injecting HTTP server on 127.0.0.1, for the store fault tests and the back-end suite.

The stores are written with StoreWriter (random values, so that a flipped
byte changes numbers) and finished with a build record and a manifest, as a
build leaves them; the server is Python's own, serving files from a folder,
answering queued faults (a status, or other bytes) for chosen paths first,
and logging every request path.
"""
from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import http.server
import json
import threading
from pathlib import Path

import numpy as np
import pandas as pd
from conftest import finish_synthetic_store

from mepipe.featurestore.integrity import RetryPolicy
from mepipe.featurestore.manifest import write_manifest
from mepipe.featurestore.schema import SAMPLE_COLUMNS
from mepipe.featurestore.writer import StoreWriter

FAST = RetryPolicy(attempts=3, first_delay=0.01)
SAMPLES = ("s1", "s2")


def write_store(path: Path, seed: int = 0, samples=SAMPLES, attrs=None) -> Path:
    """A complete store with random landmarks and frame numbers per clip and a build record, with its manifest.

    ``attrs`` override root attributes after the build record is written
    (a mapping value updates the record's mapping, e.g. ``build``).
    """
    rng = np.random.default_rng(seed)
    w = StoreWriter(path)
    w.create()
    for s in samples:
        frames = np.arange(10, 14) + seed
        w.write_feature(s, "landmarks", rng.normal(100, 30, (4, 68, 2)).astype(np.float32), f"key-{s}",
                        frame_numbers=frames)
        w.write_feature(s, "frame", frames, f"key-{s}")
    rows = [dict.fromkeys(SAMPLE_COLUMNS, "") | {"sample": s, "fps": 200.0, "n_frames": 4, "onset": 10, "apex": 11,
                                                  "offset": 13, "status": "ok", "subject": "001",
                                                  "onset_est": None, "apex_est": None, "offset_est": None,
                                                  "apex_ncc": None} for s in samples]
    w.write_samples(pd.DataFrame(rows))
    finish_synthetic_store(w, "faults")
    if attrs:
        root = w.root_attrs()
        w.update_root_attrs({k: {**root[k], **v} if isinstance(v, dict) and isinstance(root.get(k), dict) else v
                             for k, v in attrs.items()})
        w.consolidate()
        write_manifest(path)
    return path


def manifest_of(store: Path) -> dict:
    return json.loads((store / "manifest.json").read_text())


def chunk_name(store: Path, sample: str = "s1", feature: str = "landmarks") -> str:
    """The manifest name of a clip feature's chunk (layout-agnostic: found through the manifest)."""
    names = [n for n in manifest_of(store)["files"] if "/c/" in n and n.startswith(f"clips/{sample}/")
             and n.split("/c/")[0].rsplit("/", 1)[-1] == feature]
    assert len(names) == 1, names
    return names[0]


class FaultyHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files, but first answers what is queued for a path (``faults``: a status, other bytes, or a
    callable given the handler); logs request paths; with ``auth`` ("user:password"), answers 401 to requests
    without that basic authentication."""

    faults: dict[str, list]
    log: list[str]
    auth: str | None = None

    def log_message(self, *args):
        pass

    def _refused(self) -> bool:
        if self.auth is None:
            return False
        expected = "Basic " + base64.b64encode(self.auth.encode()).decode()
        if self.headers.get("Authorization") == expected:
            return False
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="lab"')
        self.send_header("Content-Length", "0")
        self.end_headers()
        return True

    def do_HEAD(self):
        if not self._refused():
            super().do_HEAD()

    def do_GET(self):
        self.log.append(self.path)
        if self._refused():
            return
        queue = self.faults.get(self.path.split("?")[0])
        if queue:
            fault = queue.pop(0)
            if callable(fault):
                fault(self)
            elif isinstance(fault, bytes):
                self.send_response(200)
                self.send_header("Content-Length", str(len(fault)))
                self.end_headers()
                self.wfile.write(fault)
            else:
                self.send_error(fault)
            return
        super().do_GET()


class _NoListing(FaultyHandler):
    def list_directory(self, path):
        self.send_error(404)


@contextlib.contextmanager
def serve(root: Path, listing: bool = True, auth: str | None = None):
    """Serve ``root`` on 127.0.0.1; yields (base URL, fault table, request log)."""
    faults: dict[str, list] = {}
    log: list[str] = []
    handler = type("H", (FaultyHandler if listing else _NoListing,), {"faults": faults, "log": log, "auth": auth})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", faults, log
    finally:
        server.shutdown()
        server.server_close()


def reseal_files(store: Path, *names: str) -> None:
    """Update the manifest entries of ``names`` to the files' new bytes, as a forger editing both would."""
    doc = manifest_of(store)
    for name in names:
        data = (store / name).read_bytes()
        doc["files"][name] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (store / "manifest.json").write_text(json.dumps(doc))
