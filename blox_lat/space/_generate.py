"""Regenerate ``data/hashes.bin`` from the reference hash algorithm.

``python -m blox_lat.space._generate [--check]``: hashes the canonical vector of every model
with the slow, reference-faithful ``_graph.reference_hash`` (about 15 s per core) and writes
the digests in model-index order, or with ``--check`` compares them with the shipped file.
"""

from __future__ import annotations

import argparse
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from importlib import resources

from blox_lat._fs import atomic_write
from blox_lat.space._graph import reference_hash
from blox_lat.space._table import HASH_FILE, SpaceTable
from blox_lat.space._vector import raw_codes, stage_digits


def _hash_positions(positions: list[int]) -> bytes:
    out = bytearray()
    for pos in positions:
        stages = tuple(stage_digits(c) for c in raw_codes(pos))
        out += bytes.fromhex(reference_hash(stages))
    return bytes(out)


def compute_hashes(jobs: int | None = None) -> bytes:
    """All 91,125 model hashes, by the reference algorithm, in model-index order."""
    table = SpaceTable(hashes=b"")
    positions = [int(p) for p in table.first_position]
    jobs = jobs or os.cpu_count() or 1
    chunk = (len(positions) + 4 * jobs - 1) // (4 * jobs)
    parts = [positions[i : i + chunk] for i in range(0, len(positions), chunk)]
    with ProcessPoolExecutor(jobs) as pool:
        return b"".join(pool.map(_hash_positions, parts))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="compare with the shipped file")
    args = parser.parse_args()
    data = compute_hashes()
    target = resources.files("blox_lat.space").joinpath("data", HASH_FILE)
    if args.check:
        same = target.read_bytes() == data
        print("hash table matches" if same else "hash table DIFFERS", file=sys.stderr)
        return 0 if same else 1
    atomic_write(str(target), data)
    print(f"wrote {len(data) // 16} hashes to {target}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
