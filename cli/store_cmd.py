"""``mepipe store``: share feature stores (pack, verify, info, diff, push).

A store is named by its folder, a ``.zip`` of it, or an fsspec URL
(``https://``, ``s3://``, ``gs://``, ``file://``); only folders are written.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

_CACHE_HELP = ("Where remote stores are cached between runs. Default: $MEPIPE_CACHE, else ~/.cache/mepipe.")
_NO_CACHE_HELP = "Read remote stores without the local cache."
_STORE_ID_HELP = ("Refuse the store unless its id (sha256 of its manifest, printed by `store verify` and `info`) "
                  "is this: pins the exact content, even against a file and the manifest edited together.")


def _location(target: str, cache_dir: Path | None = None, no_cache: bool = False):
    from mepipe.featurestore.location import locate

    return locate(target, cache=not no_cache, cache_dir=cache_dir)


def report_errors(fn, *args, **kwargs):
    """``fn(*args, **kwargs)``, turning an expected error into a one-line message and its exit status.

    The status is the error's (2 for a wrong command, 1 for bad data; 1 for
    other errors that name a path or value). The message is escaped: it may
    quote names and attributes from a store someone else built. (The
    ``store`` group also runs on its own, outside the ``mepipe`` group's
    error reporting.)
    """
    from mepipe.featurestore.errors import MepipeError
    from mepipe.featurestore.safety import printable

    try:
        return fn(*args, **kwargs)
    except (MepipeError, FileNotFoundError, ValueError) as err:
        failure = click.ClickException(printable(str(err)))
        failure.exit_code = err.exit_code if isinstance(err, MepipeError) else 1
        raise failure from None


def _dump(data) -> str:
    return json.dumps(data, indent=2, default=str)


@click.group("store", context_settings={"help_option_names": ["-h", "--help"]})
def store() -> None:
    """Share feature stores: pack to one file, verify checksums, describe, compare, copy to a URL."""


@store.command()
@click.argument("store_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out_zip", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--overwrite", is_flag=True,
              help="Replace OUT_ZIP if it exists (the old zip stays until the new one is written and verified).")
@click.option("--store-id", "expect_id", metavar="ID", help=_STORE_ID_HELP)
def pack(store_dir, out_zip, overwrite, expect_id):
    """Write the built store STORE_DIR as one Zarr zip file OUT_ZIP (e.g. samm-v1.zarr.zip).

    Every file is checked against the store's manifest on the way; the
    builder's private .mepipe/ folder is left out. The zip is written under a
    temporary name, verified, then renamed.
    """
    from mepipe.featurestore.pack import pack as pack_store

    result = report_errors(pack_store, store_dir, out_zip, overwrite=overwrite, expect_id=expect_id)
    click.echo(f"packed {store_dir} into {result.path}: {result.n_files} files, "
               f"{result.folder_bytes / 1e6:.1f} MB of store files -> {result.zip_bytes / 1e6:.1f} MB zip "
               f"in {result.seconds:.1f} s; store id {result.store_id}")


@store.command()
@click.argument("location")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--workers", type=click.IntRange(min=1),
              help="Files read at once. Default: 4 for local stores, 8 for URLs.")
@click.option("--store-id", "expect_id", metavar="ID", help=_STORE_ID_HELP)
def verify(location, as_json, workers, expect_id):
    """Check every file of the store at LOCATION against its checksum manifest; print the store id.

    LOCATION is a folder, a zip file or a URL; the bytes are read afresh, not
    from the cache. Exits 1 if any file is missing, modified, unexpected or
    unsafe (outside the store, larger than its array allows, metadata naming a
    type or codec outside mepipe's allow-list), if the manifest leaves out a
    node the metadata names, if the store has no manifest or an empty one, or
    if its id is not --store-id.
    """
    from mepipe.featurestore.verify import verify as verify_store

    result = report_errors(verify_store, location, workers=workers, expect_id=expect_id)
    click.echo(_dump(result.to_dict()) if as_json else result.summary())
    sys.exit(0 if result.ok else 1)


@store.command()
@click.argument("location")
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON.")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), envvar="MEPIPE_CACHE",
              help=_CACHE_HELP)
@click.option("--no-cache", is_flag=True, help=_NO_CACHE_HELP)
@click.option("--store-id", "expect_id", metavar="ID", help=_STORE_ID_HELP)
def info(location, as_json, cache_dir, no_cache, expect_id):
    """Describe the store at LOCATION: its id, clips, features, who built it from what, with which parameters.

    Sizes are shown for folders and zip files, not for URLs.
    """
    from mepipe.featurestore.info import describe, format_description

    desc = report_errors(describe, _location(location, cache_dir, no_cache), expect_id=expect_id)
    click.echo(_dump(desc) if as_json else format_description(desc))


@store.command()
@click.argument("a")
@click.argument("b")
@click.option("--json", "as_json", is_flag=True, help="Print every difference as JSON.")
@click.option("--exit-code", is_flag=True,
              help="Exit 1 when the stores differ (like `git diff --exit-code`); default: exit 0 either way.")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), envvar="MEPIPE_CACHE",
              help=_CACHE_HELP)
@click.option("--no-cache", is_flag=True, help=_NO_CACHE_HELP)
@click.option("--store-id", "expect_ids", metavar="ID", multiple=True,
              help="Pin the id of A (given once) or of A and then B (given twice); see `store verify`.")
def diff(a, b, as_json, exit_code, cache_dir, no_cache, expect_ids):
    """Compare stores A and B on provenance: versions, stage parameters, sheet, quirks, clips, features, keys.

    Only metadata is read (no chunks). Build host, user and times are shown
    but do not count as differences. Exits 0 whether or not they differ,
    unless --exit-code is given.
    """
    from mepipe.featurestore.diff import diff_stores

    if len(expect_ids) > 2:
        raise click.BadParameter("give it at most twice (A, then B)", param_hint="--store-id")
    ids = (*expect_ids, None, None)
    result = report_errors(diff_stores, _location(a, cache_dir, no_cache), _location(b, cache_dir, no_cache),
                           expect_a=ids[0], expect_b=ids[1])
    click.echo(_dump(result.to_dict()) if as_json else result.format())
    sys.exit(1 if exit_code and not result.identical else 0)


@store.command()
@click.argument("store_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("url")
@click.option("--overwrite", is_flag=True,
              help="Replace what is at URL; the old copy stays until the new one is complete and verified.")
@click.option("--json", "as_json", is_flag=True, help="Print the result (with the verification) as JSON.")
@click.option("--store-id", "expect_id", metavar="ID", help=_STORE_ID_HELP)
def push(store_dir, url, overwrite, as_json, expect_id):
    """Copy the built store STORE_DIR to URL (s3://, gs://, file://...), verify the copy, then publish it.

    A URL ending in .zip receives a packed zip. The copy is written under a
    temporary name, verified and renamed; where the back-end cannot rename
    (object stores), it is copied into place with the manifest last and
    verified again. Exits 1 if the copy does not verify. Cloud back-ends are
    optional extras: pip install 'mepipe[s3]' or 'mepipe[gcs]'.
    """
    from dataclasses import asdict

    from mepipe.featurestore.pack import push as push_store

    result = report_errors(push_store, store_dir, url, overwrite=overwrite, expect_id=expect_id)
    if as_json:
        click.echo(_dump({**asdict(result), "verified": result.verified.to_dict()}))
    else:
        click.echo(f"pushed {store_dir} to {result.url}: {result.n_files} files, {result.n_bytes / 1e6:.1f} MB "
                   f"in {result.seconds:.1f} s")
        click.echo(result.verified.summary())
    sys.exit(0 if result.verified.ok else 1)


def register(cli_group: click.Group) -> None:
    """Add the ``store`` command group to the ``mepipe`` CLI."""
    cli_group.add_command(store)
