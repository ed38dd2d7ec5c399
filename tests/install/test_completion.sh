#!/bin/bash
# test_completion.sh COMPLETION NETDIFFUS — loads the generated bash completion into this
# bash and asks it what a user's TAB would: the subcommands, a subcommand's options (every
# long option its --help names), config keys after --set, and nothing but files after an
# option that takes a value.
set -eu
# shellcheck source=/dev/null
source "$1"
bin=$2
fail() { echo "FAIL: $*" >&2; exit 1; }
# complete WORDS...: the completions of the last word
complete_line() {
    COMP_WORDS=("$@")
    COMP_CWORD=$(($# - 1))
    COMPREPLY=()
    _netdiffus
    printf '%s\n' "${COMPREPLY[@]}"
}

got=$(complete_line netdiffus "")
for cmd in $("$bin" --help | awk '/^commands:/ {on = 1; next} on && /^$/ {exit} on {print $1}'); do
    grep -qx "$cmd" <<<"$got" || fail "subcommand $cmd not completed: $got"
done
[ "$(complete_line netdiffus re | sort)" = "$(printf 'render\nreplay')" ] || fail "netdiffus re<TAB>"

got=$(complete_line netdiffus -v replay --)
# the options --help describes: "  -s, --series FILE" and "      --mix CONF" lines
for opt in $("$bin" replay --help | grep -oE -- '^ +(-[a-z], )?--[a-z][a-z-]*' | grep -o -- '--.*'); do
    grep -qx -- "$opt" <<<"$got" || fail "replay option $opt not completed"
done
[ "$(complete_line netdiffus replay --max | sort)" = "$(printf -- '--max-bytes\n--max-flow-windows\n--max-packets')" ] ||
    fail "replay --max<TAB>"

got=$(complete_line netdiffus train --set capture.b)
grep -qx "capture.bin=" <<<"$got" || fail "--set capture.b<TAB>: $got"
got=$(complete_line netdiffus live --set "")
for key in capture.window train.checkpoint_every replay.seed live.checkpoint_every; do
    grep -qx "$key=" <<<"$got" || fail "--set key $key not completed"
done
[ -z "$(complete_line netdiffus replay --to p)" ] || fail "--to takes a value: files only"
echo "ok: subcommands, options and --set keys complete"
