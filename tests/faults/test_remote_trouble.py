"""Fault suite, issue 24 item 6: clear ends for remote trouble.

Before: a server that accepted connections and never answered held
``store verify`` and reads for 25 minutes (aiohttp's five-minute default,
five attempts), then said ``TimeoutError:`` with no text; sample ids
holding ``#`` or ``?`` verified locally but failed over HTTP (the id was
read as a fragment or a query). Each request now gives up after the
location's time-out, one file's attempts after a cap, and the error is one
sentence naming the URL and the seconds waited.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading

import numpy as np
import pytest
from storekit import chunk_name, serve, write_store

from mepipe.featurestore import IntegrityError, open_store
from mepipe.featurestore.backends import RetryPolicy
from mepipe.featurestore.location import locate
from mepipe.featurestore.verify import verify

PATIENCE = RetryPolicy(attempts=3, first_delay=0.05, timeout=0.5)


@pytest.fixture
def silent_server():
    """A port that accepts connections (the kernel's backlog) and never answers; yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


@pytest.fixture
def store_server(tmp_path):
    """A store served over HTTP whose chunk requests can be made to stall; yields (URL, faults, release)."""
    root = tmp_path / "www"
    write_store(root / "s.zarr")
    release = threading.Event()
    with serve(root) as (base, faults, _):
        yield f"{base}/s.zarr", faults, release
        release.set()


def _stall(release: threading.Event):
    def answer(handler):
        release.wait(60)
    return answer


def _trickle(release: threading.Event, size: int):
    """Send a body of ``size`` bytes one at a time, each well within the time-out: only the cap per file ends it."""
    def answer(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", str(size))
        handler.end_headers()
        for _ in range(size):
            if release.wait(0.1):
                return
            try:
                handler.wfile.write(b"x")
                handler.wfile.flush()
            except OSError:
                return
    return answer


@pytest.mark.slow
def test_a_silent_server_ends_verify_with_the_url_and_the_wait(silent_server):
    url = f"{silent_server}/s.zarr"
    with pytest.raises(IntegrityError) as caught:
        verify(locate(url, retry=PATIENCE))
    message = str(caught.value)
    assert f"{url}: manifest.json could not be fetched: 3 attempts over" in message
    assert f"{url}/manifest.json: no answer for 0.5 s" in message and "\n" not in message


@pytest.mark.slow
def test_a_silent_server_is_one_line_at_the_command_line(silent_server):
    """``$MEPIPE_TIMEOUT`` sets the seconds a request may wait; the command exits 1 with one sentence."""
    url = f"{silent_server}/s.zarr"
    env = {**os.environ, "MEPIPE_TIMEOUT": "0.5"}
    for args in (["store", "verify", url], ["info", url]):
        out = subprocess.run([sys.executable, "-m", "mepipe.cli", *args], capture_output=True, text=True, env=env,
                             timeout=300)
        lines = (out.stdout + out.stderr).strip().splitlines()
        assert out.returncode == 1 and len(lines) == 1, out.stdout + out.stderr
        assert f"{url}/manifest.json: no" in lines[0] and "each request may wait 0.5 s" in lines[0]


@pytest.mark.slow
def test_a_chunk_that_stalls_fails_its_read_naming_clip_url_and_wait(store_server, tmp_path):
    url, faults, release = store_server
    chunk = chunk_name(tmp_path / "www" / "s.zarr")
    faults[f"/s.zarr/{chunk}"] = [_stall(release)] * PATIENCE.attempts
    store = open_store(locate(url, cache_dir=tmp_path / "cache", retry=PATIENCE))
    np.testing.assert_array_equal(store.read("frame", "s1"), np.arange(10, 14))
    with pytest.raises(IntegrityError) as caught:
        store.read("landmarks", "s1")
    message = str(caught.value)
    assert "clip s1, feature landmarks" in message and "3 attempts over" in message
    assert f"{url}/{chunk}: no answer for 0.5 s" in message


@pytest.mark.slow
def test_a_server_that_trickles_is_cut_at_the_cap_per_file(store_server, tmp_path):
    url, faults, release = store_server
    chunk = chunk_name(tmp_path / "www" / "s.zarr")
    faults[f"/s.zarr/{chunk}"] = [_trickle(release, (tmp_path / "www" / "s.zarr" / chunk).stat().st_size)] * 2
    cap = RetryPolicy(attempts=2, first_delay=0.05, timeout=0.5, deadline=1.5)
    store = open_store(locate(url, cache_dir=tmp_path / "cache", retry=cap))
    with pytest.raises(IntegrityError, match=r"no complete answer within the 1.5 s allowed for one file"):
        store.read("landmarks", "s1")


@pytest.mark.slow
def test_verify_stops_at_a_file_that_cannot_be_fetched(store_server, tmp_path):
    url, faults, release = store_server
    chunk = chunk_name(tmp_path / "www" / "s.zarr")
    faults[f"/s.zarr/{chunk}"] = [_stall(release)] * PATIENCE.attempts
    with pytest.raises(IntegrityError, match=rf"{url}: {chunk} could not be fetched: .* no answer for 0.5 s\. "
                                             "The check stopped there"):
        verify(locate(url, retry=PATIENCE))


def test_a_zip_download_that_stalls_is_one_sentence(silent_server, tmp_path):
    url = f"{silent_server}/s.zarr.zip"
    with pytest.raises(Exception) as caught:
        open_store(locate(url, cache_dir=tmp_path / "cache", retry=PATIENCE))
    assert type(caught.value).__name__ == "FetchError"
    assert url in str(caught.value) and "0.5 s" in str(caught.value)


IDS = ("a#1", "b?2", "c%3", "d e", "é&f=1")


@pytest.mark.slow
def test_ids_with_url_syntax_verify_and_read_over_http(tmp_path):
    """Before: ``a#1`` and ``b?2`` verified locally but their files were 'missing' over HTTP."""
    root = tmp_path / "www"
    write_store(root / "ids.zarr", samples=IDS)
    assert verify(root / "ids.zarr").ok
    for listing in (True, False):
        with serve(root, listing=listing) as (base, _, log):
            url = f"{base}/ids.zarr"
            result = verify(url)
            assert result.ok and result.listed == listing, result.summary()
            store = open_store(locate(url, cache_dir=tmp_path / f"cache-{listing}"))
            for sample in IDS:
                np.testing.assert_array_equal(store.read("frame", sample), np.arange(10, 14))
            assert any("a%231" in p for p in log) and any("b%3F2" in p for p in log)


@pytest.mark.slow
def test_a_timeout_value_that_is_not_a_number_is_one_sentence():
    env = {**os.environ, "MEPIPE_TIMEOUT": "soon"}
    for args in (["store", "verify", "http://127.0.0.1:9/s.zarr"], ["info", "http://127.0.0.1:9/s.zarr"]):
        out = subprocess.run([sys.executable, "-m", "mepipe.cli", *args], capture_output=True, text=True, env=env,
                             timeout=300)
        lines = (out.stdout + out.stderr).strip().splitlines()
        assert out.returncode == 2 and len(lines) == 1 and "MEPIPE_TIMEOUT='soon'" in lines[0], lines
