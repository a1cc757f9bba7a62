"""The storage back-end contract, one suite for every registered back-end (issue 19 item 5).

Like xarray's ``DatasetIOBase`` inherited by every store class, each case
below runs against every back-end in the registry: a folder, a local zip, a
store folder on a real HTTP server on 127.0.0.1, that server through the
read cache, a zip on that server, an fsspec ``memory://`` folder, and an
in-memory back-end this module registers the way a third party would. A
back-end registered without a case here fails
``test_every_registered_backend_has_a_case``.
"""
from __future__ import annotations

import pickle
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from storekit import FAST, serve, write_store
from zarr.core.sync import sync

from mepipe.featurestore import open_store
from mepipe.featurestore.backends import (ReadLimitError, StoreBackend, available_backends, open_backend,
                                          register_backend, unregister_backend)
from mepipe.featurestore.backends.base import check_name, part_name, too_large
from mepipe.featurestore.location import locate, zarr_store
from mepipe.featurestore.pack import PackError, pack, push
from mepipe.featurestore.safety import UnsafeStoreError
from mepipe.featurestore.verify import verify

torch.set_num_threads(1)

MEMORY: dict[str, dict[str, bytes]] = {}
"""The in-memory back-end's storage: root -> {store-relative name: bytes}."""


class InMemoryBackend(StoreBackend):
    """A third party's back-end: stores kept in a dict, at ``lab-memory://<root>`` addresses."""

    name = "lab-memory"
    description = "stores in this process's memory (a test's third-party back-end)"
    writable = True
    atomic_publish = True

    @classmethod
    def guess_can_open(cls, target: str) -> bool:
        return target.startswith("lab-memory://")

    @property
    def files(self) -> dict[str, bytes]:
        return MEMORY.setdefault(self.location.target, {})

    def check_present(self) -> None:
        if not MEMORY.get(self.location.target):
            raise FileNotFoundError(f"{self.where}: no store there")

    async def read(self, name: str, limit: int) -> bytes:
        check_name(self.where, name)
        try:
            data = self.files[name]
        except KeyError:
            raise FileNotFoundError(f"{self.where}/{name}") from None
        if len(data) > limit:
            raise too_large(self.where, name, limit)
        return data

    async def size(self, name: str) -> int:
        check_name(self.where, name)
        try:
            return len(self.files[name])
        except KeyError:
            raise FileNotFoundError(f"{self.where}/{name}") from None

    async def listing(self) -> dict[str, int | None]:
        return {name: len(data) for name, data in self.files.items()}

    def exists_store(self) -> bool:
        return bool(MEMORY.get(self.location.target))

    def staged(self) -> InMemoryBackend:
        parent, _, leaf = self.location.target.rpartition("/")
        return type(self)(self.location.moved(f"{parent}/{part_name(leaf)}"))

    def write(self, name: str, data: bytes) -> None:
        check_name(self.where, name)
        self.files[name] = data

    def finish(self) -> None:
        pass

    def publish(self, staged: StoreBackend, names: Sequence[str]) -> None:
        MEMORY[self.location.target] = MEMORY.pop(staged.location.target)

    def discard(self) -> None:
        MEMORY.pop(self.location.target, None)


@pytest.fixture(scope="module")
def lab_backend():
    register_backend(InMemoryBackend)
    yield InMemoryBackend
    unregister_backend(InMemoryBackend.name)
    MEMORY.clear()


@pytest.fixture(scope="module")
def original(tmp_path_factory) -> Path:
    return write_store(tmp_path_factory.mktemp("original") / "s.zarr")


@pytest.fixture(scope="module")
def www(tmp_path_factory, original):
    root = tmp_path_factory.mktemp("www")
    shutil.copytree(original, root / "s.zarr")
    pack(original, root / "s.zarr.zip")
    with serve(root) as (base, _, log):
        yield base, log


CASES = ("folder", "zip", "http", "cache", "url-zip", "fsspec", "lab-memory")


@pytest.fixture(scope="module")
def locations(original, www, lab_backend, tmp_path_factory):
    """A location of the same store for every case, with the back-end it must be read through."""
    tmp = tmp_path_factory.mktemp("locations")
    base, _ = www
    push(original, "memory://backends-suite/s.zarr")
    push(original, "lab-memory://lab/s.zarr")
    cached = tmp / "cache"
    return {
        "folder": locate(original),
        "zip": locate(pack(original, tmp / "s.zarr.zip").path),
        "http": locate(f"{base}/s.zarr", cache=False, retry=FAST),
        "cache": locate(f"{base}/s.zarr", cache_dir=cached, retry=FAST),
        "url-zip": locate(f"{base}/s.zarr.zip", cache_dir=cached, retry=FAST),
        "fsspec": locate("memory://backends-suite/s.zarr", cache=False),
        "lab-memory": locate("lab-memory://lab/s.zarr"),
    }


def _backend(case: str, location) -> StoreBackend:
    """The back-end a store at ``location`` is read through (the cache wraps the HTTP one once opened)."""
    return zarr_store(location).backend if case == "cache" else open_backend(location)


