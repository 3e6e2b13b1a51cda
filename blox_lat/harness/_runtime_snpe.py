"""The ``snpe`` runtime: Qualcomm ``snpe-net-run`` on the device (``dlc``; remote only).

It has no in-process loader: ``harness._factory`` drives it with ``SnpeRunner``.
"""

from __future__ import annotations

from blox_lat.harness._runtime import RuntimeSpec

__all__ = ["RUNTIME"]

RUNTIME = RuntimeSpec(
    name="snpe",
    formats=("dlc",),
    options={"runtime": "dsp", "perf_profile": "burst", "htp_soc": "sm8350"},
    description="Qualcomm SNPE snpe-net-run on the device (remote only)",
)
