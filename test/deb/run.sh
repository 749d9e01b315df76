#!/usr/bin/env bash
#
# test/deb/run.sh: the Debian package postgresql-15-unlearn (make deb),
# installed into the system.  Run by `make deb-test` and `make test`; needs
# root.  The installed extension is shared by every build on the machine:
# hold /tmp/unlearn-pg.lock around it.
#
#   1. apt-get install of the .deb from DEB_OUT (its dependencies resolved
#      by apt): the package owns unlearn.so and the extension files, which
#      dpkg --verify finds intact; the package's version and META.json's
#      are unlearn.control's.
#   2. A throwaway server "deb" (/tmp/unlearn-deb, test/lib_server.sh, the
#      library preloaded): CREATE EXTENSION unlearn at the control file's
#      default version; a tiny model trained on a synthetic table (OpenBLAS
#      loads); predictions agree with unlearn_evaluate; a DELETE unlearned
#      by the background worker (unlearn_wait, unlearn_confirm_forgotten).
#   3. Always, even after a failure: the package is purged and
#      `make install` puts the build of this tree back.
#
# Prints "N passed, M failed" last; exits non-zero if anything failed.
# Environment: DEB_OUT  directory holding postgresql-15-unlearn_*.deb
# (required; `make deb-test` builds it and sets it).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=SCRIPTDIR/../lib_server.sh
. "$root/test/lib_server.sh"
# shellcheck source=SCRIPTDIR/../lib_check.sh
. "$root/test/lib_check.sh"

PKG=postgresql-15-unlearn
out=${DEB_OUT:?set DEB_OUT to the directory of the .deb (make deb-test does)}
check_start deb

# after the server: the package is purged and this tree's build installed again
check_after_stop() {
	if dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null | grep -q installed; then
		DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 purge -y -qq "$PKG" >"$out/dpkg-purge.log" 2>&1 || bad "apt-get purge $PKG"
	fi
	make -C "$root" -s install >/dev/null || bad "make install after removing the package"
}

# q SQL: values from the server, unaligned; fails (set -e) on error.
q() { upsql -At -q -c "$1"; }

# ---------------------------------------------------------------- 1. install
if [ "$(id -u)" -ne 0 ]; then
	echo "deb: installing a package needs root" >&2
	exit 1
fi
deb=$(ls "$out"/${PKG}_*.deb 2>/dev/null | head -n 1)
if [ -z "$deb" ]; then
	echo "deb: no ${PKG}_*.deb in $out: run 'make deb DEB_OUT=$out'" >&2
	exit 1
fi
trap check_finish EXIT
echo "==== install $deb ===="
DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "$deb" >"$out/apt-install.log" 2>&1 ||
	{ cat "$out/apt-install.log"; exit 1; }
pkglibdir=$("$UNLEARN_PG_CONFIG" --pkglibdir)
sharedir=$("$UNLEARN_PG_CONFIG" --sharedir)
check "the package owns unlearn.so and unlearn.control" "$PKG: $pkglibdir/unlearn.so|$PKG: $sharedir/extension/unlearn.control" \
	"$(dpkg -S "$pkglibdir/unlearn.so" 2>&1)|$(dpkg -S "$sharedir/extension/unlearn.control" 2>&1)"
check "dpkg --verify: the installed files are the package's" "" "$(dpkg --verify "$PKG" 2>&1)"
check "runtime dependency on libopenblas0" "1" \
	"$(dpkg-query -W -f='${Depends}' "$PKG" | tr ',' '\n' | grep -c '^ *libopenblas0$')"
# one version everywhere: control file, package (debian/changelog), META.json (semver x.y.0)
version=$(sed -n "s/^default_version *= *'\(.*\)'/\1/p" "$root/unlearn.control")
check "package and META.json versions match unlearn.control" "$version|$version.0|$version.0" \
	"$(dpkg-query -W -f='${Version}' "$PKG")|$(python3 -c 'import json, sys; m = json.load(open(sys.argv[1]));
print(m["version"] + "|" + m["provides"]["unlearn"]["version"])' "$root/META.json")"

# ---------------------------------------------------------------- 2. use it
unlearn_server_start deb "unlearn.naptime = 1s" "unlearn.feature_retention = 3600" \
	"unlearn.exact_when_cheaper = off" "unlearn.consolidate_after = 0" "unlearn.consolidate_drop = 0" "unlearn.consolidate_idle = 0" || exit 1
q "CREATE EXTENSION unlearn"
check "CREATE EXTENSION: the default version" "$version" \
	"$(q "SELECT extversion FROM pg_extension WHERE extname = 'unlearn'")"
# 3 clusters in 2-D with deterministic jitter, as in sql/01_train.sql
q "CREATE TABLE blobs AS
   SELECT i::bigint AS id,
          ARRAY[(i % 3) * 2.0 + 0.4 * sin(i * 12.9898),
                CASE WHEN i % 3 = 1 THEN 2.0 ELSE 0.0 END + 0.4 * cos(i * 78.233)]::real[] AS features,
          (i % 3) AS label
   FROM generate_series(1, 300) i;
   ALTER TABLE blobs ADD PRIMARY KEY (id)"
check "unlearn_train: version|rows|fits" "1|300|t" \
	"$(q "SELECT version, rows, train_accuracy > 0.95 FROM unlearn_train('m', 'blobs', 'id', 'features', 'label',
	       hidden => '{16}', epochs => 30, options => '{\"seed\": 7, \"lr\": 0.01, \"batch_size\": 32}')")"
check "unlearn_predict agrees with unlearn_evaluate" \
	"$(q "SELECT correct FROM unlearn_evaluate('m', 'blobs')")" \
	"$(q "SELECT count(*) FROM blobs WHERE unlearn_predict('m', features) = label")"
check "unlearn_predict of a point in cluster 2" "2" "$(q "SELECT unlearn_predict('m', '{4, 0}'::real[])")"
q "DELETE FROM blobs WHERE id IN (5, 6, 7)"
check "the worker unlearned a DELETE (unlearn_wait)" "t" "$(q "SELECT unlearn_wait('m', '60 s')")"
check "unlearn_confirm_forgotten" "t" "$(q "SELECT unlearn_confirm_forgotten('m')")"
