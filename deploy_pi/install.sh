#!/usr/bin/env bash
# tipring installer for Raspberry Pi OS bookworm 64-bit (also any Debian 12 arm64/amd64).
# Idempotent: run it again to repair, or with a new source to upgrade; --rollback goes back.
#
#   sudo deploy_pi/install.sh [--source DIR|WHEEL] [--offline-wheels DIR] [--no-uart] ...
#
# What it sets up (deploy_pi/README.md has the walk-through):
#   system user tipring (groups tipring, dialout)
#   /opt/tipring/releases/<version>-<hash>/venv   one venv per release
#   /opt/tipring/current, /opt/tipring/previous    symlinks; older releases are removed
#   /etc/tipring/tipring.toml                      from tipring.toml.example, only if absent
#   /etc/tipring/secrets/                          0700 tipring: API keys and tokens
#   /var/lib/tipring, /var/cache/tipring/numba     state; numba's cache, warmed on this CPU
#   /etc/systemd/system/tipring.service            enabled; restarted on upgrade if running
#   /usr/lib/udev/rules.d/99-tipring.rules         /dev/tipring-adapter, /dev/tipring-modem
#   /usr/local/bin/tipring                         the operator's command
#   on a Raspberry Pi: UART enabled, login console moved off it (needs a reboot)
#
# --root DIR installs into DIR instead of / (the tests do): nothing outside DIR is touched,
# no systemctl, useradd, udevadm or raspi-config runs. The user and groups are written as
# lines into DIR/etc/passwd and DIR/etc/group; file owners are set only when running as
# root; the service is enabled by its symlink; the numba warm-up runs as the calling user.
# A Raspberry Pi is recognised by DIR/proc/device-tree/model, so a test can fake one.
set -euo pipefail

PROG=install.sh
HERE=$(cd "$(dirname "$0")" && pwd)
APP=tipring
# Debian's dialout group id (base-passwd); used only when --root DIR has no dialout group.
DIALOUT_GID=20

ROOT=""
SOURCE=""
WHEELS=""
PYTHON=python3
DO_UART=1
DO_WARMUP=1
DO_START=0
ROLLBACK=0

usage() {
	cat <<EOF
usage: $PROG [options]
  --source DIR|WHEEL    the tipring source tree or wheel to install (default: $HERE/..)
  --offline-wheels DIR  install from the wheels in DIR only (pip --no-index); DIR must hold
                        tipring's dependencies for this Python and CPU (deploy_pi/README.md)
  --root DIR            install into DIR instead of / (tests; see the top of this file)
  --python PY           the interpreter for the venv (default python3; needs >= 3.11)
  --no-uart             leave the Pi's UART and serial console as they are
  --no-warmup           skip the numba cache warm-up (the first start then compiles)
  --start               start the service after a first install (an upgrade restarts a
                        running service anyway)
  --rollback            switch back to the previous release and restart the service
  -h, --help            this text
EOF
}

say() { printf '%s: %s\n' "$PROG" "$*"; }
die() {
	printf '%s: error: %s\n' "$PROG" "$*" >&2
	exit 1
}

parse_args() {
	while [ $# -gt 0 ]; do
		case "$1" in
		--source) SOURCE=${2:?--source needs a value}; shift ;;
		--offline-wheels) WHEELS=${2:?--offline-wheels needs a value}; shift ;;
		--root) ROOT=${2:?--root needs a value}; shift ;;
		--python) PYTHON=${2:?--python needs a value}; shift ;;
		--no-uart) DO_UART=0 ;;
		--no-warmup) DO_WARMUP=0 ;;
		--start) DO_START=1 ;;
		--rollback) ROLLBACK=1 ;;
		-h | --help) usage; exit 0 ;;
		*) usage >&2; die "unknown option: $1" ;;
		esac
		shift
	done
	if [ -n "$ROOT" ]; then
		mkdir -p "$ROOT"
		ROOT=$(cd "$ROOT" && pwd)
		[ "$ROOT" != / ] || ROOT=""
	fi
}

