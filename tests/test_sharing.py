"""Sharing stores: zip packing, checksum verification, diff, opening over HTTP with a read cache, safety."""
import contextlib
import dataclasses
import functools
import hashlib
import http.server
import json
import shutil
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

from conftest import build_options, command_group
from mepipe.featurestore import IncompatibleStoreError, open_store
from mepipe.featurestore.diff import diff_stores
from mepipe.featurestore.location import locate
from mepipe.featurestore.manifest import ManifestError, write_manifest
from mepipe.featurestore.verify import verify
from mepipe.featurestore.pack import PackError, pack, push
from mepipe.featurestore.safety import UnsafeStoreError

CLIP = "001_1_1"


@pytest.fixture
def shared(store_copy) -> Path:
    """A copy of the small store with its manifest (as a finished build leaves it)."""
    write_manifest(store_copy)
    return store_copy


def _assert_same_clip(store, reference, sample=CLIP):
    features = [f for f in reference.features if reference.has(f, sample)]
    assert features and store.features == reference.features
    for feature in features:
        np.testing.assert_array_equal(store.read(feature, sample), reference.read(feature, sample), err_msg=feature)
    xr.testing.assert_identical(store.clip(sample).load(), reference.clip(sample).load())


def _chunk(store_dir: Path, feature: str, sample: str = CLIP) -> str:
    path = next(p for p in (store_dir / "clips" / sample / feature / feature / "c").rglob("*") if p.is_file())
    return path.relative_to(store_dir).as_posix()


def test_build_leaves_a_verified_manifest(small_store):
    result = verify(small_store)
    assert result.ok, result.summary()
    assert result.n_files > 50 and ".mepipe/lock" not in json.loads((small_store / "manifest.json").read_text())


@pytest.mark.slow
def test_pack_opens_as_zip_with_equal_features(shared, tmp_path):
    result = pack(shared, tmp_path / "demo.zarr.zip")
    with zipfile.ZipFile(result.path) as zf:
        names = zf.namelist()
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())
    assert "manifest.json" in names and "zarr.json" in names and not any(n.startswith(".mepipe") for n in names)
    _assert_same_clip(open_store(result.path), open_store(shared))
    assert verify(result.path).ok
    with pytest.raises(PackError, match="exists"):
        pack(shared, result.path)


