#!/usr/bin/env bash
# `make test-pi`: the closest thing to a Raspberry Pi on an x86 machine. Builds (once, then
# cached) a Debian bookworm arm64 root with debootstrap, runs it under qemu-user-static
# through binfmt_misc, runs deploy_pi/install.sh inside it (chroot), then, against the
# installed release and as the service user: tests/dsp and one simulated call end to end
# (`tipring demo`). Prints a summary; exits non-zero if any step failed or could not run.
#
# Needs: root (debootstrap, chroot, mount), binfmt_misc (a VM or a bare-metal host; most
# containers cannot mount it), the Debian archive and PyPI over the network, ~1.5 GB in
# build/test-pi. The root is kept in build/test-pi/rootfs: a rerun reuses it (and pip's
# cache inside it), so only the installer and the tests run again. Timings under emulation
# are not Pi timings: qemu-user runs numba's code about 9x slower than the host.
#
# Environment: TIPRING_PI_BUILD (default <repo>/build/test-pi), TIPRING_PI_MIRROR (a Debian
# mirror for debootstrap; default: debootstrap's own), TIPRING_PI_SKIP_DSP=1 /
# TIPRING_PI_SKIP_CALL=1 to leave a step out while iterating, TIPRING_PI_TESTS (default
# tests/dsp: about an hour under emulation on 2 busy cores) to run other tests.
set -euo pipefail

PROG=test-pi
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
BUILD=${TIPRING_PI_BUILD:-$REPO/build/test-pi}
ROOTFS=$BUILD/rootfs
SUITE=bookworm
# python3-dev and gcc: pesq (a test dependency) has no aarch64 wheel. systemd: `systemctl
# enable` and `systemd-analyze verify` inside the root, as on Raspberry Pi OS.
INCLUDE=python3,python3-venv,python3-pip,python3-dev,gcc,libc6-dev,ca-certificates,systemd
STAMP=$ROOTFS/.tipring-rootfs
TEST_DIR=/var/tmp/tipring-pi-tests
TESTS=${TIPRING_PI_TESTS:-tests/dsp}
CHROOT_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
HOST_CA=/etc/ssl/certs/ca-certificates.crt
CHROOT_CA=/etc/ssl/certs/host-ca.crt

declare -a STEPS=()
FAILED=0

say() { printf '\n=== %s: %s\n' "$PROG" "$*"; }
fail_setup() {
	printf '\n%s: CANNOT RUN: %s\n' "$PROG" "$*" >&2
	exit 2
}
record() {
	STEPS+=("$(printf '%-26s %-5s %s' "$1" "$2" "$3")")
	[ "$2" = ok ] || FAILED=1
}
summary() {
	printf '\n=== %s summary (arm64 bookworm under qemu-user, %s)\n' "$PROG" "$ROOTFS"
	local line
	for line in "${STEPS[@]}"; do printf '  %s\n' "$line"; done
	if [ "$FAILED" = 0 ]; then
		printf '  RESULT: PASS\n'
	else
		printf '  RESULT: FAIL\n'
	fi
}