# ---- paths: every absolute path goes through r() so --root works ----------------------------
PREFIX=/opt/$APP
ETC=/etc/$APP
STATE=/var/lib/$APP
CACHE=/var/cache/$APP
UNIT=/etc/systemd/system/$APP.service
# The vendor location: an operator's /etc/udev/rules.d/99-tipring.rules replaces it whole.
RULES=/usr/lib/udev/rules.d/99-$APP.rules
CLI=/usr/local/bin/$APP

r() { printf '%s%s' "$ROOT" "$1"; }
in_root() { [ -n "$ROOT" ]; }
is_root_user() { [ "$(id -u)" = 0 ]; }
systemd_running() { ! in_root && [ -d /run/systemd/system ] && command -v systemctl >/dev/null; }

# chown that is skipped (said once) when not root: the --root tests may run unprivileged.
CHOWN_SKIP_SAID=0
own() {
	local owner=$1
	shift
	if is_root_user; then
		chown "$(owner_ids "$owner")" "$@"
	elif [ "$CHOWN_SKIP_SAID" = 0 ]; then
		say "not root: file owners are left as they are"
		CHOWN_SKIP_SAID=1
	fi
}

# "user:group" as numeric ids read from the target's passwd/group (root:... stays root).
owner_ids() {
	local user=${1%%:*} group=${1##*:} uid gid
	uid=$(id_of "$(r /etc/passwd)" "$user")
	gid=$(id_of "$(r /etc/group)" "$group")
	printf '%s:%s' "$uid" "$gid"
}

id_of() {
	local found
	found=$(awk -F: -v n="$2" '$1 == n { print $3; exit }' "$1")
	[ -n "$found" ] || die "no '$2' in $1"
	printf '%s' "$found"
}

# ---- checks ------------------------------------------------------------------------------------
check_platform() {
	case "$(uname -m)" in
	armv6l | armv7l | armhf)
		die "this is a 32-bit OS: numba has no 32-bit ARM wheels. Flash Raspberry Pi OS Lite (64-bit)." ;;
	esac
	if ! in_root && ! is_root_user; then
		die "run as root (sudo $0 ...), or use --root DIR to install into a directory"
	fi
	command -v "$PYTHON" >/dev/null || die "no $PYTHON (apt-get install python3)"
	"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
		die "tipring needs Python >= 3.11; $PYTHON is $("$PYTHON" -V 2>&1)"
}

# ---- the user ----------------------------------------------------------------------------------
ensure_user() {
	if in_root; then
		ensure_user_in_files
		return
	fi
	if ! getent passwd "$APP" >/dev/null; then
		useradd --system --user-group --home-dir "$STATE" --no-create-home \
			--shell /usr/sbin/nologin --comment "tipring gateway" "$APP"
		say "created system user $APP"
	fi
	getent group dialout >/dev/null || groupadd --system dialout
	id -nG "$APP" | tr ' ' '\n' | grep -qx dialout || usermod -a -G dialout "$APP"
}

# The --root seam: the lines useradd/usermod would write, without calling them.
ensure_user_in_files() {
	local passwd group uid
	passwd=$(r /etc/passwd)
	group=$(r /etc/group)
	mkdir -p "$(r /etc)"
	[ -e "$passwd" ] || printf 'root:x:0:0:root:/root:/bin/sh\n' >"$passwd"
	[ -e "$group" ] || printf 'root:x:0:\n' >"$group"
	if ! grep -q "^$APP:" "$passwd"; then
		uid=$(free_system_id "$passwd" "$group")
		printf '%s:x:%s:%s:tipring gateway:%s:/usr/sbin/nologin\n' "$APP" "$uid" "$uid" "$STATE" >>"$passwd"
		grep -q "^$APP:" "$group" || printf '%s:x:%s:\n' "$APP" "$uid" >>"$group"
		say "added user $APP (uid $uid) to $passwd"
	fi
	grep -q '^dialout:' "$group" || printf 'dialout:x:%s:\n' "$DIALOUT_GID" >>"$group"
	awk -F: -v u="$APP" '$1 == "dialout" { n = split($4, m, ","); for (i = 1; i <= n; i++) if (m[i] == u) f = 1 }
		END { exit !f }' "$group" ||
		sed -i -E "s/^(dialout:[^:]*:[^:]*:)(.*)\$/\1\2,$APP/; s/^(dialout:[^:]*:[^:]*:),/\1/" "$group"
}

