"""blox-lat: trustworthy on-device latency numbers for the Blox macro search space.

Subpackages, one stage of the flow each, imports pointing down only (``.importlinter``):
``space`` <- ``devices`` | ``exporters`` | ``training`` <- ``harness`` <- ``dataset`` <-
``cluster`` | ``predict`` | ``report`` <- ``cli`` (no logic). docs/architecture.md has the map.
"""

__version__ = "0.1.0"

from blox_lat.errors import BloxLatError

__all__ = ["BloxLatError", "__version__"]
