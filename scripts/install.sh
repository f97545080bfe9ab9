#!/bin/sh
# airlock installer: installs (or upgrades in place, or removes) an airlock release from a
# local tarball built by "npm run release".
#
#   sh install.sh [options] airlock-VERSION-linux-ARCH-nodeN.tar.gz
#   sh install.sh --uninstall [--purge] [--root DIR]
#
# What it does, in order:
#   1. verifies the tarball's SHA-256 against SHA256SUMS next to it (or --sha256 HEX);
#   2. unpacks it to PREFIX/releases/VERSION and points PREFIX/current at it (atomically);
#   3. creates the system users "airlock" and "airlock-runner" (sysusers.d);
#   4. installs the systemd units airlock-server, airlock-runner, airlock-sandbox;
#   5. writes config skeletons to /etc/airlock/ (existing files are kept; new defaults go to
#      FILE.dist), and the state directories under /var/lib/airlock/;
#   6. links /usr/local/bin/airlock; on a live system reloads systemd and restarts the units
#      that were running (an upgrade), or prints the next steps (a first install).
#
# Options:
#   --root DIR      install into DIR instead of / (an image, a chroot, a test); nothing is
#                   started and systemd is not asked anything
#   --prefix DIR    where releases live (default /opt/airlock)
#   --node PATH     the Node.js binary the units run (default: node on PATH; needs >= 20.19)
#   --sha256 HEX    expected SHA-256 of the tarball (instead of SHA256SUMS)
#   --no-restart    on an upgrade, do not restart running units
#   --uninstall     remove units, binaries and releases; keep /etc/airlock and /var/lib/airlock
#   --purge         with --uninstall: also remove configuration, data and the users
#   -h, --help      this text
set -eu

ROOT=
PREFIX=/opt/airlock
NODE=
SHA256=
TARBALL=
ACTION=install
PURGE=no
RESTART=yes
UNITS="airlock-server airlock-runner airlock-sandbox"

say() { printf '[airlock install] %s\n' "$*"; }
die() {
	printf '[airlock install] error: %s\n' "$*" >&2
	exit 1
}
usage() {
	sed -n '2,/^set -eu/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
	case "$1" in
	--root)
		[ $# -ge 2 ] || die "--root needs a directory"
		ROOT=$2
		shift 2
		;;
	--prefix)
		[ $# -ge 2 ] || die "--prefix needs a directory"
		PREFIX=$2
		shift 2
		;;
	--node)
		[ $# -ge 2 ] || die "--node needs a path"
		NODE=$2
		shift 2
		;;
	--sha256)
		[ $# -ge 2 ] || die "--sha256 needs a hex digest"
		SHA256=$2
		shift 2
		;;
	--no-restart)
		RESTART=no
		shift
		;;
	--uninstall)
		ACTION=uninstall
		shift
		;;
	--purge)
		PURGE=yes
		shift
		;;
	-h | --help)
		usage
		exit 0
		;;
	-*) die "unknown option $1 (see --help)" ;;
	*)
		[ -z "$TARBALL" ] || die "more than one tarball given"
		TARBALL=$1
		shift
		;;
	esac
done

