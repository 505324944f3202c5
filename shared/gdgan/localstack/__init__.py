"""Local stand-ins for the production backing services (Redis, S3) as child processes.

``servers`` starts single servers (used by ``gdgan up`` and the test fixtures); ``stack`` runs the
whole product locally.
"""
