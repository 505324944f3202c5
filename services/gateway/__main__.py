"""``python -m services.gateway`` = ``gdgan serve gateway``."""

from gdgan.cli.serve import gateway

if __name__ == "__main__":
    gateway()