# The highest id below 1000 free as both uid and gid, as useradd --system picks it.
free_system_id() {
	local id
	for id in $(seq 999 -1 100); do
		if ! awk -F: -v i="$id" '$3 == i { f = 1 } END { exit !f }' "$1" "$2"; then
			printf '%s' "$id"
			return
		fi
	done
	die "no free system id in $1"
}

# ---- directories and config --------------------------------------------------------------------
ensure_dirs() {
	install -d -m 0755 "$(r "$PREFIX")" "$(r "$PREFIX/releases")"
	# root owns the config directory; the group may write it: the console's "config save"
	# and "passwd" replace tipring.toml (atomically: a new file, then a rename).
	install -d -m 0770 "$(r "$ETC")"
	own root:"$APP" "$(r "$ETC")"
	install -d -m 0700 "$(r "$ETC/secrets")"
	own "$APP:$APP" "$(r "$ETC/secrets")"
	install -d -m 0750 "$(r "$STATE")" "$(r "$CACHE")" "$(r "$CACHE/numba")"
	own "$APP:$APP" "$(r "$STATE")" "$(r "$CACHE")" "$(r "$CACHE/numba")"
}

install_config() {
	local conf
	conf=$(r "$ETC/$APP.toml")
	install -m 0644 "$HERE/$APP.toml.example" "$(r "$ETC/$APP.toml.example")"
	if [ -e "$conf" ]; then
		say "kept $ETC/$APP.toml (the newest example is $ETC/$APP.toml.example)"
	else
		install -m 0640 "$HERE/$APP.toml.example" "$conf"
		own "$APP:$APP" "$conf"
		say "wrote $ETC/$APP.toml from the example: edit it, then run: sudo tipring check"
	fi
}

# ---- the release -------------------------------------------------------------------------------
SRC_KIND=""
VERSION=""
RELEASE=""

resolve_source() {
	[ -n "$SOURCE" ] || SOURCE="$HERE/.."
	[ -e "$SOURCE" ] || die "--source $SOURCE: no such file or directory"
	SOURCE=$(cd "$(dirname "$SOURCE")" && printf '%s/%s' "$(pwd)" "$(basename "$SOURCE")")
	local hash
	if [ -f "$SOURCE" ]; then
		case "$SOURCE" in *.whl) ;; *) die "--source $SOURCE: not a directory or a .whl" ;; esac
		SRC_KIND=wheel
		VERSION=$(basename "$SOURCE" | cut -d- -f2)
		hash=$(sha256sum "$SOURCE" | cut -c1-12)
	else
		[ -f "$SOURCE/pyproject.toml" ] || die "--source $SOURCE: no pyproject.toml"
		SRC_KIND=dir
		VERSION=$(sed -n -E 's/^version *= *"([^"]+)".*/\1/p' "$SOURCE/pyproject.toml" | head -n 1)
		hash=$(source_hash "$SOURCE")
	fi
	[ -n "$VERSION" ] || die "--source $SOURCE: cannot tell its version"
	RELEASE="$VERSION-$hash"
}

