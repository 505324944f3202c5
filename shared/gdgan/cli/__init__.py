"""The ``gdgan`` command line."""
