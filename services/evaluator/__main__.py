"""``python -m services.evaluator`` = ``gdgan worker evaluator``."""

from gdgan.cli.serve import evaluator

if __name__ == "__main__":
    evaluator()
