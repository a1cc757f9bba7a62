"""Fault suite for stores (issue 12): nothing wrong gets in, nothing wrong comes out.

Each case damages or forges a real Zarr store on disk, a real zip or a real
HTTP server on 127.0.0.1 and checks that reading, verifying, describing or
sharing it refuses the fault by name, instead of the silent wrong data the
fault-injection pass found. The stores are tiny (written with StoreWriter,
random values so that a flipped byte changes numbers), so the suite is fast.
"""
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from storekit import FAST, chunk_name, manifest_of, serve, write_store

from mepipe.featurestore import IncompatibleStoreError, IntegrityError, open_store
from mepipe.featurestore.diff import diff_stores
from mepipe.featurestore.location import locate
from mepipe.featurestore.manifest import ManifestError, write_manifest
from mepipe.featurestore.pack import PackError, pack, push
from mepipe.featurestore.safety import UnsafeStoreError
from mepipe.featurestore.verify import verify


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    return write_store(tmp_path_factory.mktemp("pristine") / "s.zarr")


@pytest.fixture
def folder(pristine, tmp_path) -> Path:
    dst = tmp_path / "s.zarr"
    shutil.copytree(pristine, dst)
    return dst


def _reseal(store: Path) -> None:
    """Rewrite the manifest to match whatever is on disk now, as a forger editing both would."""
    write_manifest(store)


@pytest.fixture(scope="module")
def www(tmp_path_factory):
    root = tmp_path_factory.mktemp("www")
    with serve(root) as (base, faults, log):
        yield root, base, faults, log


@pytest.fixture
def served(www, folder, tmp_path):
    """The test's store folder also served over HTTP: (folder as served, its URL, fault table, request log)."""
    root, base, faults, log = www
    name = f"{tmp_path.name}.zarr"
    shutil.copytree(folder, root / name)
    faults.clear()
    log.clear()
    return root / name, f"{base}/{name}", faults, log


def _open(kind: str, folder: Path, served, tmp_path: Path, **kwargs):
    """Open the store as a folder, a zip packed from it, or its HTTP copy (with a fast retry policy)."""
    if kind == "folder":
        return open_store(folder, **kwargs)
    if kind.startswith("zip"):
        deflated = kind == "zip-deflated"
        return open_store(_zip_of(folder, tmp_path, zipfile.ZIP_DEFLATED if deflated else zipfile.ZIP_STORED), **kwargs)
    return open_store(locate(served[1], cache_dir=tmp_path / "cache", retry=FAST), **kwargs)


def _zip_of(folder: Path, tmp_path: Path, compression: int = zipfile.ZIP_STORED) -> Path:
    """A plain zip of the folder as it is now (damage included; pack would refuse to ship damage)."""
    out = tmp_path / "s.zarr.zip"
    with zipfile.ZipFile(out, "w", compression) as zf:
        for f in sorted(p for p in folder.rglob("*") if p.is_file() and ".mepipe" not in p.parts):
            zf.write(f, f.relative_to(folder).as_posix())
    return out


