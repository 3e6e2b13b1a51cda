"""The ``blox-lat`` command line: a thin click layer over the library API."""
