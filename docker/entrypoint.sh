#!/bin/sh
# Entry point of the gdgan images: one image, one role per container.
#
#   gateway | generator | trainer | evaluator   start that service (extra arguments are passed on)
#   healthcheck [ARGS]                          run the container health check (see healthcheck.py)
#   anything else                               run it as a command, e.g. `gdgan data --help`
#
# The role commands are exactly the ones docker-compose.yml and k8s/ run, so the image is usable
# with a bare `docker run IMAGE trainer` as well. `exec` keeps the service as the process that
# receives SIGTERM, so uvicorn and Celery shut down gracefully on `docker stop` / pod deletion.
set -eu

role="${1:-gateway}"
[ "$#" -gt 0 ] && shift

case "$role" in
  gateway)
    exec gdgan serve gateway --host 0.0.0.0 --port 8000 "$@" ;;
  generator)
    exec gdgan serve generator --host 0.0.0.0 --port 8001 "$@" ;;
  trainer)
    exec gdgan worker trainer "$@" ;;
  evaluator)
    exec gdgan worker evaluator "$@" ;;
  healthcheck)
    exec python /opt/gdgan/healthcheck.py "$@" ;;
  *)
    exec "$role" "$@" ;;
esac
