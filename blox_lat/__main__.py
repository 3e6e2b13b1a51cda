"""``python -m blox_lat`` is the ``blox-lat`` command."""

from blox_lat.cli.main import main

main()