def test_every_registered_backend_has_a_case(lab_backend):
    assert set(available_backends()) == set(CASES)


@pytest.mark.parametrize("case", CASES)
def test_the_registry_chooses_the_backend(case, locations):
    assert type(_backend(case, locations[case])).name == case


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_reads_are_the_files_bytes_and_bounded(case, locations, original):
    backend = _backend(case, locations[case])
    names = sorted(p.relative_to(original).as_posix() for p in original.rglob("*")
                   if p.is_file() and ".mepipe" not in p.parts)
    for name in names:
        data = (original / name).read_bytes()
        assert sync(backend.read(name, len(data))) == data, name
        assert sync(backend.size(name)) == len(data)
        assert sync(backend.exists(name))
    biggest = max(names, key=lambda n: (original / n).stat().st_size)
    with pytest.raises(ReadLimitError, match=biggest):
        sync(backend.read(biggest, (original / biggest).stat().st_size - 1))
    with pytest.raises(FileNotFoundError):
        sync(backend.read("clips/s1/absent", 100))
    assert not sync(backend.exists("clips/s1/absent"))
    with pytest.raises(UnsafeStoreError, match="leads out of the store"):
        sync(backend.read("../s.zarr/zarr.json", 1 << 20))


@pytest.mark.parametrize("case", CASES)
def test_listing_names_the_files_or_says_it_cannot(case, locations, original):
    listing = sync(_backend(case, locations[case]).listing())
    if listing is None:
        return
    for path in original.rglob("*"):
        name = path.relative_to(original).as_posix()
        if path.is_file() and ".mepipe" not in path.parts:
            assert name in listing and listing[name] in (None, path.stat().st_size), name


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_a_store_opens_verifies_and_reads_the_same_arrays(case, locations, original):
    store = open_store(locations[case])
    reference = open_store(original)
    assert store.store_id == reference.store_id
    for sample in reference.sample_ids:
        np.testing.assert_array_equal(store.read("landmarks", sample), reference.read("landmarks", sample))
    result = verify(locations[case])
    assert result.ok and result.store_id == reference.store_id, result.summary()
    assert "@" not in result.location


@pytest.mark.parametrize("case", CASES)
def test_a_pickled_backend_reads_the_same(case, locations, original):
    """Data-loader workers get the back-end by pickle."""
    backend = pickle.loads(pickle.dumps(_backend(case, locations[case])))
    assert sync(backend.read("zarr.json", 1 << 20)) == (original / "zarr.json").read_bytes()


WRITABLE = {"folder": lambda tmp: tmp / "out" / "copy.zarr", "zip": lambda tmp: tmp / "out" / "copy.zarr.zip",
            "fsspec": lambda tmp: f"memory://{tmp.name}/copy.zarr",
            "url-zip": lambda tmp: f"memory://{tmp.name}/copy.zarr.zip",
            "lab-memory": lambda tmp: f"lab-memory://{tmp.name}/copy.zarr"}


def test_the_writable_backends_are_the_ones_with_write_cases(lab_backend):
    assert {name for name, cls in available_backends().items() if cls.writable} == set(WRITABLE)


@pytest.mark.parametrize("case", sorted(WRITABLE))
def test_a_copy_is_staged_verified_and_published(case, original, lab_backend, tmp_path):
    target = WRITABLE[case](tmp_path)
    url = target.as_uri() if isinstance(target, Path) else target
    result = push(original, url)
    assert result.verified.ok and result.verified.store_id == open_store(original).store_id
    assert type(open_backend(locate(url))).name == case
    with pytest.raises(PackError, match="exists"):
        push(original, url)
    newer = write_store(tmp_path / "newer.zarr", seed=4)
    again = push(newer, url, overwrite=True)
    assert again.verified.ok and open_store(locate(url, cache=False)).store_id == open_store(newer).store_id
    if isinstance(target, Path):
        assert sorted(p.name for p in target.parent.iterdir()) == [target.name]


@pytest.mark.slow
def test_a_third_party_backend_trains_one_epoch(lab_backend, tmp_path):
    """A store pushed into the registered in-memory back-end is opened, verified and trained from."""
    from corpora import write_corpus_store

    from mepipe.train.run import RunParams, run_training

    corpus = write_corpus_store(tmp_path / "samm.zarr", "samm", subjects=range(1, 3), n_clips=1)
    url = "lab-memory://training/samm.zarr"
    push(corpus, url)
    assert verify(url).ok
    report = run_training(RunParams(model="shcnn", store=url, labels="megc-3", epochs=1, batch_size=16, folds=1,
                                    device="cpu", progress=False, out=str(tmp_path / "run"),
                                    model_args=(("widths", (4, 8, 8)), ("hidden", 16))))
    assert len(report["folds"]) == 1 and report["folds"][0]["epochs"] == 1
    assert [s["location"] for s in report["store"]["stores"]] == [url]
    assert report["store"]["stores"][0]["store_id"] == open_store(corpus).store_id