# sha256 over the files that go into the package: the same tree gives the same release.
source_hash() {
	(
		cd "$1"
		find . \( -name .git -o -name .venv -o -name build -o -name dist -o -name '*.egg-info' \
			-o -name __pycache__ -o -name '.*_cache' -o -name .hypothesis -o -name demo-out \
			-o -name tests -o -name docs -o -name deploy_pi \) -prune \
			-o -type f ! -name '*.pyc' ! -name '*.nbi' ! -name '*.nbc' -print |
			LC_ALL=C sort | xargs -d '\n' sha256sum | sha256sum | cut -c1-12
	)
}

release_dir() { r "$PREFIX/releases/$1"; }
link_target() {
	local link
	link=$(r "$PREFIX/$1")
	if [ -L "$link" ]; then basename "$(readlink "$link")"; fi
}

build_release() {
	local dir venv
	dir=$(release_dir "$RELEASE")
	if [ -e "$dir/.complete" ]; then
		say "release $RELEASE is already installed"
		return
	fi
	rm -rf "$dir"
	install -d -m 0755 "$dir"
	venv="$dir/venv"
	say "creating $PREFIX/releases/$RELEASE (venv with $("$PYTHON" -V 2>&1))"
	make_venv "$venv"
	pip_install "$venv"
	# The deployment files of this release travel with it: a rollback restores its unit.
	install -d -m 0755 "$dir/deploy_pi"
	install -m 0644 "$HERE/$APP.service" "$HERE/99-$APP.rules" "$HERE/$APP.toml.example" \
		"$HERE/README.md" "$dir/deploy_pi/"
	install -m 0755 "$HERE/install.sh" "$HERE/uninstall.sh" "$HERE/tipring-cli.sh" "$dir/deploy_pi/"
	printf '%s\n' "$RELEASE" >"$dir/.complete"
}

make_venv() {
	if "$PYTHON" -m venv "$1" 2>/dev/null; then return; fi
	rm -rf "$1"
	if ! in_root && command -v apt-get >/dev/null; then
		say "python3 -m venv failed: installing python3-venv"
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
		"$PYTHON" -m venv "$1" && return
	fi
	die "$PYTHON -m venv failed: install python3-venv (apt-get install python3-venv)"
}

pip_install() {
	local venv=$1
	local -a pip=("$venv/bin/python" -m pip --disable-pip-version-check)
	local -a index=()
	if [ -n "$WHEELS" ]; then
		[ -d "$WHEELS" ] || die "--offline-wheels $WHEELS: not a directory"
		index=(--no-index --find-links "$(cd "$WHEELS" && pwd)")
	else
		"${pip[@]}" install --quiet --upgrade pip
	fi
	say "installing $SOURCE into the venv${WHEELS:+ (offline, from $WHEELS)}"
	# A copy of a source tree, so pip's in-tree build leaves nothing in the operator's tree.
	if [ "$SRC_KIND" = dir ]; then
		local tmp
		tmp=$(mktemp -d)
		tar -C "$SOURCE" --exclude=./.git --exclude=./.venv --exclude=./build \
			--exclude='*.egg-info' --exclude=__pycache__ --exclude=./tests -cf - . | tar -C "$tmp" -xf -
		"${pip[@]}" install --progress-bar off "${index[@]}" "$tmp" || {
			rm -rf "$tmp"
			die "pip could not install $SOURCE (network? --offline-wheels?)"
		}
		rm -rf "$tmp"
	else
		"${pip[@]}" install --progress-bar off "${index[@]}" "$SOURCE" ||
			die "pip could not install $SOURCE (network? --offline-wheels?)"
	fi
}

# ---- numba warm-up on this CPU ----------------------------------------------------------------
# The kernels' cache is keyed by the CPU model (a Pi 4 cache is useless on a Pi 5, and one
# built elsewhere is useless here), so it is built here, as the service user, with the
# service's NUMBA_CACHE_DIR. `tipring warmup` if the release has it; else the warm functions
# the app itself calls before it reports ready.
WARM_PY='
import importlib, sys, time
from gateway.numba_cache import configure_numba_cache
cache = configure_numba_cache()
WARM = [("firmware_bridge.adapter_port", "warm_port_kernels"),
        ("gateway.line", "warm_line_kernels"),
        ("gateway.call_audio", "warm_up")]