case "$PREFIX" in
/*) ;;
*) die "--prefix must be an absolute path" ;;
esac
if [ -n "$ROOT" ]; then
	[ -d "$ROOT" ] || die "--root $ROOT is not a directory"
	ROOT=$(cd "$ROOT" && pwd)
	[ "$ROOT" != / ] || ROOT=
fi
if [ -z "$ROOT" ] && [ "$(id -u)" -ne 0 ]; then
	die "installing into / needs root (or use --root DIR)"
fi

# A live system: installing into / on a host whose init is systemd.
LIVE=no
if [ -z "$ROOT" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
	LIVE=yes
fi

# Numeric id of a user or group in the target's own passwd/group files (not the host's).
id_in_root() { # FILE NAME
	if [ "$2" = root ]; then
		echo 0
	elif [ -f "$ROOT/etc/$1" ]; then
		awk -F: -v n="$2" '$1 == n { print $3; exit }' "$ROOT/etc/$1"
	fi
}

install_file() { # MODE OWNER:GROUP-NAMES SRC DEST
	mode=$1
	owner=$(id_in_root passwd "${2%%:*}")
	group=$(id_in_root group "${2##*:}")
	cp "$3" "$4.tmp.$$"
	chmod "$mode" "$4.tmp.$$"
	if [ "$(id -u)" -eq 0 ] && [ -n "$owner" ] && [ -n "$group" ]; then
		chown "$owner:$group" "$4.tmp.$$"
	fi
	mv -f "$4.tmp.$$" "$4"
}

remove_users() {
	if [ "$LIVE" = yes ] || [ -z "$ROOT" ]; then
		for u in airlock-runner airlock; do
			if id "$u" >/dev/null 2>&1; then userdel "$u" || say "could not remove user $u"; fi
		done
	else
		for f in passwd group shadow gshadow; do
			[ -f "$ROOT/etc/$f" ] || continue
			sed -i -e '/^airlock:/d' -e '/^airlock-runner:/d' "$ROOT/etc/$f"
		done
	fi
}

uninstall() {
	if [ "$LIVE" = yes ]; then
		for u in $UNITS; do
			systemctl disable --now "$u.service" >/dev/null 2>&1 || true
		done
	fi
	for u in $UNITS; do
		rm -f "$ROOT/etc/systemd/system/$u.service"
	done
	rm -f "$ROOT/usr/lib/sysusers.d/airlock.conf"
	if [ -L "$ROOT/usr/local/bin/airlock" ]; then rm -f "$ROOT/usr/local/bin/airlock"; fi
	rm -rf "${ROOT:?}$PREFIX"
	if [ "$LIVE" = yes ]; then systemctl daemon-reload; fi
	if [ "$PURGE" = yes ]; then
		rm -rf "$ROOT/etc/airlock" "$ROOT/var/lib/airlock"
		remove_users
		say "removed airlock, its configuration, data and users"
	else
		say "removed airlock; kept configuration in $ROOT/etc/airlock and data in $ROOT/var/lib/airlock (--purge removes them)"
	fi
}

if [ "$ACTION" = uninstall ]; then
	uninstall
	exit 0
fi

# --- install or upgrade -------------------------------------------------------------------
[ -n "$TARBALL" ] || die "no tarball given (see --help)"
[ -f "$TARBALL" ] || die "$TARBALL does not exist"
for tool in tar sha256sum awk sed; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool is required"
done

# 1. Checksum.
actual=$(sha256sum "$TARBALL" | awk '{ print $1 }')
if [ -z "$SHA256" ]; then
	sums="$(dirname "$TARBALL")/SHA256SUMS"
	[ -f "$sums" ] || die "no SHA256SUMS next to $TARBALL; pass --sha256 HEX from a trusted source"
	SHA256=$(awk -v f="$(basename "$TARBALL")" '$2 == f || $2 == "*" f { print $1; exit }' "$sums")
	[ -n "$SHA256" ] || die "$sums has no line for $(basename "$TARBALL")"
fi
if [ "$actual" != "$SHA256" ]; then
	die "SHA-256 mismatch for $TARBALL: expected $SHA256, got $actual; not installing"
fi
say "checksum ok ($actual)"

# 2. Node.js for the units.
if [ -z "$NODE" ]; then NODE=$(command -v node || true); fi
[ -n "$NODE" ] || die "Node.js not found; install Node.js >= 20.19 or pass --node PATH"
case "$NODE" in
/*) ;;
*) die "--node must be an absolute path" ;;
esac
if [ -x "$NODE" ]; then
	"$NODE" -e 'const [a,b]=process.versions.node.split(".").map(Number);process.exit(a>20||(a===20&&b>=19)?0:1)' ||
		die "$NODE is $("$NODE" --version); airlock needs Node.js >= 20.19"
elif [ -z "$ROOT" ]; then
	die "$NODE is not executable"
fi

# 3. Unpack into a new release folder, then switch "current" in one rename.
tmp=$(mktemp -d "${TMPDIR:-/tmp}/airlock-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
tar -xzf "$TARBALL" -C "$tmp" --no-same-owner
set -- "$tmp"/airlock-*
if [ $# -ne 1 ] || [ ! -f "$1/RELEASE" ]; then
	die "$TARBALL is not an airlock release (no airlock-*/RELEASE)"
fi
unpacked=$1
version=$(awk 'NR == 1 { print $2 }' "$unpacked/RELEASE")
[ -n "$version" ] || die "no version in RELEASE"

releases="$ROOT$PREFIX/releases"
previous=
if [ -L "$ROOT$PREFIX/current" ]; then
	previous=$(basename "$(readlink "$ROOT$PREFIX/current")")
