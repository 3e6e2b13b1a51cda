"""The whole space, not a sample: every valid raw vector, hashed the reference way.

Slow-ish (about a minute on 2 cores) and worth it: this is the promise that our indices and
hashes can be merged with the published Blox data.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

from blox_lat.space._generate import compute_hashes
from blox_lat.space._graph import reference_hash
from blox_lat.space._table import enumerate_raw, load_hash_file, space_table
from blox_lat.space._vector import raw_codes, stage_digits

pytestmark = pytest.mark.slow


def test_shipped_hash_table_regenerates_bit_for_bit():
    assert compute_hashes() == load_hash_file()


def _check_positions(positions: list[int]) -> list[int]:
    table = space_table()
    raw = enumerate_raw()
    bad = []
    for pos in positions:
        stages = tuple(stage_digits(c) for c in raw_codes(pos))
        expected = reference_hash(stages)
        triple = int(raw.triples[pos])
        if expected is None:
            if triple != -1:
                bad.append(pos)
            continue
        index = int(table.index_of_triple[triple])
        if index < 0 or table.hashes[index] != expected:
            bad.append(pos)
    return bad


def test_every_raw_vector_resolves_to_its_reference_hash():
    positions = list(range(373_248))
    jobs = os.cpu_count() or 1
    chunks = [positions[i::64] for i in range(64)]
    with ProcessPoolExecutor(jobs) as pool:
        bad = [p for part in pool.map(_check_positions, chunks) for p in part]
    assert bad == []
    table = space_table()
    assert len(set(table.hashes)) == 91_125  # distinct triples never collide
    assert np.all(np.diff(table.first_position) > 0)  # indices follow first-seen order
