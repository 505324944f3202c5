"""GDGAN / ACGAN training: losses, loop, checkpoints, presets, model artifacts, sampling.

Entry points: :func:`gdgan.training.api.train`, :func:`gdgan.training.sampling.load_generator`,
:func:`gdgan.training.presets.get_config`. Importing this package never initialises CUDA.
"""

from typing import Any

__all__ = ["get_config", "load_generator", "train"]


def __getattr__(name: str) -> Any:  # lazy, so `import gdgan.training.losses` stays light
    if name == "train":
        from gdgan.training.api import train

        return train
    if name == "load_generator":
        from gdgan.training.sampling import load_generator

        return load_generator
    if name == "get_config":
        from gdgan.training.presets import get_config

        return get_config
    raise AttributeError(name)