start, done = time.monotonic(), []
for module, name in WARM:
    try:
        warm = getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        print(f"warm-up: no {module} in this release", flush=True)
        continue
    except AttributeError:
        print(f"warm-up: no {module}.{name} in this release", flush=True)
        continue
    warm()
    done.append(f"{module}.{name}")
if not done:
    sys.exit("warm-up: none of the warm functions exists in this release")
print(f"warm-up: {len(done)} warm functions in {time.monotonic() - start:.1f} s")
'

# The cache directories this release uses, relative to NUMBA_CACHE_DIR's base: numba keeps
# each source directory's kernels in <dir name>_<sha1 of its absolute path> (numba's
# _CacheLocator.get_suitable_cache_subpath), under gateway.numba_cache's numba-<dsp hash>. A
# new release path is a new subdirectory even when the dsp sources did not change.
CACHE_ENTRIES_PY='
import hashlib, importlib, os
from gateway.numba_cache import configure_numba_cache
cache = configure_numba_cache()
for top in ("dsp", "firmware_bridge", "gateway"):
    root = os.path.dirname(os.path.abspath(importlib.import_module(top).__file__))
    for path, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        if any(f.endswith(".py") for f in files):
            print(f"{cache.name}/{os.path.basename(path)}_{hashlib.sha1(path.encode()).hexdigest()}")
'

warm_numba() {
	local dir=$1 venv
	venv="$dir/venv"
	local -a run=(env -i PATH=/usr/bin:/bin HOME="$(r "$STATE")" LANG=C.UTF-8
		NUMBA_CACHE_DIR="$(r "$CACHE/numba")" NUMBA_NUM_THREADS=1)
	if ! in_root; then run=(runuser -u "$APP" -- "${run[@]}"); fi
	if [ "$DO_WARMUP" = 0 ]; then
		say "numba warm-up skipped (--no-warmup): the first start compiles the kernels"
	else
		say "warming numba's cache on this CPU (minutes on a Zero 2 W the first time)"
		if "$venv/bin/tipring" warmup --help >/dev/null 2>&1; then
			(cd / && "${run[@]}" "$venv/bin/tipring" warmup) ||
				die "tipring warmup failed (above); the release is not switched to"
		else
			(cd / && "${run[@]}" "$venv/bin/python" -c "$WARM_PY") ||
				die "the numba warm-up failed (above); the release is not switched to"
		fi
	fi
	(cd / && "${run[@]}" "$venv/bin/python" -c "$CACHE_ENTRIES_PY") >"$dir/.numba-cache" ||
		die "could not list the release's numba cache directories"
	if in_root; then own "$APP:$APP" -R "$(r "$CACHE")"; fi
}

