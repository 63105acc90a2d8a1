#!/bin/sh
# /usr/local/bin/tipring (installed by deploy_pi/install.sh): the operator's `tipring`
# command. It runs the current release with the service's numba cache, and as the service
# user when called as root (`sudo tipring check`, `sudo tipring passwd`), so that it reads
# the same secrets, opens the same devices and writes files the service can still rewrite.
set -eu

PREFIX=/opt/tipring
BIN="$PREFIX/current/venv/bin/tipring"
USER_NAME=tipring

if [ ! -x "$BIN" ]; then
	echo "tipring: no release installed under $PREFIX (run deploy_pi/install.sh)" >&2
	exit 1
fi
export NUMBA_CACHE_DIR=/var/cache/tipring/numba
export NUMBA_NUM_THREADS=1
if [ "$(id -u)" = 0 ] && id "$USER_NAME" >/dev/null 2>&1; then
	cd /
	exec runuser -u "$USER_NAME" -- "$BIN" "$@"
fi
exec "$BIN" "$@"
