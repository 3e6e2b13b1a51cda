"""blox-lat: trustworthy on-device latency numbers for the Blox macro search space.

Subpackages, one stage of the flow each (arrows point one way):
``space`` -> ``exporters`` -> ``devices`` / ``harness`` -> ``dataset``; ``training`` feeds
``dataset``; ``cli`` sits on top and owns no logic.
"""

__version__ = "0.1.0"

from blox_lat.errors import BloxLatError

__all__ = ["BloxLatError", "__version__"]