# ---- the host: root, tools, binfmt_misc --------------------------------------------------------
check_host() {
	[ "$(id -u)" = 0 ] || fail_setup "needs root (debootstrap, chroot and mount): sudo make test-pi"
	local missing=()
	command -v debootstrap >/dev/null || missing+=(debootstrap)
	command -v qemu-aarch64-static >/dev/null || missing+=(qemu-user-static)
	if [ ${#missing[@]} -gt 0 ]; then
		command -v apt-get >/dev/null || fail_setup "missing ${missing[*]} and no apt-get"
		say "installing ${missing[*]}"
		if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; }; then
			fail_setup "could not install ${missing[*]} from the Debian archive"
		fi
	fi
	local bm=/proc/sys/fs/binfmt_misc
	if ! mountpoint -q "$bm"; then
		mount -t binfmt_misc binfmt_misc "$bm" 2>/dev/null ||
			fail_setup "binfmt_misc cannot be mounted at $bm, so arm64 binaries cannot run here (a container without the privilege? run it in a VM)"
	fi
	if [ ! -e "$bm/qemu-aarch64" ]; then
		local conf=/usr/lib/binfmt.d/qemu-aarch64.conf
		[ -f "$conf" ] || fail_setup "no $conf (qemu-user-static is incomplete)"
		cat "$conf" >"$bm/register" 2>/dev/null || fail_setup "cannot register qemu-aarch64 with binfmt_misc"
	fi
	grep -qx enabled "$bm/qemu-aarch64" || fail_setup "the qemu-aarch64 binfmt entry is disabled ($bm/qemu-aarch64)"
	# F: the kernel opens the interpreter at registration, so it works inside the chroot
	grep -q '^flags:.*F' "$bm/qemu-aarch64" ||
		fail_setup "the qemu-aarch64 binfmt entry lacks the F flag: it cannot work in a chroot"
}

# ---- the arm64 root (cached) -------------------------------------------------------------------
build_rootfs() {
	if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$SUITE $INCLUDE" ]; then
		record "arm64 root" ok "cached ($(du -sh "$ROOTFS" | cut -f1))"
		return
	fi
	local partial=$BUILD/rootfs.partial start
	unmount_all "$partial"
	rm -rf --one-file-system "$partial" "$ROOTFS"
	mkdir -p "$BUILD"
	say "debootstrap $SUITE arm64 into $partial (about 3-4 minutes)"
	start=$(date +%s)
	local -a mirror=()
	[ -z "${TIPRING_PI_MIRROR:-}" ] || mirror=("$TIPRING_PI_MIRROR")
	if ! nice -n 10 debootstrap --arch=arm64 --variant=minbase --include="$INCLUDE" \
		"$SUITE" "$partial" "${mirror[@]}" >"$BUILD/debootstrap.log" 2>&1; then
		tail -n 15 "$BUILD/debootstrap.log" >&2
		fail_setup "debootstrap could not build the arm64 root (no route to the Debian archive? log: $BUILD/debootstrap.log)"
	fi
	printf '%s %s\n' "$SUITE" "$INCLUDE" >"$partial/.tipring-rootfs"
	mv "$partial" "$ROOTFS"
	record "arm64 root" ok "debootstrap in $(($(date +%s) - start)) s ($(du -sh "$ROOTFS" | cut -f1))"
}

# ---- mounts: fresh instances only, never bind mounts of the host's /dev or /sys, so that a
# stale mount left by a killed run can never lead `rm -rf build` into the host's devices ----
unmount_all() {
	local base=$1 m
	[ -d "$base" ] || return 0
	# deepest first
	awk -v b="$base/" 'index($2, b) == 1 { print $2 }' /proc/mounts | sort -r |
		while IFS= read -r m; do umount "$m" 2>/dev/null || umount -l "$m" || true; done
}

mount_rootfs() {
	unmount_all "$ROOTFS"
	mount -t proc proc "$ROOTFS/proc"
	mount -t sysfs sysfs "$ROOTFS/sys"
	mkdir -p "$ROOTFS/dev/pts" "$ROOTFS/dev/shm"
	mount -t devpts devpts "$ROOTFS/dev/pts" -o newinstance,ptmxmode=0666,mode=0620
	ln -sfn pts/ptmx "$ROOTFS/dev/ptmx"
	mount -t tmpfs tmpfs "$ROOTFS/dev/shm" -o mode=1777
	trap 'unmount_all "$ROOTFS"' EXIT
	# the host's resolver and CA bundle, for pip inside the root (where TLS goes through a
	# proxy with its own CA, the root's own bundle does not know it)
	cp -L /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
	if [ -f "$HOST_CA" ]; then
		cp -L "$HOST_CA" "$ROOTFS$CHROOT_CA"
	else
		cp -L "$ROOTFS/etc/ssl/certs/ca-certificates.crt" "$ROOTFS$CHROOT_CA"
	fi
}

# Everything inside runs with a clean environment: the host's PIP_*, SSL_CERT_* and
# friends point at files that do not exist in the root, and pip then fails. pip (the
# installer's too) trusts the host's CA bundle.
in_chroot() {
	chroot "$ROOTFS" /usr/bin/env -i HOME=/root PATH="$CHROOT_PATH" LANG=C.UTF-8 \
		PIP_CERT="$CHROOT_CA" "$@"
}

smoke() {
	local arch
	arch=$(in_chroot /usr/bin/python3 -c 'import platform; print(platform.machine())') ||
		fail_setup "the arm64 root does not run (binfmt_misc/qemu-aarch64)"
	[ "$arch" = aarch64 ] || fail_setup "the root runs as $arch, not aarch64"
}

# ---- the installer inside the root -------------------------------------------------------------
copy_source() {
	local dst=$ROOTFS/usr/src/tipring
	rm -rf "$dst"
	mkdir -p "$dst"
	tar -C "$REPO" --exclude=./build --exclude=./.venv --exclude=./.git --exclude='*.egg-info' \
		--exclude=__pycache__ --exclude=./.hypothesis --exclude='./.*_cache' --exclude=./demo-out \
		-cf - . | tar -C "$dst" -xf -
}

run_installer() {
	local start log=$BUILD/install.log
	say "deploy_pi/install.sh inside the arm64 root (log: $log)"
	start=$(date +%s)
	if in_chroot bash /usr/src/tipring/deploy_pi/install.sh --source /usr/src/tipring --no-uart \
		2>&1 | tee "$log"; then
		record "install.sh" ok "$(($(date +%s) - start)) s, current -> $(basename "$(readlink "$ROOTFS/opt/tipring/current")")"
	else
		record "install.sh" FAIL "$(($(date +%s) - start)) s (log: $log)"
		return 1
	fi
	check_install
}

check_install() {
	local problems=""
	[ -x "$ROOTFS/opt/tipring/current/venv/bin/tipring" ] || problems="$problems no-venv"
	in_chroot id -nG tipring | grep -qw dialout || problems="$problems user-not-in-dialout"
	[ "$(in_chroot systemctl is-enabled tipring.service 2>/dev/null)" = enabled ] ||
		problems="$problems unit-not-enabled"
	[ -f "$ROOTFS/usr/lib/udev/rules.d/99-tipring.rules" ] || problems="$problems no-udev-rule"
	[ -f "$ROOTFS/etc/tipring/tipring.toml" ] || problems="$problems no-config"
	if [ -z "$problems" ]; then
		record "installed tree" ok "user, venv, unit enabled, udev rule, config"
	else
		record "installed tree" FAIL "$problems"
	fi
	# The real unit against the real binary, on arm64 systemd 252.
	if in_chroot systemd-analyze verify /etc/systemd/system/tipring.service >"$BUILD/verify.log" 2>&1; then
		record "systemd-analyze verify" ok "tipring.service with the installed binary"
	else
		record "systemd-analyze verify" FAIL "$(head -n 3 "$BUILD/verify.log" | tr '\n' ' ')"
	fi
}

# ---- tests/dsp and one call, as the service user -------------------------------------------------
# A command as the service user, in the tests' directory, with the service's numba cache.
as_tipring() {
	# shellcheck disable=SC2016 # $0 and $@ belong to the inner sh
	in_chroot runuser -u tipring -- /usr/bin/env -i HOME="$TEST_DIR" PATH="$CHROOT_PATH" \
		LANG=C.UTF-8 NUMBA_CACHE_DIR=/var/cache/tipring/numba NUMBA_NUM_THREADS=1 \
		/bin/sh -c 'cd "$0" && exec "$@"' "$TEST_DIR" "$@"
}

prepare_tests() {
	say "test dependencies into the release's venv (pesq compiles from source)"
	in_chroot /opt/tipring/current/venv/bin/python -m pip install --disable-pip-version-check \
		--progress-bar off --quiet pytest pytest-trio hypothesis pesq
	# The tests alone, so that `import dsp` finds the installed release, not a source tree;
	# from the snapshot the release was built from, never from the live tree (which may have
	# moved on since: the tests would then check other code than they were written for).
	rm -rf "${ROOTFS:?}$TEST_DIR"
	mkdir -p "$ROOTFS$TEST_DIR"
	cp -a "$ROOTFS/usr/src/tipring/tests" "$ROOTFS/usr/src/tipring/pyproject.toml" "$ROOTFS$TEST_DIR/"
	find "$ROOTFS$TEST_DIR" -name __pycache__ -prune -exec rm -rf {} +
	in_chroot chown -R tipring:tipring "$TEST_DIR"
}

run_dsp_tests() {
	local start log=$BUILD/tests-dsp.log tail_line
	say "$TESTS under emulation (log: $log)"
	start=$(date +%s)
	# shellcheck disable=SC2086 # TESTS is a list of paths
	if as_tipring /opt/tipring/current/venv/bin/python -m pytest -q -p no:cacheprovider $TESTS \
		2>&1 | tee "$log" | tail -n 5; then
		tail_line=$(grep -E '[0-9]+ (passed|failed)' "$log" | tail -n 1)
		record "$TESTS" ok "${tail_line:-passed} ($(($(date +%s) - start)) s)"
	else
		tail_line=$(grep -E '[0-9]+ (passed|failed)' "$log" | tail -n 1)
		record "$TESTS" FAIL "${tail_line:-see $log} ($(($(date +%s) - start)) s)"
	fi
}

run_call() {
	local start log=$BUILD/demo.log out=$BUILD/demo.json
	say "one simulated call end to end: tipring demo (log: $log)"
	start=$(date +%s)
	if ! as_tipring /opt/tipring/current/venv/bin/tipring demo --help 2>/dev/null | grep -q -- '--json'; then
		run_line_sim_test
		return
	fi
	if as_tipring /opt/tipring/current/venv/bin/tipring demo --json --out "$TEST_DIR/demo-out" \
		>"$out" 2>"$log"; then
		record "tipring demo" ok "$(demo_facts "$out") ($(($(date +%s) - start)) s)"
	else
		record "tipring demo" FAIL "exit $? $(demo_facts "$out") ($(($(date +%s) - start)) s, $log)"
	fi
}

demo_facts() {
	python3 - "$1" <<'EOF' 2>/dev/null || printf 'no report'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"ended by {r.get('ended_by')!r}, {r.get('elapsed_s')} s call, "
      f"{r.get('frames_late')} frames late, barge-in stop {r.get('barge_in_stop_ms')} ms")
EOF
}

# Before `tipring demo` ran a whole call, the line simulator's test was the end-to-end check.
run_line_sim_test() {
	local log=$BUILD/line-sim.log
	if as_tipring /opt/tipring/current/venv/bin/python -m pytest -q -p no:cacheprovider \
		tests/gateway/test_line_sim.py >"$log" 2>&1; then
		record "call (line sim test)" ok "$(tail -n 1 "$log")"
	else
		record "call (line sim test)" FAIL "$(tail -n 1 "$log")"
	fi
}

main() {
	check_host
	build_rootfs
	mount_rootfs
	smoke
	copy_source
	if run_installer; then
		prepare_tests || record "test dependencies" FAIL "pip in the root failed"
		if [ "$FAILED" = 0 ]; then
			[ "${TIPRING_PI_SKIP_DSP:-}" = 1 ] || run_dsp_tests
			[ "${TIPRING_PI_SKIP_CALL:-}" = 1 ] || run_call
		fi
	fi
	summary
	[ "$FAILED" = 0 ]
}

main "$@"