fi
mkdir -p "$releases"
chmod 755 "$ROOT$PREFIX" "$releases"
rm -rf "$releases/$version.new"
mv "$unpacked" "$releases/$version.new"
chmod -R u+rwX,go+rX,go-w "$releases/$version.new"
if [ -d "$releases/$version" ]; then rm -rf "${releases:?}/$version"; fi
mv "$releases/$version.new" "$releases/$version"
ln -sfn "releases/$version" "$ROOT$PREFIX/current.new"
mv -T "$ROOT$PREFIX/current.new" "$ROOT$PREFIX/current"
if [ -n "$previous" ] && [ "$previous" != "$version" ]; then
	say "upgraded $previous -> $version (previous release kept in $PREFIX/releases/$previous for rollback)"
	# Keep the current and the previous release; older ones go.
	for old in "$releases"/*; do
		b=$(basename "$old")
		[ "$b" = "$version" ] || [ "$b" = "$previous" ] || rm -rf "$old"
	done
else
	say "installed $version in $PREFIX/releases/$version"
fi
rel="$ROOT$PREFIX/current"

# 4. Users.
mkdir -p "$ROOT/usr/lib/sysusers.d"
install_file 0644 root:root "$rel/deploy/sysusers/airlock.conf" "$ROOT/usr/lib/sysusers.d/airlock.conf"
if command -v systemd-sysusers >/dev/null 2>&1; then
	if [ -n "$ROOT" ]; then
		mkdir -p "$ROOT/etc"
		systemd-sysusers --root="$ROOT" "$ROOT/usr/lib/sysusers.d/airlock.conf"
	else
		systemd-sysusers /usr/lib/sysusers.d/airlock.conf
	fi
elif [ -z "$ROOT" ]; then
	for u in airlock airlock-runner; do
		id "$u" >/dev/null 2>&1 || useradd --system --user-group --no-create-home \
			--home-dir "/var/lib/airlock/${u#airlock-}" --shell /usr/sbin/nologin "$u"
	done
else
	say "systemd-sysusers not found: users are created when the target boots (sysusers.d)"
fi

# 5. Units, configuration, state directories.
mkdir -p "$ROOT/etc/systemd/system"
for u in $UNITS; do
	sed -e "s#@NODE@#$NODE#g" -e "s#@PREFIX@#$PREFIX#g" "$rel/deploy/systemd/$u.service" >"$tmp/$u.service"
	install_file 0644 root:root "$tmp/$u.service" "$ROOT/etc/systemd/system/$u.service"
done

mkdir -p "$ROOT/etc/airlock"
chmod 755 "$ROOT/etc/airlock"
config() { # NAME MODE OWNER:GROUP
	src="$rel/deploy/config/$1"
	dst="$ROOT/etc/airlock/$1"
	before="$releases/$previous/deploy/config/$1"
	if [ ! -e "$dst" ]; then
		install_file "$2" "$3" "$src" "$dst"
	elif cmp -s "$src" "$dst"; then
		: # unchanged default
	elif [ -n "$previous" ] && [ -f "$before" ] && cmp -s "$src" "$before"; then
		: # the operator's edits, and the default did not change in this release
	else
		install_file "$2" "$3" "$src" "$dst.dist"
		say "kept your $1; this release's default is in $1.dist"
	fi
}
config server.env 0640 root:airlock
config runner.env 0640 root:airlock-runner
config runner.yaml 0640 root:airlock-runner
config sandbox.env 0600 root:root

statedir() { # DIR OWNER
	mkdir -p "$ROOT/var/lib/airlock/$1"
	chmod 700 "$ROOT/var/lib/airlock/$1"
	o=$(id_in_root passwd "$2")
	g=$(id_in_root group "$2")
	if [ "$(id -u)" -eq 0 ] && [ -n "$o" ] && [ -n "$g" ]; then chown "$o:$g" "$ROOT/var/lib/airlock/$1"; fi
}
mkdir -p "$ROOT/var/lib/airlock"
chmod 755 "$ROOT/var/lib/airlock"
statedir server airlock
statedir runner airlock-runner
statedir sandbox root

mkdir -p "$ROOT/usr/local/bin"
ln -sfn "$PREFIX/current/packages/cli/bin/airlock.js" "$ROOT/usr/local/bin/airlock"

# 6. Tell systemd, restart what ran before an upgrade.
if [ "$LIVE" = yes ]; then
	systemctl daemon-reload
	if [ -n "$previous" ] && [ "$RESTART" = yes ]; then
		for u in $UNITS; do
			if systemctl is-active --quiet "$u.service"; then
				say "restarting $u"
				systemctl restart "$u.service"
			fi
		done
	fi
fi

if [ -z "$previous" ]; then
	cat <<EOF
[airlock install] next steps:
  1. edit /etc/airlock/server.env (and runner.env, runner.yaml, sandbox.env on hosts that run them)
  2. systemctl enable --now airlock-server
  3. airlock doctor            # checks this host and prints what to fix
  Runner hosts: register once, then enable the unit (docs/operations.md, "Runners").
EOF
fi