def test_verify_names_flipped_deleted_and_unexpected_files(shared):
    flipped, deleted = _chunk(shared, "crops"), _chunk(shared, "landmarks", "002_1_1")
    data = bytearray((shared / flipped).read_bytes())
    data[len(data) // 2] ^= 0x01
    (shared / flipped).write_bytes(bytes(data))
    (shared / deleted).unlink()
    (shared / "clips" / CLIP / "notes.txt").write_text("not part of the build")
    result = verify(shared)
    assert not result.ok
    assert result.modified == (flipped,)
    assert result.missing == (deleted,)
    assert result.unexpected == (f"clips/{CLIP}/notes.txt",)
    with pytest.raises(PackError, match="does not match its manifest"):
        pack(shared, shared.parent / "x.zip")


def test_verify_catches_a_flipped_byte_inside_a_zip(shared, tmp_path):
    good = Path(pack(shared, tmp_path / "good.zip").path)
    target = _chunk(shared, "intensity")
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(tmp_path / "bad.zip", "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            dst.writestr(item, bytes([data[0] ^ 0xFF]) + data[1:] if item.filename == target else data)
    result = verify(tmp_path / "bad.zip")
    assert result.modified == (target,) and not result.missing and result.unexpected == ()


def test_verify_cli_exit_status(shared):
    runner = CliRunner()
    from mepipe.cli.store_cmd import store

    ok = runner.invoke(store, ["verify", str(shared), "--json"])
    assert ok.exit_code == 0 and json.loads(ok.output)["ok"]
    gone = _chunk(shared, "frame")
    (shared / gone).unlink()
    bad = runner.invoke(store, ["verify", str(shared)])
    assert bad.exit_code == 1 and f"missing: {gone}" in bad.output and "FAILED" in bad.output
    (shared / "manifest.json").unlink()
    none = runner.invoke(store, ["verify", str(shared)])
    assert none.exit_code == 1 and "no manifest.json" in none.output


def test_diff_against_itself_is_empty(small_store):
    result = diff_stores(small_store, small_store)
    assert result.identical and result.differences == ()
    assert "no differences" in result.format()


@pytest.mark.slow
def test_diff_names_a_changed_align_size(small_store, store_copy, small_demo):
    from mepipe.pipeline.build import run_build
    from mepipe.pipeline.stages import default_params

    params = default_params()
    params["align"] = dataclasses.replace(params["align"], size=128)
    run_build(build_options(small_demo, store_copy, params=params))
    result = diff_stores(small_store, store_copy)
    stage = {d.key: (d.a, d.b) for d in result.in_section("stage")}
    assert stage == {"align.params.size": (256, 128)}
    stages_changed = {d.key.split("/")[1] for d in result.in_section("cache_key")}
    assert stages_changed == {"align", "magnify", "apex"}  # the apex reads the magnified clip
    assert len(result.in_section("cache_key")) == 3 * 6
    changed_arrays = {d.key.split("/")[1] for d in result.in_section("array")}
    assert "crops" in changed_arrays and "landmarks" not in changed_arrays
    assert not result.in_section("clip") and not result.in_section("store") and not result.in_section("source")
    assert "align.params.size: 256 -> 128" in result.format()
    out = CliRunner().invoke(command_group("store_cmd"), ["store", "diff", str(small_store), str(store_copy), "--json"])
    assert out.exit_code == 0 and not json.loads(out.output)["identical"]
    strict = CliRunner().invoke(command_group("store_cmd"), ["store", "diff", "--exit-code", str(small_store), str(store_copy)])
    assert strict.exit_code == 1


class _CountingHandler(http.server.SimpleHTTPRequestHandler):
    requests: list[str]

    def log_message(self, *args):
        self.requests.append(f"{self.command} {self.path}")


@contextlib.contextmanager
def _serving(store: Path, root: Path):
    """Serve a copy of ``store`` (with its manifest) from ``root`` on 127.0.0.1; yields its URL and request log."""
    shutil.copytree(store, root / store.name, ignore=shutil.ignore_patterns(".mepipe"))
    write_manifest(root / store.name)
    log: list[str] = []
    handler = type("Handler", (_CountingHandler,), {"requests": log})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/{store.name}", log
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def served(small_store, tmp_path_factory):
    """The small store served over HTTP: (URL, request log, the served folder)."""
    root = tmp_path_factory.mktemp("www")
    with _serving(small_store, root) as (url, log):
        yield url, log, root / small_store.name


@pytest.mark.slow
def test_open_over_http_reads_every_feature_and_caches(served, tmp_path):
    url, log, folder = served
    log.clear()
    remote = open_store(locate(url, cache_dir=tmp_path / "cache"))
    _assert_same_clip(remote, open_store(folder))
    assert len(remote.samples) == 6
    assert any("/clips/" in r for r in log)
    log.clear()
    again = open_store(locate(url, cache_dir=tmp_path / "cache"))
    _assert_same_clip(again, open_store(folder))
    assert log == ["GET /demo.zarr/manifest.json"], log


@pytest.mark.slow
def test_one_training_epoch_from_http_and_a_second_run_from_the_cache(full_store, tmp_path, monkeypatch):
    """``run_training`` with ``store=URL``: one short STRCN-G epoch (on Xia's magnified flows); a rerun downloads
    no chunk again."""
    from mepipe.train import run
    monkeypatch.setenv("MEPIPE_CACHE", str(tmp_path / "cache"))
    with _serving(full_store, tmp_path / "www") as (url, log):
        def train(out):
            return run.run_training(run.RunParams(
                model="strcn-g", store=url, labels="samm-3", out=str(tmp_path / out), epochs=1, batch_size=8,
                folds=1, device="cpu", progress=False, model_args=(("n_maps", 8),)))

        report = train("first")
        assert len(report["folds"]) == 1 and len(report["folds"][0]["history"]) == 1
        assert [s["location"] for s in report["store"]["stores"]] == [url]
        assert any("/flow_onset_apex_magnified/flow_onset_apex_magnified/c/" in r for r in log)
        log.clear()
        train("second")
        assert log == [f"GET /{full_store.name}/manifest.json"], log


@pytest.mark.slow
def test_verify_and_info_over_http(served, tmp_path, monkeypatch):
    url, _, folder = served
    monkeypatch.setenv("MEPIPE_CACHE", str(tmp_path / "cache"))
    assert verify(url).ok
    out = CliRunner().invoke(command_group("store_cmd"), ["store", "info", url, "--json"])
    assert out.exit_code == 0, out.output
    desc = json.loads(out.output)
    assert desc["location"] == "http" and "bytes_total" not in desc
    assert desc["stages"]["align"]["params"]["size"] == 256 and desc["annotations"]["sha256"]
    assert desc["build"]["host"] and desc["manifest"]["n_files"] > 50
    assert (tmp_path / "cache" / "stores").is_dir()


@pytest.mark.slow
def test_zip_over_http_is_downloaded_once(served, tmp_path):
    url, log, folder = served
    pack(folder, folder.with_name("demo.zarr.zip"), overwrite=True)
    zip_url = url.replace("demo.zarr", "demo.zarr.zip")
    log.clear()
    _assert_same_clip(open_store(locate(zip_url, cache_dir=tmp_path / "cache")), open_store(folder))
    assert sum(r.startswith("GET") for r in log) == 1
    log.clear()
    open_store(locate(zip_url, cache_dir=tmp_path / "cache"))
    assert not any(r.startswith("GET") for r in log), log
    assert verify(zip_url).ok


def test_newer_schema_is_refused_over_http(served, tmp_path):
    url, _, folder = served
    future = folder.with_name("future.zarr")
    shutil.copytree(folder, future)
    doc = json.loads((future / "zarr.json").read_text())
    doc["attributes"].update(schema_version=99, reader_min_version="7.0")
    (future / "zarr.json").write_text(json.dumps(doc))
    write_manifest(future)
    future_url = url.replace("demo.zarr", "future.zarr")
    with pytest.raises(IncompatibleStoreError, match=rf"{future_url} uses store schema 99.*mepipe >= 7.0"):
        open_store(locate(future_url, cache_dir=tmp_path / "cache"))


@pytest.mark.slow
def test_push_copies_then_verifies(shared, tmp_path):
    url = (tmp_path / "remote" / "demo.zarr").as_uri()
    result = push(shared, url)
    assert result.verified.ok, result.verified.summary()
    _assert_same_clip(open_store(url), open_store(shared))
    with pytest.raises(PackError, match="exists"):
        push(shared, url)
    zip_url = (tmp_path / "remote" / "demo.zarr.zip").as_uri()
    zipped = push(shared, zip_url)
    assert zipped.verified.ok and zipped.verified.n_files == result.verified.n_files
    _assert_same_clip(open_store(zip_url), open_store(shared))


def _edit_root(zip_in: Path, zip_out: Path, change) -> None:
    """Copy a packed store, changing its root zarr.json and the manifest with it (as a forger would)."""
    with zipfile.ZipFile(zip_in) as src, zipfile.ZipFile(zip_out, "w") as dst:
        root = json.loads(src.read("zarr.json"))
        change(root)
        root_bytes = json.dumps(root).encode()
        manifest = json.loads(src.read("manifest.json"))
        manifest["files"]["zarr.json"] = {"size": len(root_bytes), "sha256": hashlib.sha256(root_bytes).hexdigest()}
        for item in src.infolist():
            data = {"zarr.json": root_bytes, "manifest.json": json.dumps(manifest).encode()}.get(
                item.filename) or src.read(item)
            dst.writestr(item, data)


def test_newer_schema_is_refused_in_a_zip(shared, tmp_path):
    packed = Path(pack(shared, tmp_path / "ok.zip").path)
    _edit_root(packed, tmp_path / "future.zip",
               lambda d: d["attributes"].update(schema_version=99, reader_min_version="7.0"))
    with pytest.raises(IncompatibleStoreError, match=r"future.zip uses store schema 99.*mepipe >= 7.0"):
        open_store(tmp_path / "future.zip")


def test_metadata_that_could_run_code_is_refused(shared, tmp_path):
    """A store naming a pickle codec or an object dtype is refused on open, before Zarr reads it."""
    packed = Path(pack(shared, tmp_path / "ok.zip").path)
    node = f"clips/{CLIP}/landmarks/landmarks"

    def poison(doc):
        meta = doc["consolidated_metadata"]["metadata"][node]
        meta["codecs"] = [{"name": "numcodecs.pickle", "configuration": {}}]
        doc["consolidated_metadata"]["metadata"][f"clips/{CLIP}/frame/frame"]["data_type"] = "object"

    _edit_root(packed, tmp_path / "evil.zip", poison)
    with pytest.raises(UnsafeStoreError, match="evil.zip: refusing") as refused:
        open_store(tmp_path / "evil.zip")
    assert f"{node}: codec 'numcodecs.pickle'" in str(refused.value)
    assert f"clips/{CLIP}/frame/frame: data type 'object'" in str(refused.value)
    result = verify(tmp_path / "evil.zip")
    assert not result.ok and not result.modified and any("numcodecs.pickle" in u for u in result.unsafe)


def test_pack_refuses_a_store_without_manifest(store_copy, tmp_path):
    (store_copy / "manifest.json").unlink(missing_ok=True)
    with pytest.raises(ManifestError, match="(?i)rerun `mepipe build`"):
        pack(store_copy, tmp_path / "x.zip")
