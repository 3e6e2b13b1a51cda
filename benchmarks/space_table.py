"""Search-space performance: cold build of the whole table, and resolving one raw vector.

Prints JSON. Targets (issue 2): cold build <= 1 s; resolving a raw vector to hash and index
<= 20 us. The reference implementation needs about 321 s to build its table on this machine.

The cold build runs in a fresh interpreter and covers everything a first lookup needs:
importing the package, enumerating the 373,248 raw vectors, mapping them to the 91,125 models
with first-seen indices, and decoding all hashes into the hash -> index map. The result is
printed and written to benchmarks/results/ (see ``_results``).

    python benchmarks/space_table.py
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import time

from _results import add_arguments, save

COLD = r"""
import time
t0 = time.perf_counter()
from blox_lat.space._table import space_table
t = space_table()
n = len(t.index_of_hash)
t1 = time.perf_counter()
print(t1 - t0, n, t.num_raw, t.num_invalid)
"""


def cold_build(repeats: int = 5) -> dict:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", COLD], capture_output=True, text=True, check=True).stdout.split()
        wall = time.perf_counter() - start
        times.append((float(out[0]), wall))
        assert out[1:] == ["91125", "373248", "123201"], out
    return {
        "cold_build_s_median": statistics.median(t for t, _ in times),
        "cold_process_wall_s_median": statistics.median(w for _, w in times),
        "target_s": 1.0,
    }


def resolve_speed(n: int = 20_000) -> dict:
    from blox_lat.space import from_vector, space_table
    from blox_lat.space._vector import raw_codes, stage_digits, to_vector, vector_to_list

    table = space_table()
    table.hashes  # noqa: B018 - decode once, as any long-lived process would
    rng = random.Random(0)
    vectors = []
    while len(vectors) < n:
        stages = tuple(stage_digits(c) for c in raw_codes(rng.randrange(373_248)))
        if all(s[2] or s[3] or s[4] for s in stages):
            vectors.append(vector_to_list(to_vector(stages)))
    start = time.perf_counter()
    for v in vectors:
        arch = from_vector(v)
    per_call = (time.perf_counter() - start) / n
    return {"resolve_raw_vector_us": per_call * 1e6, "target_us": 20.0, "last": [arch.hash, arch.index]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(ap)
    args = ap.parse_args()
    result = {**cold_build(), **resolve_speed()}
    result["meets_targets"] = result["cold_build_s_median"] <= 1.0 and result["resolve_raw_vector_us"] <= 20.0
    save("space_table", result, args)


if __name__ == "__main__":
    main()
