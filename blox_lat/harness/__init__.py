"""The measurement harness: the timing protocol, runners and resumable campaigns."""
