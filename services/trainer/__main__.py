"""``python -m services.trainer`` = ``gdgan worker trainer``."""

from gdgan.cli.serve import trainer

if __name__ == "__main__":
    trainer()
