"""The trainer service: a Celery worker on queue ``train`` (dataset ingest, GDGAN/ACGAN training,
the evaluation's per-split GAN training), one task at a time, one per GPU.

Run it with ``gdgan worker trainer`` (docker-compose, k8s, ``gdgan up``) or
``python -m services.trainer``. The tasks it runs are implemented in ``gdgan.jobs.tasks``.
"""
