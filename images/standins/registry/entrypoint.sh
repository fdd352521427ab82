#!/bin/sh
# As the upstream registry image's entrypoint: a configuration file is served, a
# subcommand (serve, garbage-collect, ...) goes to the registry, anything else runs as is.
set -e
case "${1:-}" in
  *.yaml | *.yml) set -- registry serve "$@" ;;
  serve | garbage-collect | help | -*) set -- registry "$@" ;;
esac
exec "$@"
