#!/bin/sh
# test_install.sh BUILD SOURCE CC PKG_CONFIG [CFLAGS] — installs the build into a DESTDIR as
# `cmake --install` does for a user, and checks the installed tree: the program runs, the
# man pages render with their options, the completion and example configs are there, and
# docs/examples/read_ndd.c builds with the installed netdiffus.pc and headers alone and
# reads a dataset file the installed program made from a CSV written here. CFLAGS: more
# flags for the example (the sanitizers of the build).
set -eu
build=$1 src=$2 cc=$3 pkgconfig=$4 cflags=${5:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

root=$tmp/root prefix=/opt/nd
DESTDIR=$root cmake --install "$build" --prefix "$prefix" >"$tmp/install.log"
p=$root$prefix
for f in bin/netdiffus share/man/man1/netdiffus.1.gz share/man/man1/netdiffus-replay.1.gz \
    share/bash-completion/completions/netdiffus share/netdiffus/examples/default.yaml \
    include/netdiffus/nd.h include/netdiffus/capture.h include/netdiffus/replay.h \
    share/doc/netdiffus/read_ndd.c; do
    [ -f "$p/$f" ] || fail "$prefix/$f was not installed"
done
libdir=$(dirname "$(find "$p" -name netdiffus.pc)")/..
[ -f "$libdir/pkgconfig/netdiffus.pc" ] || fail "no netdiffus.pc under $prefix"
grep -qx "prefix=$prefix" "$libdir/pkgconfig/netdiffus.pc" || fail "netdiffus.pc: prefix is not $prefix"

"$p/bin/netdiffus" --version | grep -q '^netdiffus' || fail "netdiffus --version"

# one page per subcommand, each rendering the options of its --help
for cmd in $("$p/bin/netdiffus" --help | awk '/^commands:/ {on = 1; next} on && /^$/ {exit} on {print $1}'); do
    page=$p/share/man/man1/netdiffus-$cmd.1.gz
    [ -f "$page" ] || fail "no man page for $cmd"
    man -l -P cat "$page" >"$tmp/page" 2>/dev/null || fail "man -l $page"
    grep -Eq "^ +netdiffus-$cmd +- " "$tmp/page" || fail "$page: no NAME line"
    for opt in $("$p/bin/netdiffus" "$cmd" --help | grep -o -- '--[a-z][a-z-]*' | sort -u); do
        grep -q -- "$opt" "$tmp/page" || fail "$page lacks $opt of --help"
    done
done

# a dataset of three windows (two classes, 2 channels x 4 bins) from a series CSV
{
    echo "class,bytes_down_0,bytes_down_1,bytes_down_2,bytes_down_3,bytes_up_0,bytes_up_1,bytes_up_2,bytes_up_3"
    echo "web,100,200,300,400,10,10,10,10"
    echo "web,500,0,0,100,0,0,0,0"
    echo "dns,80,0,0,0,40,0,0,0"
} >"$tmp/series.csv"
"$p/bin/netdiffus" -q import --format csv --set capture.window=4 --set capture.min_active_bins=1 \
    "$tmp/series.csv" -o "$tmp/small.ndd" || fail "netdiffus import"

PKG_CONFIG_PATH=$libdir/pkgconfig PKG_CONFIG_SYSROOT_DIR=$root \
    "$pkgconfig" --cflags --libs netdiffus >"$tmp/flags" || fail "pkg-config netdiffus"
# shellcheck disable=SC2046,SC2086 # the flags are words
"$cc" -Wall -Werror $cflags -o "$tmp/read_ndd" "$src/docs/examples/read_ndd.c" $(cat "$tmp/flags") ||
    fail "read_ndd.c does not build against the installed tree ($(cat "$tmp/flags"))"
LD_LIBRARY_PATH=$libdir "$tmp/read_ndd" "$tmp/small.ndd" >"$tmp/out" || fail "read_ndd failed"
cat "$tmp/out"
grep -q "3 windows, 2 channels x 4 bins" "$tmp/out" || fail "read_ndd: wrong summary"
grep -q "^class web: 2 windows, bytes_down 200.0, bytes_up 5.0$" "$tmp/out" ||
    fail "read_ndd: wrong class web"
grep -q "^class dns: 1 windows, bytes_down 20.0, bytes_up 10.0$" "$tmp/out" ||
    fail "read_ndd: wrong class dns"
echo "ok: installed tree under DESTDIR, man pages, pkg-config, read_ndd"
