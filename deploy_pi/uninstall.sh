#!/usr/bin/env bash
# Removes tipring: the service, the udev rule, the `tipring` command and every release under
# /opt/tipring. Keeps the configuration (/etc/tipring), the call records (/var/lib/tipring)
# and the tipring user unless --purge, which removes those and numba's cache as well.
#
#   sudo deploy_pi/uninstall.sh [--purge] [--root DIR]
#
# --root DIR works on a tree made by `install.sh --root DIR` (no systemctl, userdel, udevadm:
# the same seam as the installer's). The UART stays enabled and the kernel console off it;
# `sudo raspi-config nonint do_serial_cons 0` puts the login console back.
set -euo pipefail

PROG=uninstall.sh
APP=tipring
PREFIX=/opt/$APP
ETC=/etc/$APP
STATE=/var/lib/$APP
CACHE=/var/cache/$APP
UNIT=/etc/systemd/system/$APP.service
WANTS=/etc/systemd/system/multi-user.target.wants/$APP.service
RULES=/usr/lib/udev/rules.d/99-$APP.rules
LOCAL_RULES=/etc/udev/rules.d/99-$APP.rules
CLI=/usr/local/bin/$APP

ROOT=""
PURGE=0

say() { printf '%s: %s\n' "$PROG" "$*"; }
die() {
	printf '%s: error: %s\n' "$PROG" "$*" >&2
	exit 1
}

usage() {
	cat <<EOF
usage: $PROG [--purge] [--root DIR]
  --purge     also remove /etc/tipring, /var/lib/tipring (call records!), the numba cache
              and the tipring user
  --root DIR  uninstall from a tree made by install.sh --root DIR
EOF
}

r() { printf '%s%s' "$ROOT" "$1"; }
in_root() { [ -n "$ROOT" ]; }

parse_args() {
	while [ $# -gt 0 ]; do
		case "$1" in
		--purge) PURGE=1 ;;
		--root) ROOT=${2:?--root needs a value}; shift ;;
		-h | --help) usage; exit 0 ;;
		*) usage >&2; die "unknown option: $1" ;;
		esac
		shift
	done
	if [ -n "$ROOT" ]; then
		[ -d "$ROOT" ] || die "--root $ROOT: no such directory"
		ROOT=$(cd "$ROOT" && pwd)
		[ "$ROOT" != / ] || ROOT=""
	fi
	if ! in_root && [ "$(id -u)" != 0 ]; then die "run as root (sudo $0)"; fi
}

stop_service() {
	if in_root; then
		rm -f "$(r "$WANTS")"
	elif command -v systemctl >/dev/null; then
		if [ -d /run/systemd/system ]; then systemctl stop "$APP.service" 2>/dev/null || true; fi
		systemctl disable "$APP.service" 2>/dev/null || true
	fi
}

unmask_gettys() {
	local list unit
	list=$(r "$PREFIX/masked-gettys")
	[ -f "$list" ] || return 0
	while IFS= read -r unit; do
		[ -n "$unit" ] || continue
		if in_root; then
			rm -f "$(r "/etc/systemd/system/$unit")"
		elif command -v systemctl >/dev/null; then
			systemctl unmask "$unit" >/dev/null || true
		fi
	done <"$list"
}

remove_files() {
	rm -f "$(r "$UNIT")" "$(r "$RULES")" "$(r "$CLI")"
	rm -rf "$(r "$PREFIX")"
	say "removed the service, the udev rule, $CLI and $PREFIX"
	if [ -e "$(r "$LOCAL_RULES")" ]; then say "kept your $LOCAL_RULES (delete it by hand)"; fi
	if ! in_root; then
		if command -v systemctl >/dev/null; then systemctl daemon-reload 2>/dev/null || true; fi
		if command -v udevadm >/dev/null && [ -S /run/udev/control ]; then udevadm control --reload; fi
	fi
}

purge() {
	rm -rf "$(r "$ETC")" "$(r "$STATE")" "$(r "$CACHE")"
	say "purged $ETC, $STATE and $CACHE"
	if in_root; then
		local f
		for f in "$(r /etc/passwd)" "$(r /etc/group)"; do
			[ -f "$f" ] || continue
			sed -i -E "/^$APP:/d; /^dialout:/ { s/([:,])$APP(,|\$)/\1/; s/,\$//; }" "$f"
		done
	elif getent passwd "$APP" >/dev/null; then
		userdel "$APP"
		if getent group "$APP" >/dev/null; then groupdel "$APP"; fi
	fi
	say "removed user $APP"
}

main() {
	if [ "${TIPRING_UNINSTALL_COPY:-}" = 1 ]; then rm -f "$0"; fi
	parse_args "$@"
	# This script may live under /opt/tipring (releases/*/deploy_pi/), which it deletes: run
	# from a copy so that bash never reads a removed file.
	case "$(cd "$(dirname "$0")" && pwd)" in
	"$(r "$PREFIX")"/*)
		local copy
		copy=$(mktemp)
		cp "$0" "$copy"
		TIPRING_UNINSTALL_COPY=1 exec bash "$copy" "$@"
		;;
	esac
	stop_service
	unmask_gettys
	remove_files
	if [ "$PURGE" = 1 ]; then
		purge
	else
		say "kept $ETC, $STATE and user $APP (--purge removes them)"
	fi
}

main "$@"