def _damage(store: Path, name: str, how: str) -> None:
    path = store / name
    data = bytearray(path.read_bytes())
    if how == "flip":
        data[len(data) // 2] ^= 0x04
        path.write_bytes(bytes(data))
    elif how == "truncate":
        path.write_bytes(bytes(data[: len(data) // 2]))
    elif how == "grow":
        path.write_bytes(bytes(data) + b"\0" * 64)
    elif how == "delete":
        path.unlink()


# -- 1. every read is checked ----------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["folder", "zip", "zip-deflated", "url"])
@pytest.mark.parametrize("how", ["flip", "truncate", "grow", "delete"])
def test_a_damaged_chunk_is_refused_by_name(kind, how, folder, served, tmp_path):
    """Before: a flipped bit read as wrong numbers and a missing chunk as zeros (Zarr's fill value)."""
    name = chunk_name(folder)
    _damage(folder, name, how)
    _damage(served[0], name, how)
    store = _open(kind, folder, served, tmp_path)
    np.testing.assert_array_equal(store.read("frame", "s1"), np.arange(10, 14))  # the rest still reads
    with pytest.raises(IntegrityError) as err:
        store.read("landmarks", "s1")
    message = str(err.value)
    assert "clip s1, feature landmarks" in message and name in message
    assert ("missing" if how == "delete" else "manifest") in message


@pytest.mark.parametrize("kind", ["folder", "zip", "url"])
def test_damaged_root_metadata_is_refused_on_open(kind, folder, served, tmp_path):
    for store in (folder, served[0]):
        doc = json.loads((store / "zarr.json").read_text())
        doc["attributes"]["dataset"] = "forged"
        (store / "zarr.json").write_text(json.dumps(doc))
    with pytest.raises(IntegrityError, match="root metadata: zarr.json does not match the manifest"):
        _open(kind, folder, served, tmp_path)


@pytest.mark.parametrize("kind", ["folder", "zip", "url"])
def test_a_pickled_store_still_checks_its_reads(kind, folder, served, tmp_path):
    """Data-loader workers get the store by pickle; their reads must be checked too."""
    import pickle

    store = pickle.loads(pickle.dumps(_open(kind, folder, served, tmp_path)))
    np.testing.assert_array_equal(store.read("frame", "s1"), np.arange(10, 14))
    for where in (folder, served[0]):
        _damage(where, chunk_name(where), "flip")
    if kind == "zip":
        store = pickle.loads(pickle.dumps(_open(kind, folder, served, tmp_path)))
    with pytest.raises(IntegrityError, match="clip s1, feature landmarks"):
        store.read("landmarks", "s1")


@pytest.mark.parametrize("status", [404, 503])
def test_transient_http_errors_are_retried(status, folder, served, tmp_path):
    """Before: one 404 on a chunk read as zeros, and the cache kept the zeros for good."""
    _, url, faults, _ = served
    faults[f"/{url.split('/', 3)[3]}/{chunk_name(folder)}"] = [status, status]
    store = open_store(locate(url, cache_dir=tmp_path / "cache", retry=FAST))
    np.testing.assert_array_equal(store.read("landmarks", "s1"), open_store(folder).read("landmarks", "s1"))


def test_a_persistent_404_raises_and_is_not_cached(folder, served, tmp_path):
    _, url, faults, log = served
    path = f"/{url.split('/', 3)[3]}/{chunk_name(folder)}"
    faults[path] = [404] * FAST.attempts
    loc = locate(url, cache_dir=tmp_path / "cache", retry=FAST)
    with pytest.raises(IntegrityError, match=r"clip s1, feature landmarks: .* is missing"):
        open_store(loc).read("landmarks", "s1")
    assert log.count(path) == FAST.attempts
    np.testing.assert_array_equal(open_store(loc).read("landmarks", "s1"), open_store(folder).read("landmarks", "s1"))
    assert log.count(path) == FAST.attempts + 1


def test_the_cache_keeps_only_verified_bytes(folder, served, tmp_path):
    """A corrupt response is refused and not cached; a damaged cache file is fetched again."""
    _, url, faults, log = served
    path = f"/{url.split('/', 3)[3]}/{chunk_name(folder)}"
    good = (folder / chunk_name(folder)).read_bytes()
    corrupt = bytes([good[0] ^ 1]) + good[1:]
    faults[path] = [corrupt]
    loc = locate(url, cache_dir=tmp_path / "cache", retry=FAST)
    with pytest.raises(IntegrityError, match="does not match the manifest"):
        open_store(loc).read("landmarks", "s1")
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file() and p.read_bytes() == corrupt]
    reference = open_store(folder).read("landmarks", "s1")
    np.testing.assert_array_equal(open_store(loc).read("landmarks", "s1"), reference)
    cached = [p for p in (tmp_path / "cache").rglob("*") if p.is_file() and p.read_bytes() == good]
    assert len(cached) == 1
    cached[0].write_bytes(b"\0" * len(good))
    log.clear()
    np.testing.assert_array_equal(open_store(loc).read("landmarks", "s1"), reference)
    assert path in log and cached[0].read_bytes() == good


_BOUNDED_READ = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
from mepipe.featurestore import open_store
from mepipe.featurestore.verify import verify
try:
    {call}
except Exception as err:
    print(type(err).__name__, err)
"""


@pytest.mark.slow
@pytest.mark.parametrize("call", ["open_store(sys.argv[1]).read('landmarks', 's1')",
                                  "print(verify(sys.argv[1]).summary())"], ids=["read", "verify"])
def test_a_chunk_symlinked_to_dev_zero_is_refused(call, folder):
    """Before: reading (or verifying) it read /dev/zero until memory ran out. Run in a child with capped memory."""
    name = chunk_name(folder)
    (folder / name).unlink()
    (folder / name).symlink_to("/dev/zero")
    out = subprocess.run([sys.executable, "-c", _BOUNDED_READ.format(call=call), str(folder)],
                         capture_output=True, text=True, timeout=120)
    assert "symlink leading out of the store" in out.stdout and name in out.stdout, out.stdout + out.stderr


def test_a_fifo_in_place_of_a_chunk_is_refused_without_hanging(folder):
    name = chunk_name(folder)
    (folder / name).unlink()
    os.mkfifo(folder / name)
    with pytest.raises(UnsafeStoreError, match="not a regular file"):
        open_store(folder).read("landmarks", "s1")


# -- 2. stores have an identity --------------------------------------------------------------------------

@pytest.mark.slow
def test_one_store_id_for_folder_zip_and_url(folder, served, tmp_path):
    ids = {open_store(folder).store_id, open_store(pack(folder, tmp_path / "p.zip").path).store_id,
           open_store(locate(served[1], cache_dir=tmp_path / "cache")).store_id, verify(served[1]).store_id}
    assert len(ids) == 1 and len(next(iter(ids))) == 64
    other = write_store(tmp_path / "other.zarr", seed=1)
    assert open_store(other).store_id not in ids


@pytest.mark.parametrize("kind", ["folder", "zip", "url"])
def test_a_chunk_and_the_manifest_edited_together_fail_a_pinned_open(kind, folder, served, tmp_path):
    """Before: editing both passed verify, diff and the training fingerprint unnoticed."""
    pinned = open_store(folder).store_id
    for store in (folder, served[0]):
        _damage(store, chunk_name(store), "flip")
        _reseal(store)
    assert verify(folder).ok  # unpinned, a consistent forgery verifies: that is what the id is for
    with pytest.raises(IntegrityError, match=f"not the expected {pinned}"):
        _open(kind, folder, served, tmp_path, expect_id=pinned)
    with pytest.raises(IntegrityError, match="not the expected"):
        verify(folder, expect_id=pinned)


def test_a_pinned_store_in_the_cache_is_read_without_theserve(folder, served, tmp_path):
    """With the id pinned, the cached manifest names the content: nothing is fetched, not even the manifest."""
    _, url, _, log = served
    loc = locate(url, cache_dir=tmp_path / "cache", retry=FAST)
    first = open_store(loc)
    reference = first.read("landmarks", "s1")
    log.clear()
    again = open_store(loc, expect_id=first.store_id)
    np.testing.assert_array_equal(again.read("landmarks", "s1"), reference)
    assert log == []
    open_store(loc)
    assert [p.rsplit("/", 1)[-1] for p in log] == ["manifest.json"]


def test_store_id_on_the_command_line(folder):
    from mepipe.cli.main import cli

    runner = CliRunner()
    store_id = open_store(folder).store_id
    for args in (["info", str(folder)], ["store", "info", str(folder)], ["store", "verify", str(folder)]):
        out = runner.invoke(cli, args)
        assert out.exit_code == 0 and f"store id {store_id}" in out.output, out.output
        wrong = runner.invoke(cli, [*args, "--store-id", "0" * 64])
        assert wrong.exit_code == 1 and "not the expected" in wrong.output and "Traceback" not in wrong.output
    diff = runner.invoke(cli, ["store", "diff", str(folder), str(folder), "--store-id", store_id,
                               "--store-id", "f" * 64])
    assert diff.exit_code == 1 and "f" * 64 in diff.output


@pytest.mark.slow
def test_verify_over_an_unlistable_url_checks_every_entry_and_needs_amanifest_of(folder, tmp_path):
    """Before: an emptied manifest on a URL that cannot be listed passed with "0 files checked"."""
    root = tmp_path / "www"
    shutil.copytree(folder, root / "s.zarr")
    with serve(root, listing=False) as (base, _, log):
        url = f"{base}/s.zarr"
        result = verify(url)
        assert result.ok and not result.listed and result.unexpected == ()
        clip_files = [n for n in manifest_of(folder)["files"] if n.startswith("clips/")]
        assert len({p for p in log if "/clips/" in p}) == len(clip_files)
        doc = manifest_of(folder)
        (root / "s.zarr" / "manifest.json").write_text(json.dumps({**doc, "files": {}}))
        with pytest.raises(ManifestError, match="lists no files"):
            verify(url)
        with pytest.raises(ManifestError, match="lists no files"):
            open_store(locate(url, cache_dir=tmp_path / "cache", retry=FAST))
        cut = {n: e for n, e in doc["files"].items() if not n.startswith("clips/s2/landmarks/")}
        (root / "s.zarr" / "manifest.json").write_text(json.dumps({**doc, "files": cut}))
        assert "clips/s2/landmarks/zarr.json" in verify(url).unlisted
        (root / "s.zarr" / "manifest.json").unlink()
        with pytest.raises(ManifestError, match="no manifest.json"):
            verify(locate(url, retry=FAST))


# -- 3. untrusted stores are data, never paths or code ---------------------------------------------------

@pytest.mark.parametrize("name", ["../../etc/hostname", "/etc/hostname", "clips/../../../etc/hostname",
                                  "C:/Windows/win.ini", "clips\\s1\\x", "clips//x", "../\x1b[2Jx"])
def test_manifest_names_outside_the_store_are_refused_by_name(name, folder):
    """Before: verify followed ../../etc/hostname and absolute names."""
    doc = manifest_of(folder)
    doc["files"][name] = {"size": 5, "sha256": "0" * 64}
    (folder / "manifest.json").write_text(json.dumps(doc))
    for call in (verify, open_store):
        with pytest.raises(UnsafeStoreError, match="names files outside the store") as err:
            call(folder)
        assert repr(name) in str(err.value) and "\x1b" not in str(err.value)


@pytest.mark.parametrize("link", ["chunk", "folder"])
def test_a_symlink_out_of_the_store_is_refused(link, folder, tmp_path):
    """A chunk, or a folder on its way, that is a symlink to a copy outside the store (content matching)."""
    name = chunk_name(folder)
    linked = Path(name) if link == "chunk" else Path(name).parents[2]
    outside = tmp_path / "outside" / linked.name
    outside.parent.mkdir()
    shutil.move(folder / linked, outside)
    (folder / linked).symlink_to(outside)
    with pytest.raises(UnsafeStoreError, match=f"refusing to read {name}: it is a symlink leading out"):
        open_store(folder).read("landmarks", "s1")
    result = verify(folder)
    assert not result.ok and any(name in u and "symlink" in u for u in result.unsafe)


def test_a_symlink_inside_the_store_is_followed(folder):
    name = chunk_name(folder)
    (folder / "clips" / "moved.bin").write_bytes((folder / name).read_bytes())
    (folder / name).unlink()
    (folder / name).symlink_to(folder / "clips" / "moved.bin")
    assert open_store(folder).read("landmarks", "s1").shape == (4, 68, 2)


def _forged_zip(folder: Path, out: Path, entry: zipfile.ZipInfo, data: bytes) -> Path:
    pack(folder, out)
    with zipfile.ZipFile(out, "a") as zf:
        zf.writestr(entry, data)
    return out


def _symlink_entry() -> zipfile.ZipInfo:
    info = zipfile.ZipInfo("clips/s1/link")
    info.external_attr = 0o120777 << 16
    return info


@pytest.mark.parametrize("entry", [zipfile.ZipInfo("../evil.txt"), zipfile.ZipInfo("/etc/evil"), _symlink_entry()],
                         ids=["dotdot", "absolute", "symlink"])
def test_zip_entries_outside_the_store_are_refused_by_name(entry, folder, tmp_path):
    forged = _forged_zip(folder, tmp_path / "f.zip", entry, b"/etc/hostname")
    for call in (verify, open_store):
        with pytest.raises(UnsafeStoreError, match="entries lead out of the store") as err:
            call(forged)
        assert entry.filename.strip("/").split("/")[-1] in str(err.value)


def test_sizes_beyond_shape_and_dtype_are_refused(folder):
    """A manifest may not declare (nor a file hold) more bytes than the array's chunk can."""
    name = chunk_name(folder)
    huge = np.random.default_rng(0).bytes(4 * 68 * 2 * 4 * 2 + 8192)  # twice the raw chunk plus slack
    (folder / name).write_bytes(huge)
    _reseal(folder)
    with pytest.raises(IntegrityError, match="more than its shape and data type allow"):
        open_store(folder).read("landmarks", "s1")
    assert any(name in u and "shape and data type" in u for u in verify(folder).unsafe)


@pytest.mark.parametrize("entry", [{"size": -1, "sha256": "0" * 64}, {"size": "12", "sha256": "0" * 64},
                                   {"size": 12}, [12, "0" * 64]], ids=["negative", "string", "no-hash", "list"])
def test_malformed_manifest_entries_are_refused(entry, folder):
    name = chunk_name(folder)
    doc = manifest_of(folder)
    doc["files"][name] = entry
    (folder / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(IntegrityError, match="no integer size and sha256"):
        open_store(folder).read("landmarks", "s1")
    with pytest.raises(ManifestError, match=f"entries without an integer size and a sha256: '{name}'"):
        verify(folder)


def test_metadata_beyond_the_limit_is_refused(folder, monkeypatch):
    from mepipe.featurestore import integrity, safety
    from mepipe.featurestore import verify as verify_module

    for module in (safety, integrity, verify_module):
        monkeypatch.setattr(module, "METADATA_LIMIT", 16384)
    doc = json.loads((folder / "zarr.json").read_text())
    doc["attributes"]["padding"] = "x" * 20000
    (folder / "zarr.json").write_text(json.dumps(doc))
    _reseal(folder)
    with pytest.raises(IntegrityError, match="zarr.json is listed in the manifest with .* than the metadata limit"):
        open_store(folder)
    assert any("metadata limit" in u for u in verify(folder).unsafe)


@pytest.mark.parametrize("version", [1.9, -5, "abc", [1], True])
def test_schema_version_must_be_a_non_negative_integer(version, folder):
    """Before: 1.9 and -5 were accepted, "abc" and [1] gave tracebacks."""
    from mepipe.cli.main import cli

    doc = json.loads((folder / "zarr.json").read_text())
    doc["attributes"]["schema_version"] = version
    (folder / "zarr.json").write_text(json.dumps(doc))
    _reseal(folder)
    with pytest.raises(IncompatibleStoreError, match="is not a non-negative integer"):
        open_store(folder)
    out = CliRunner().invoke(cli, ["store", "info", str(folder)])
    assert out.exit_code == 1 and "non-negative integer" in out.output and "Traceback" not in out.output


ESCAPES = {"dataset": "demo\x1b]0;owned\x07", "quirks": ["\x1b[2J\x1b[Hscreen wiped"],
           "mepipe_version": "0.1\u202e", "build": {"host": "h\x1b[31mred"}}


@pytest.mark.slow
def test_terminal_escapes_in_store_attributes_are_printed_escaped(tmp_path):
    """Before: escape codes in store attributes reached the terminal in info and diff."""
    from mepipe.cli.main import cli

    evil = write_store(tmp_path / "evil.zarr", attrs=ESCAPES)
    plain = write_store(tmp_path / "plain.zarr")
    for args in (["info", str(evil)], ["store", "diff", str(plain), str(evil)],
                 ["store", "diff", str(evil), str(evil)]):
        out = CliRunner().invoke(cli, args)
        assert out.exit_code == 0, out.output
        assert "\x1b" not in out.output and "\x07" not in out.output and "\u202e" not in out.output
    info = CliRunner().invoke(cli, ["info", str(evil)]).output
    assert "\\x1b]0;owned\\x07" in info and "\\x1b[2J" in info
    assert "only in b: \\x1b[2J\\x1b[Hscreen wiped" in diff_stores(plain, evil).format()
    future = write_store(tmp_path / "future.zarr", attrs={"schema_version": 99, "reader_min_version": "\x1b[2J9"})
    for args in (["info", str(future)], ["store", "info", str(future)]):
        refused = CliRunner().invoke(cli, args)
        assert refused.exit_code == 1 and "\\x1b[2J9" in refused.output and "\x1b" not in refused.output


@pytest.mark.slow
def test_percent_encoded_listings_are_decoded(www, tmp_path):
    """Before: verify over HTTP failed a good store whose sample ids hold spaces or non-ASCII."""
    root, base, _, _ = www
    name = f"{tmp_path.name}-names.zarr"
    write_store(root / name, samples=("clip one", "café", "50%"))
    result = verify(f"{base}/{name}")
    assert result.ok and result.unexpected == (), result.summary()
    store = open_store(locate(f"{base}/{name}", cache_dir=tmp_path / "cache"))
    assert store.read("frame", "café").tolist() == [10, 11, 12, 13]


# -- 6. atomic sharing -----------------------------------------------------------------------------------

class _Killed(Exception):
    """Stands in for a kill in the middle of writing."""


def _fail_after(n: int, fn):
    calls = []

    def wrapper(*args, **kwargs):
        calls.append(1)
        if len(calls) > n:
            raise _Killed
        return fn(*args, **kwargs)
    return wrapper


def test_pack_overwrite_keeps_the_old_zip_until_the_new_one_verifies(folder, tmp_path, monkeypatch):
    from mepipe.featurestore import pack as pack_module

    out = tmp_path / "s.zip"
    old_id = pack(folder, out).store_id
    old_bytes = out.read_bytes()
    newer = write_store(tmp_path / "newer.zarr", seed=2)
    monkeypatch.setattr(pack_module, "_read_checked", _fail_after(3, pack_module._read_checked))
    with pytest.raises(_Killed):
        pack(newer, out, overwrite=True)
    assert out.read_bytes() == old_bytes and verify(out).ok and verify(out).store_id == old_id
    monkeypatch.undo()
    (newer / chunk_name(newer)).write_bytes(b"")  # damaged after its check: the written zip fails verification
    monkeypatch.setattr(pack_module, "_read_checked", lambda source, name, manifest: (newer / name).read_bytes())
    with pytest.raises(PackError, match="did not verify, so it was not published"):
        pack(newer, out, overwrite=True)
    assert out.read_bytes() == old_bytes
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".mepipe-part")) == []


@pytest.mark.parametrize("kill", ["copying", "verifying"])
@pytest.mark.parametrize("target", ["folder", "zip"])
@pytest.mark.parametrize("backend", ["file", "memory"])
def test_push_overwrite_keeps_the_old_copy_until_the_new_one_verifies(kill, target, backend, folder, tmp_path,
                                                                       monkeypatch):
    """Before: --overwrite deleted the good copy first, and a .zip URL was written straight to its final name."""
    from mepipe.featurestore import pack as pack_module

    leaf = "s.zarr" + (".zip" if target == "zip" else "")
    url = (tmp_path / "remote" / leaf).as_uri() if backend == "file" else f"memory://{tmp_path.name}/{leaf}"
    old = push(folder, url)
    assert old.verified.ok and old.verified.store_id == open_store(folder).store_id
    newer = write_store(tmp_path / "newer.zarr", seed=3)
    if kill == "copying":
        monkeypatch.setattr(pack_module, "_read_checked", _fail_after(len(manifest_of(newer)["files"]) // 2,
                                                                      pack_module._read_checked))
    else:
        monkeypatch.setattr(pack_module, "verify", _fail_after(0, pack_module.verify))
    with pytest.raises(_Killed):
        push(newer, url, overwrite=True)
    monkeypatch.undo()
    assert verify(url).ok and verify(url).store_id == old.verified.store_id
    new = push(newer, url, overwrite=True)
    assert new.verified.ok and verify(url).store_id == open_store(newer).store_id != old.verified.store_id
    if backend == "file":
        assert sorted(p.name for p in (tmp_path / "remote").iterdir()) == [leaf]
