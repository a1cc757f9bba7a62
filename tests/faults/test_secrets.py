"""Fault suite, issue 24 item 3: no secret leaves the command line.

Before: a store URL with credentials (``http://alice:s3cret@host/s.zarr``)
was printed by verify, info, diff and train and written into ``report.json``
and ``run.json``. The server here refuses requests without alice's
password, so each case shows the credentials were used, and that neither
the password nor the user name appears in any output, log, record or cache
note. Credentials also come from ``~/.netrc`` (``$NETRC``).
"""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from storekit import serve, write_store

from mepipe.featurestore import location as location_module
from mepipe.featurestore import open_store
from mepipe.featurestore.backends.http import AccessDenied
from mepipe.featurestore.location import locate
from mepipe.featurestore.verify import verify

SECRET = "s3cret-Pa55"
USER = "alice-lab"


@pytest.fixture(autouse=True)
def forget_credentials(monkeypatch):
    """Each case starts with no credentials remembered from an earlier URL."""
    monkeypatch.setattr(location_module, "_REMEMBERED", {})


@pytest.fixture
def guarded(tmp_path):
    """A store on a server that wants USER:SECRET; yields (URL with them, URL without, the folder, fault table)."""
    root = tmp_path / "www"
    folder = write_store(root / "s.zarr")
    with serve(root, auth=f"{USER}:{SECRET}") as (base, faults, _):
        bare = f"{base}/s.zarr"
        yield bare.replace("http://", f"http://{USER}:{SECRET}@"), bare, folder, faults


def _leaks(text: str) -> bool:
    return SECRET in text or USER in text


@pytest.mark.slow
def test_commands_use_the_credentials_and_never_print_them(guarded, tmp_path, monkeypatch, caplog):
    from mepipe.cli.main import cli

    secret_url, bare, folder, faults = guarded
    monkeypatch.setenv("MEPIPE_CACHE", str(tmp_path / "cache"))
    caplog.set_level(logging.DEBUG)
    faults["/s.zarr/manifest.json"] = [503]  # a retried read is logged, naming the store
    for args in (["store", "verify", secret_url], ["store", "verify", secret_url, "--json"],
                 ["store", "info", secret_url], ["store", "info", secret_url, "--json"], ["info", secret_url],
                 ["store", "diff", secret_url, str(folder)], ["store", "diff", str(folder), secret_url, "--json"]):
        out = CliRunner().invoke(cli, args)
        assert out.exit_code == 0, out.output
        assert not _leaks(out.output) and bare in out.output, (args, out.output)
    assert any("retrying" in r.getMessage() and bare in r.getMessage() for r in caplog.records)
    assert not any(_leaks(r.getMessage()) for r in caplog.records)
    notes = [p.read_text() for p in (tmp_path / "cache").rglob("url.txt")]
    assert notes == [bare + "\n"]


def test_a_wrong_password_is_one_sentence_without_the_password(guarded, tmp_path):
    from mepipe.cli.main import cli

    _, bare, _, _ = guarded
    wrong = bare.replace("http://", f"http://{USER}:wrong-{SECRET}@")
    for args in (["store", "verify", wrong], ["info", wrong]):
        out = CliRunner().invoke(cli, args)
        lines = out.output.strip().splitlines()
        assert out.exit_code == 1 and len(lines) == 1 and "Traceback" not in out.output, out.output
        assert "HTTP 401" in lines[0] and bare in lines[0] and not _leaks(lines[0])
    with pytest.raises(AccessDenied, match="~/.netrc"):
        open_store(locate(bare, cache_dir=tmp_path / "cache"))


@pytest.mark.slow
def test_a_netrc_entry_gives_the_credentials(guarded, tmp_path, monkeypatch):
    _, bare, folder, _ = guarded
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1 login {USER} password {SECRET}\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    assert verify(bare).ok
    store = open_store(locate(bare, cache_dir=tmp_path / "cache"))
    assert store.store_id == open_store(folder).store_id and store.path == bare


@pytest.mark.slow
def test_training_records_the_store_without_its_credentials(tmp_path):
    """report.json and run.json name the store by its bare URL; the folds reopen it with the credentials."""
    from corpora import write_corpus_store

    from mepipe.train.clips import ClipTable
    from mepipe.train.run import RunParams, run_training

    root = tmp_path / "www"
    corpus = write_corpus_store(tmp_path / "samm.zarr", "samm", subjects=range(1, 3), n_clips=1)
    shutil.copytree(corpus, root / "samm.zarr")
    with serve(root, auth=f"{USER}:{SECRET}") as (base, _, _):
        bare = f"{base}/samm.zarr"
        secret_url = bare.replace("http://", f"http://{USER}:{SECRET}@")
        out = tmp_path / "run"
        report = run_training(RunParams(model="shcnn", store=secret_url, labels="megc-3", epochs=1, batch_size=16,
                                        folds=1, device="cpu", progress=False, out=str(out),
                                        model_args=(("widths", (4, 8, 8)), ("hidden", 16))))
        assert report["store"]["stores"][0]["location"] == bare
        assert ClipTable.reopen(report["store"]["stores"]).ids
    for path in Path(out).rglob("*.json"):
        assert not _leaks(path.read_text()), path
    assert json.loads((out / "run.json").read_text())["identity"]["parameters"]["store"] == [bare]


@pytest.mark.parametrize("given, shown", [
    ("http://alice:pw@host:8080/s.zarr?token=t#x", "http://host:8080/s.zarr"),
    ("https://alice@host/a@b/s.zarr", "https://host/a@b/s.zarr"),
    ("simplecache::s3://key:secret@bucket/s.zarr?v=1", "simplecache::s3://bucket/s.zarr"),
    ("http://alice:pw@[::1]:8080/s.zarr", "http://[::1]:8080/s.zarr"),
    ("data/stores/alice:pw@demo.zarr", "data/stores/alice:pw@demo.zarr"),
])
def test_an_address_is_shown_without_user_password_or_query(given, shown):
    from mepipe.featurestore.location import public_address, redact

    assert redact(given) == shown
    assert public_address(given) == shown
