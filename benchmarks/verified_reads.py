"""Cost of checked reads: every array of a store read through ``open_store`` (verified) vs plain Zarr.

For a folder store and a zip packed from it, every array in the store
(found through its metadata, so any layout works) is read ``--repeats``
times both ways, interleaved array by array (see :func:`measure`), so that
load from other processes affects both alike; the medians of the per-pass
sums and their ratios are reported. Each pass opens the store anew, timed
apart from the reads: a verified open also loads and parses
``manifest.json`` and checks the root metadata. "Plain" is Zarr's own
LocalStore / ZipStore, i.e. what reading cost before reads were checked.

    python benchmarks/verified_reads.py --store data/stores/demo.zarr --out benchmarks/results/verified-reads.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import zarr
from mepipe.featurestore import open_store
from mepipe.featurestore.backends import FolderBackend
from mepipe.featurestore.location import locate
from mepipe.featurestore.manifest import parse_manifest
from mepipe.featurestore.pack import pack
from mepipe.featurestore.writer import quiet_zarr
from zarr.storage import LocalStore, ZipStore


def _array_paths(store) -> list[str]:
    return sorted(path for path, node in store.nodes() if isinstance(node, zarr.Array))


def _open_verified(location: str):
    return open_store(location)._root


def _open_plain(base):
    with quiet_zarr():
        return zarr.open_group(base, mode="r", zarr_format=3, use_consolidated=True)


def _read_all(root, paths: list[str]) -> int:
    with quiet_zarr():
        return sum(root[p][...].nbytes for p in paths)


def _timed(fn, *args):
    """Wall and CPU seconds (all threads of this process: Zarr reads and decodes in its own threads)."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*args)
    return (time.perf_counter() - wall, time.process_time() - cpu), out


def measure(label: str, location: str, plain_store, paths: list[str], repeats: int) -> dict:
    """Open both ways, then read each array verified and plain in turn (order alternating), summing per mode.

    Interleaving array by array gives both modes the same machine: on a
    shared machine a burst of load hits one array read of each, not a whole
    pass of one mode. CPU seconds (all threads of this process: Zarr reads
    and decodes in its own) are steadier still than wall seconds.
    """
    sums: dict[str, list[float]] = {}
    nbytes = 0
    for r in range(repeats + 1):
        roots = {}
        for mode, opener, arg in (("verified", _open_verified, location), ("plain", _open_plain, plain_store())):
            (wall, cpu), roots[mode] = _timed(opener, arg)
            sums.setdefault(f"open_{mode}_wall", []).append(wall)
            sums.setdefault(f"open_{mode}_cpu", []).append(cpu)
        totals = {f"read_{m}_{c}": 0.0 for m in roots for c in ("wall", "cpu")}
        nbytes = 0
        for i, path in enumerate(paths):
            for mode in (("verified", "plain") if (i + r) % 2 == 0 else ("plain", "verified")):
                (wall, cpu), n = _timed(_read_all, roots[mode], [path])
                totals[f"read_{mode}_wall"] += wall
                totals[f"read_{mode}_cpu"] += cpu
                nbytes += n if mode == "plain" else 0
        if r == 0:
            sums.clear()  # the first round warms the page cache and imports
            continue
        for k, v in totals.items():
            sums.setdefault(k, []).append(v)
    med = {k: statistics.median(v) for k, v in sums.items()}
    out = {"store": label, "arrays": len(paths), "decoded_MB": round(nbytes / 1e6, 1),
           **{f"{k}_s": round(v, 4) for k, v in med.items()}}
    for clock in ("cpu", "wall"):
        out[f"read_ratio_{clock}"] = round(med[f"read_verified_{clock}"] / med[f"read_plain_{clock}"], 3)
        out[f"open_and_read_ratio_{clock}"] = round(
            (med[f"open_verified_{clock}"] + med[f"read_verified_{clock}"])
            / (med[f"open_plain_{clock}"] + med[f"read_plain_{clock}"]), 3)
    out["all_read_verified_wall_s"] = [round(x, 3) for x in sums["read_verified_wall"]]
    out["all_read_plain_wall_s"] = [round(x, 3) for x in sums["read_plain_wall"]]
    return out


