"""The evaluator service: a Celery worker on queue ``eval`` (evaluation orchestration, one
classifier per strategy × repeat, the report, large generation jobs), one task at a time.

Run it with ``gdgan worker evaluator`` (docker-compose, k8s, ``gdgan up``) or
``python -m services.evaluator``. The tasks it runs are implemented in ``gdgan.jobs.tasks``.
"""
