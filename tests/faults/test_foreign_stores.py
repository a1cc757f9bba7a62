"""Fault suite, issue 24 item 4: stores from elsewhere stay data, in every command.

Before: ``store pack`` of a store whose chunk was a symlink to /dev/zero ran
out of memory with a traceback and hung on a FIFO, and ``push`` refused
with just ``Error: <path>``; a chunk left out of the manifest read as zeros
(and verified OK over HTTP); an enlarged shape in metadata was filled with
zeros or allocated (10^9 frames: MemoryError); 100k-deep JSON and a build
record whose ``features`` was not a list of names gave RecursionError and
TypeError tracebacks (or, for a string, features named by its letters).
Every command now reads a store's files as the read path does and refuses
each of these in one sentence naming the store and the file.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from storekit import chunk_name, manifest_of, reseal_files, serve, write_store

from mepipe.featurestore import IntegrityError, open_store
from mepipe.featurestore.location import locate
from mepipe.featurestore.manifest import write_manifest
from mepipe.featurestore.verify import verify

CAPPED = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
from mepipe.cli.main import cli
sys.argv = ["mepipe", *sys.argv[1:]]
cli()
"""
"""Runs ``mepipe ARGS`` in a child whose memory is capped at 3 GB (reading /dev/zero would pass that)."""


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    return write_store(tmp_path_factory.mktemp("pristine") / "s.zarr")


@pytest.fixture
def folder(pristine, tmp_path):
    return shutil.copytree(pristine, tmp_path / "s.zarr")


def _mepipe(*args: str, timeout: float = 120) -> tuple[int, list[str]]:
    out = subprocess.run([sys.executable, "-c", CAPPED, *args], capture_output=True, text=True, timeout=timeout)
    return out.returncode, (out.stdout + out.stderr).strip().splitlines()


def _commands(store, tmp_path) -> dict[str, list[str]]:
    return {"pack": ["store", "pack", str(store), str(tmp_path / "out.zip")],
            "push": ["store", "push", str(store), (tmp_path / "pushed.zarr").as_uri()],
            "export": ["export", str(store), "--to", str(tmp_path / "table.csv")]}


@pytest.mark.slow
@pytest.mark.parametrize("command", ["pack", "push", "export"])
@pytest.mark.parametrize("plant", ["dev-zero", "fifo"])
def test_a_planted_chunk_is_refused_by_every_command_in_one_line(plant, command, folder, tmp_path):
    name = chunk_name(folder)
    (folder / name).unlink()
    if plant == "dev-zero":
        (folder / name).symlink_to("/dev/zero")
    else:
        os.mkfifo(folder / name)
    status, lines = _mepipe(*_commands(folder, tmp_path)[command])
    assert status == 1 and len(lines) == 1, lines
    why = "symlink leading out of the store" if plant == "dev-zero" else "not a regular file"
    assert name in lines[0] and why in lines[0], lines
    assert not (tmp_path / "out.zip").exists() and not (tmp_path / "pushed.zarr").exists()


def _drop_from_manifest(store, name: str, legacy: bool) -> None:
    """Remove ``name``'s manifest entry (the file stays); ``legacy``: a manifest without the empty-chunk record."""
    doc = manifest_of(store)
    del doc["files"][name]
    if legacy:
        doc.pop("empty_chunks")
    (store / "manifest.json").write_text(json.dumps(doc))


@pytest.mark.slow
@pytest.mark.parametrize("legacy", [False, True], ids=["recorded", "legacy-manifest"])
@pytest.mark.parametrize("where", ["folder", "http", "http-unlisted"])
def test_a_chunk_missing_from_the_manifest_never_reads_as_zeros(where, legacy, folder, tmp_path):
    """Before: it read as zeros, and verify over HTTP said OK.

    A manifest that records the empty chunks accounts for every chunk, so the
    store is refused when it is opened, naming the array; with an older
    manifest the chunk is looked up when it is read, and found.
    """
    name = chunk_name(folder)
    _drop_from_manifest(folder, name, legacy)
    www = tmp_path / "www"
    shutil.copytree(folder, www / "s.zarr")
    with serve(www, listing=where != "http-unlisted") as (base, _, _):
        location = folder if where == "folder" else locate(f"{base}/s.zarr", cache_dir=tmp_path / "cache")
        with pytest.raises(IntegrityError, match="clip s1, feature landmarks") as caught:
            if legacy:
                store = open_store(location)
                np.testing.assert_array_equal(store.read("frame", "s1"), np.arange(10, 14))
                store.read("landmarks", "s1")
            else:
                open_store(location)
        assert name in str(caught.value)
        assert ("is there but not in the manifest" if legacy else "neither lists nor records") in str(caught.value)
        result = verify(location)
        assert not result.ok and (name in result.unexpected or any(name in u for u in result.unsafe)), \
            result.summary()