def overhead_parts(folder: Path, files: dict, repeats: int) -> dict:
    """The two costs a verified folder read adds, timed apart (CPU s over every listed file, medians).

    ``hash``: sha256 of the bytes. ``contained read``: the bounded read that
    refuses symlinks out and devices, minus a plain ``read_bytes``. Steadier
    than the end-to-end ratio on a loaded machine.
    """
    import hashlib

    source = FolderBackend(locate(folder))
    names = sorted(files)
    times: dict[str, list[float]] = {"plain read": [], "contained read": [], "hash": []}
    for _ in range(repeats):
        (_, cpu), blobs = _timed(lambda: [(folder / n).read_bytes() for n in names])
        times["plain read"].append(cpu)
        (_, cpu), _ = _timed(lambda: [source.read_sync(n, files[n]["size"]) for n in names])
        times["contained read"].append(cpu)
        (_, cpu), _ = _timed(lambda: [hashlib.sha256(b).hexdigest() for b in blobs])
        times["hash"].append(cpu)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"bytes_MB": round(sum(f["size"] for f in files.values()) / 1e6, 1),
            "hash_cpu_s": round(med["hash"], 4),
            "containment_cpu_s": round(med["contained read"] - med["plain read"], 4)}


def manifest_scaling(sizes: list[int]) -> list[dict]:
    """Parse time of synthetic manifests of ``n`` files (what every open pays), from the demo's 2 000 up."""
    import hashlib

    out = []
    for n in sizes:
        files = {f"clips/{i // 50:06d}/feature{i % 25:02d}/feature{i % 25:02d}/{'zarr.json' if i % 2 else 'c/0/0/0'}":
                 {"size": 1000 + i, "sha256": hashlib.sha256(str(i).encode()).hexdigest()} for i in range(n)}
        raw = json.dumps({"format": "mepipe-manifest/1", "algorithm": "sha256", "created": "now", "n_files": n,
                          "n_bytes": 0, "files": files}, indent=1, sort_keys=True).encode()
        runs = []
        for _ in range(3):
            started = time.perf_counter()
            parse_manifest(raw, "synthetic")
            runs.append(time.perf_counter() - started)
        out.append({"files": n, "MB": round(len(raw) / 1e6, 1), "parse_s": round(min(runs), 4)})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", default="data/stores/demo.zarr", help="A built store folder.")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, help="Write the results as JSON here.")
    parser.add_argument("--manifest-sizes", default="10000,100000",
                        help="Also time parsing synthetic manifests of these many files (comma-separated).")
    args = parser.parse_args()

    folder = Path(args.store)
    raw = (folder / "manifest.json").read_bytes()
    started = time.perf_counter()
    manifest = parse_manifest(raw, str(folder))
    parse_s = time.perf_counter() - started
    paths = _array_paths(open_store(folder))
    with tempfile.TemporaryDirectory(prefix="mepipe-bench-") as tmp:
        zipped = pack(folder, Path(tmp) / "store.zarr.zip").path
        results = [measure("folder", str(folder), lambda: LocalStore(folder, read_only=True), paths, args.repeats),
                   measure("zip", zipped, lambda: ZipStore(zipped, mode="r"), paths, args.repeats)]
    report = {"machine": f"{platform.node()} ({platform.processor() or platform.machine()}, "
                         f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f})",
              "date": time.strftime("%Y-%m-%d %H:%M"), "store": str(folder), "files": len(manifest.files),
              "manifest_kB": round(len(raw) / 1e3, 1), "manifest_parse_s": round(parse_s, 4), "results": results,
              "manifest_scaling": manifest_scaling([int(n) for n in args.manifest_sizes.split(",") if n]),
              "overhead_parts": overhead_parts(folder, manifest.files, args.repeats)}
    for r in results:
        print(f"{r['store']:>6}: {r['arrays']} arrays, {r['decoded_MB']} MB decoded. CPU s: read verified "
              f"{r['read_verified_cpu_s']} vs plain {r['read_plain_cpu_s']} (ratio {r['read_ratio_cpu']}), open "
              f"{r['open_verified_cpu_s']} vs {r['open_plain_cpu_s']}, open+read ratio "
              f"{r['open_and_read_ratio_cpu']}. Wall ratios: read {r['read_ratio_wall']}, open+read "
              f"{r['open_and_read_ratio_wall']}")
    print(f"manifest: {len(manifest.files)} files, {report['manifest_kB']} kB, parsed in {parse_s * 1e3:.1f} ms; "
          f"{report['machine']}")
    parts = report["overhead_parts"]
    plain_cpu = results[0]["read_plain_cpu_s"]
    print(f"overhead parts over {parts['bytes_MB']} MB: hash {parts['hash_cpu_s']} CPU s, containment "
          f"{parts['containment_cpu_s']} CPU s = {(parts['hash_cpu_s'] + parts['containment_cpu_s']) / plain_cpu:.1%} "
          f"of a plain folder pass")
    for m in report["manifest_scaling"]:
        print(f"synthetic manifest: {m['files']} files, {m['MB']} MB, parsed in {m['parse_s'] * 1e3:.0f} ms")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
