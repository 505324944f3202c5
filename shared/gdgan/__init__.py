"""GDGAN: General-to-Detailed GAN for infrequent-class chest X-ray synthesis (Koga et al., arXiv 1812.01690).

The core library: labels, data, models, training, evaluation, artifact store and jobs. Importable
without any server; the services in ``services/`` are thin adapters over it.
"""

__version__ = "0.1.0"
