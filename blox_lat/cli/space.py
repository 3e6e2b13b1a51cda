"""``blox-lat space``: counts, one model's identity and cost, selections, the 45 blocks."""

from __future__ import annotations

import click

from blox_lat import space as sp
from blox_lat.cli._output import emit_json, emit_ndjson, emit_pairs, emit_table, json_option


def arch_record(arch: sp.Arch, *, cost: bool = True) -> dict:
    """The JSON form of a model used by every command."""
    record = {
        "index": arch.index,
        "hash": arch.hash,
        "vector": arch.vector_list,
        "blocks": list(arch.block_names),
        "name": arch.name,
    }
    if cost:
        record.update(params=sp.params(arch), macs=sp.macs(arch), flops=sp.flops(arch))
    return record


@click.group()
def space() -> None:
    """Explore the search space: counts, models, blocks."""


@space.command()
@json_option()
def info(as_json: bool) -> None:
    """Sizes of the space: raw vectors, invalid ones, unique models, blocks."""
    data = sp.space_info()
    if as_json:
        emit_json(data)
    else:
        emit_pairs([(k.replace("_", " "), v) for k, v in data.items()])


@space.command()
@click.argument("name")
@json_option()
def show(name: str, as_json: bool) -> None:
    """One model by vector, hash, index or block string: identity and cost.

    NAME is an index (0..91124), a 32-hex-digit hash, a vector such as
    '[[[0],[1,1,1,1]],[[1],[1,1,0,0]],[[0],[0,1,1,0]]]' or blocks such as
    'seq.conv.conv/full.mbconv.bconv/conv'.
    """
    arch = sp.resolve(name)
    record = arch_record(arch)
    if as_json:
        emit_json(record)
        return
    emit_pairs(
        [
            ("index", arch.index),
            ("hash", arch.hash),
            ("vector", arch.vector_text),
            ("blocks", "  ".join(f"stage{i}={b}" for i, b in enumerate(arch.block_names))),
            ("params", f"{record['params']:,}"),
            ("MACs", f"{record['macs']:,}  (conv + linear multiply-accumulates, batch 1)"),
            ("FLOPs", f"{record['flops']:,}  (2 x MACs)"),
        ]
    )


@space.command("list")
@click.argument("selector")
@click.option("--shard", default=None, metavar="K/N", help="Only the K-th of N deterministic slices.")
@click.option("--cost/--no-cost", default=False, help="Add params, MACs and FLOPs columns.")
@json_option("Print one JSON object per line (NDJSON).")
def list_(selector: str, shard: str | None, cost: bool, as_json: bool) -> None:
    """Models named by SELECTOR: all, 0:1000, random:N[:SEED], @FILE, or comma-separated names."""
    archs = sp.shard(sp.select(selector), shard)
    if as_json:
        emit_ndjson(arch_record(a, cost=cost) for a in archs)
        return
    columns = ["index", "hash", "name"] + (["params", "macs", "flops"] if cost else [])
    emit_table([arch_record(a, cost=cost) for a in archs], columns)


@space.command()
@json_option()
def blocks(as_json: bool) -> None:
    """The 45 distinct blocks a stage can hold, with their names and canonical digits."""
    rows = [
        {"id": b.id, "name": b.name, "shape": b.shape, "ops": list(b.ops), "digits": list(b.digits)}
        for b in sp.list_blocks()
    ]
    if as_json:
        emit_json(rows)
    else:
        emit_table(rows, ["id", "name", "shape", "digits"])