# Keep the numba cache directories of the current and previous releases, drop the rest: whole
# numba-<dsp hash> directories, and the subdirectories of removed releases inside kept ones.
prune_numba_cache() {
	local rel top sub
	local -a keep=()
	for rel in "$(link_target current)" "$(link_target previous)"; do
		if [ -n "$rel" ] && [ -s "$(release_dir "$rel")/.numba-cache" ]; then
			mapfile -t -O "${#keep[@]}" keep <"$(release_dir "$rel")/.numba-cache"
		fi
	done
	[ ${#keep[@]} -gt 0 ] || return 0
	for top in "$(r "$CACHE/numba")"/numba-*/; do
		[ -d "$top" ] || continue
		top=$(basename "$top")
		if ! printf '%s\n' "${keep[@]}" | grep -q "^$top/"; then
			rm -rf "$(r "$CACHE/numba")/${top:?}"
			continue
		fi
		for sub in "$(r "$CACHE/numba")/$top"/*/; do
			[ -d "$sub" ] || continue
			sub=$(basename "$sub")
			printf '%s\n' "${keep[@]}" | grep -qxF "$top/$sub" || rm -rf "$(r "$CACHE/numba")/$top/${sub:?}"
		done
	done
}

# ---- switching releases ------------------------------------------------------------------------
set_link() {
	local name=$1 release=$2 link tmp
	link=$(r "$PREFIX/$name")
	tmp="$link.new.$$"
	ln -sfn "releases/$release" "$tmp"
	mv -Tf "$tmp" "$link"
}

switch_to() {
	local new=$1 old
	old=$(link_target current)
	if [ "$old" = "$new" ]; then
		say "current is already $new"
		return 1
	fi
	[ -z "$old" ] || set_link previous "$old"
	set_link current "$new"
	say "current -> $new${old:+ (previous -> $old)}"
}

prune_releases() {
	local cur prev d name
	cur=$(link_target current)
	prev=$(link_target previous)
	for d in "$(r "$PREFIX/releases")"/*; do
		[ -d "$d" ] || continue
		name=$(basename "$d")
		if [ "$name" != "$cur" ] && [ "$name" != "$prev" ]; then
			rm -rf "$d"
			say "removed old release $name"
		fi
	done
}

# ---- system files ------------------------------------------------------------------------------
install_system_files() {
	local from=$1
	install -d -m 0755 "$(r /etc/systemd/system)" "$(r /usr/lib/udev/rules.d)" "$(r /usr/local/bin)"
	install -m 0644 "$from/$APP.service" "$(r "$UNIT")"
	install -m 0644 "$from/99-$APP.rules" "$(r "$RULES")"
	install -m 0755 "$from/tipring-cli.sh" "$(r "$CLI")"
	if in_root; then
		# what `systemctl enable` does: the [Install] WantedBy symlink
		install -d -m 0755 "$(r /etc/systemd/system/multi-user.target.wants)"
		ln -sfn "$UNIT" "$(r "/etc/systemd/system/multi-user.target.wants/$APP.service")"
		say "--root: enabled $APP.service by its symlink; no systemctl, udevadm"
		return
	fi
	# enable works without a running systemd too (a chroot, an image being prepared)
	if command -v systemctl >/dev/null; then
		if systemd_running; then systemctl daemon-reload; fi
		systemctl enable "$APP.service"
	fi
	if command -v udevadm >/dev/null && [ -S /run/udev/control ]; then
		udevadm control --reload
		udevadm trigger --subsystem-match=tty --action=add
	fi
}

# Restart a running service on the new release. Type=notify: `systemctl restart` returns
# once the app sent READY=1, or fails if it did not start; then go back to the previous one.
restart_service() {
	systemd_running || {
		say "systemd is not running here: not (re)starting $APP.service"
		return 0
	}
	if systemctl is-active --quiet "$APP.service"; then
		say "restarting $APP.service on $(link_target current)"
		if ! systemctl restart "$APP.service"; then
			say "$APP.service did not start on $(link_target current): rolling back"
			rollback_links
			install_system_files "$(release_dir "$(link_target current)")/deploy_pi"
			systemctl restart "$APP.service" || true
			die "the new release failed to start; back on $(link_target current) (journalctl -u $APP)"
		fi
	elif [ "$DO_START" = 1 ]; then
		systemctl start "$APP.service"
	else
		say "not started: edit $ETC/$APP.toml, then: sudo tipring check && sudo systemctl start $APP"
	fi
}

rollback_links() {
	local cur prev
	cur=$(link_target current)
	prev=$(link_target previous)
	if [ -z "$prev" ] || [ ! -e "$(release_dir "$prev")/.complete" ]; then
		die "no previous release to roll back to"
	fi
	set_link current "$prev"
	set_link previous "$cur"
	say "rolled back: current -> $prev (previous -> $cur)"
}

# ---- the UART console (Raspberry Pi only) -----------------------------------------------------
pi_model() {
	local f
	f=$(r /proc/device-tree/model)
	if [ -r "$f" ]; then tr -d '\0' <"$f" | grep 'Raspberry Pi' || true; fi
}

setup_uart() {
	local model
	[ "$DO_UART" = 1 ] || {
		say "--no-uart: the UART and serial console are left as they are"
		return
	}
	model=$(pi_model)
	[ -n "$model" ] || {
		say "not a Raspberry Pi: UART set-up skipped"
		return
	}
	if ! in_root && command -v raspi-config >/dev/null; then
		# 0 = enable the UART hardware, 1 = no login/kernel console on it
		raspi-config nonint do_serial_hw 0
		raspi-config nonint do_serial_cons 1
	else
		uart_edit_boot_files "$model"
	fi
	mask_serial_gettys "$model"
	say "UART on for the admin console ($model); reboot to apply"
}

# What raspi-config does, on the boot partition's files (bookworm: /boot/firmware).
uart_edit_boot_files() {
	local boot cmdline config
	boot=$(r /boot/firmware)
	[ -d "$boot" ] || boot=$(r /boot)
	cmdline="$boot/cmdline.txt"
	config="$boot/config.txt"
	if [ -f "$cmdline" ]; then
		sed -i -E ':again; s/(^| )console=(serial0|ttyAMA[0-9]+|ttyS0),[0-9]+( |$)/\1/; t again' "$cmdline"
	fi
	[ -f "$config" ] || : >"$config"
	config_line "$config" enable_uart=1
	case "$1" in *"Raspberry Pi 5"*) config_line "$config" dtparam=uart0=on ;; esac
}

# Appends a setting to config.txt unless it is there; under an [all] header when the file has
# model sections, so that it does not land in the last section (e.g. [cm5]) only.
config_line() {
	grep -qxF "$2" "$1" && return
	if grep -q '^\[' "$1" && [ "$(grep '^\[' "$1" | tail -n 1)" != "[all]" ]; then
		printf '[all]\n' >>"$1"
	fi
	printf '%s\n' "$2" >>"$1"
}

# No login prompt on the console UART (GPIO14/15: ttyS0 or ttyAMA0, Pi 5: ttyAMA10 behind
# serial0 too); the gettys on the HDMI console and over SSH stay. Recorded for uninstall.
mask_serial_gettys() {
	local tty unit
	local -a masked=()
	for tty in ttyS0 ttyAMA0 ttyAMA10; do
		case "$tty" in ttyAMA10) case "$1" in *"Raspberry Pi 5"*) ;; *) continue ;; esac ;; esac
		unit="serial-getty@$tty.service"
		if in_root; then
			ln -sfn /dev/null "$(r "/etc/systemd/system/$unit")"
		elif command -v systemctl >/dev/null; then
			systemctl mask "$unit" >/dev/null
		fi
		masked+=("$unit")
	done
	printf '%s\n' "${masked[@]}" >"$(r "$PREFIX/masked-gettys")"
}

# ---- main --------------------------------------------------------------------------------------
do_rollback() {
	rollback_links
	install_system_files "$(release_dir "$(link_target current)")/deploy_pi"
	restart_service
}

do_install() {
	resolve_source
	say "installing tipring $RELEASE into ${ROOT:-/}"
	ensure_user
	ensure_dirs
	install_config
	build_release
	warm_numba "$(release_dir "$RELEASE")"
	local switched=1
	switch_to "$RELEASE" || switched=0
	prune_releases
	prune_numba_cache
	install_system_files "$HERE"
	setup_uart
	if [ "$switched" = 1 ] || [ "$DO_START" = 1 ]; then restart_service; fi
	say "done: $PREFIX/current -> $(link_target current)"
}

main() {
	parse_args "$@"
	check_platform
	if [ "$ROLLBACK" = 1 ]; then do_rollback; else do_install; fi
}

main "$@"
