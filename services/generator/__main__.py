"""``python -m services.generator`` = ``gdgan serve generator``."""

from gdgan.cli.serve import generator

if __name__ == "__main__":
    generator()