def test_a_chunk_recorded_empty_reads_as_fill_values(tmp_path):
    """The record is what lets an all-zero array be absent: it still reads, as zeros."""
    from conftest import finish_synthetic_store

    from mepipe.featurestore.writer import StoreWriter

    w = StoreWriter(tmp_path / "z.zarr")
    w.create()
    w.write_feature("s1", "landmarks", np.zeros((4, 68, 2), np.float32), "k")
    finish_synthetic_store(w, "faults")
    assert "clips/s1/landmarks/landmarks/c/0/0/0" in manifest_of(tmp_path / "z.zarr")["empty_chunks"]
    np.testing.assert_array_equal(open_store(tmp_path / "z.zarr").read("landmarks", "s1"), 0)
    assert verify(tmp_path / "z.zarr").ok


ENLARGED = {"frames": ([10**9, 68, 2], None), "frames-and-chunk": ([10**9, 68, 2], [10**9, 68, 2]),
            "four-more-frames": ([8, 68, 2], None)}

READ = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
from mepipe.featurestore import open_store
try:
    open_store(sys.argv[1]).read("landmarks", "s1")
    print("read")
except Exception as err:
    print(type(err).__name__, err)
"""


@pytest.mark.slow
@pytest.mark.parametrize("enlarged", sorted(ENLARGED))
def test_an_enlarged_shape_is_refused_against_the_manifest(enlarged, folder):
    """A forger enlarges the array's shape (and chunk shape) in its metadata and the consolidated copy, and
    updates those files' manifest entries. Before: zeros for the new frames, or MemoryError allocating them."""
    shape, chunks = ENLARGED[enlarged]
    array = chunk_name(folder).split("/c/")[0]
    root = json.loads((folder / "zarr.json").read_text())
    own = json.loads((folder / array / "zarr.json").read_text())
    for meta in (root["consolidated_metadata"]["metadata"][array], own):
        meta["shape"] = shape
        if chunks:
            meta["chunk_grid"]["configuration"]["chunk_shape"] = chunks
    (folder / "zarr.json").write_text(json.dumps(root))
    (folder / array / "zarr.json").write_text(json.dumps(own))
    reseal_files(folder, "zarr.json", f"{array}/zarr.json")
    out = subprocess.run([sys.executable, "-c", READ, str(folder)], capture_output=True, text=True, timeout=120)
    assert out.stdout.startswith("IntegrityError") and "refusing an array the manifest cannot account for" in \
        out.stdout and "clip s1, feature landmarks" in out.stdout, out.stdout + out.stderr
    result = verify(folder)
    assert not result.ok and any(array in u and "enlarged" in u for u in result.unsafe), result.summary()


def test_a_manifest_written_over_a_vast_grid_is_refused(folder):
    """write_manifest never enumerates 10^9 chunk positions: one sentence instead."""
    from mepipe.featurestore.manifest import ManifestError

    array = chunk_name(folder).split("/c/")[0]
    meta = json.loads((folder / array / "zarr.json").read_text())
    meta["shape"] = [10**9, 68, 2]
    (folder / array / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(ManifestError, match="makes 250000000 chunks"):
        write_manifest(folder)


DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("document", ["zarr.json", "manifest.json"])
def test_deep_json_is_one_line(document, folder):
    """Before: RecursionError tracebacks from info and verify."""
    from mepipe.cli.main import cli

    text = (folder / document).read_text()
    (folder / document).write_text(text[:text.rindex("}")] + f', "deep": {DEEP}}}')
    if document == "zarr.json":
        reseal_files(folder, "zarr.json")
    for args in (["info", str(folder)], ["store", "info", str(folder)], ["store", "verify", str(folder)]):
        out = CliRunner().invoke(cli, args)
        assert out.exit_code == 1 and "Traceback" not in out.output and "RecursionError" not in out.output, \
            out.output
        assert "nests deeper than JSON can be read" in out.output


@pytest.mark.parametrize("features", [5, "abc", {"a": 1}, [1, 2]], ids=["int", "str", "dict", "ints"])
def test_features_that_are_not_names_are_one_line(features, folder, pristine):
    """Before: "abc" read as features a, b, c; [1, 2] made ``store diff`` a TypeError traceback."""
    from mepipe.cli.main import cli

    root = json.loads((folder / "zarr.json").read_text())
    root["attributes"]["features"] = features
    (folder / "zarr.json").write_text(json.dumps(root))
    reseal_files(folder, "zarr.json")
    for args in (["info", str(folder)], ["store", "diff", str(pristine), str(folder)]):
        out = CliRunner().invoke(cli, args)
        lines = out.output.strip().splitlines()
        assert out.exit_code == 1 and len(lines) == 1 and "Traceback" not in out.output, out.output
        assert "features is not a list of names" in lines[0] and str(folder) in lines[0]
