"""`hlip pack`: an ingested part -> study shards (WebDataset tar files), in a folder and optionally on S3.

Training reads the result when `pretrain.data.shards` names the folder or the `s3://` prefix (`hlip.data.shards`).
Heavy imports happen inside the command so `hlip --help` stays instant.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

_UNITS = {"": 1, "B": 1, "KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30, "KB": 10**3, "MB": 10**6, "GB": 10**9}


def parse_size(text: str) -> int:
    """Bytes of `1GiB`, `512MiB`, `40000` (binary and decimal units, case-insensitive)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
    unit = match.group(2).upper() if match else ""
    if match is None or unit not in _UNITS:
        raise typer.BadParameter(f"{text!r} is not a size such as 1GiB, 256MiB or 40000 (bytes)")
    size = int(float(match.group(1)) * _UNITS[unit])
    if size < 1:
        raise typer.BadParameter(f"{text!r}: a shard needs at least one byte")
    return size


def pack(
    part: Annotated[Path, typer.Argument(help="An ingested part: studies.parquet, scans.parquet and volumes/.")],
    out: Annotated[Path, typer.Argument(help="The pack folder to write (replaced if it exists).")],
    to: Annotated[
        str | None,
        typer.Option("--to", help="s3://bucket/prefix: each shard is uploaded as it closes, the index last."),
    ] = None,
    shard_size: Annotated[
        str, typer.Option("--shard-size", help="A shard closes once it holds this much (a study never spans two).")
    ] = "1GiB",
    keep_shards: Annotated[
        bool,
        typer.Option(
            "--keep-shards/--drop-uploaded-shards",
            help="With --to: keep each uploaded shard here too, or delete it (the local disk then holds one shard).",
        ),
    ] = True,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="With --to: replace a pack already under that prefix.")
    ] = False,
) -> None:
    """Pack an ingested part into study shards for training (a folder, and S3 with --to)."""
    size = parse_size(shard_size)
    if to is not None and not to.startswith("s3://"):
        raise typer.BadParameter(f"--to must be an s3://bucket/prefix URI, got {to!r}")
    if not keep_shards and to is None:
        raise typer.BadParameter("--drop-uploaded-shards needs --to (the shards would be lost)")
    from hlip.data.pack import pack_part

    try:  # progress: a bar on a terminal, a line every 30 s in a log
        summary = pack_part(part, out, shard_bytes=size, upload_to=to, keep_shards=keep_shards, overwrite=overwrite)
    except (FileNotFoundError, FileExistsError, ValueError, OSError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(code=1) from err
    where = f"{out}" + (f" and {to}" if to else "")
    typer.echo(
        f"packed {summary.studies} studies, {summary.scans} scans into {summary.shards} shard(s) of "
        f"{summary.bytes / (1 << 20):.1f} MiB in all -> {where}"
    )
    typer.echo(f"train from it: pretrain.data.shards: {to or out}")
