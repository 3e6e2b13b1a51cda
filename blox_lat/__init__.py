"""blox-lat: trustworthy on-device latency numbers for the Blox macro search space.

Subpackages, one stage of the flow each, imports pointing down only (``.importlinter``):
``space`` <- ``devices`` | ``exporters`` | ``training`` <- ``harness`` <- ``dataset`` <-
``cluster`` | ``predict`` | ``report`` <- ``cli`` (no logic). docs/architecture.md has the map.
"""

__version__ = "0.1.0"

import logging

from blox_lat.errors import BloxLatError

# the library logs (module loggers under ``blox_lat``) and never configures logging: an
# application does, e.g. ``blox-lat -v``; until then nothing reaches logging's last resort
logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = ["BloxLatError", "__version__"]
