#!/bin/sh
# Install loupe into a scratch DESTDIR, build tests/plugin/example/hello_plugin.c against
# the installed headers through loupe-plugin.pc (as a third party would), then list and
# call it through the installed loupe. Also checks the CLI's plugin conventions.
# Usage: test_out_of_tree.sh BUILD_DIR SOURCE_DIR FIXTURE_DIR BAD_PLUGIN_DIR
set -eu
build=$1 src=$2 fixture=$3 baddir=$4
tmp=$(mktemp -d "${TMPDIR:-/tmp}/loupe-oot-XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
fail() { echo "FAIL $*"; exit 1; }
ok() { echo "ok   $*"; }

DESTDIR="$tmp/dest" meson install -C "$build" --no-rebuild --quiet >"$tmp/install.log" 2>&1 ||
    { cat "$tmp/install.log"; fail "meson install"; }
pc=$(find "$tmp/dest" -name loupe-plugin.pc | head -n 1)
[ -n "$pc" ] || fail "loupe-plugin.pc is not installed"
ok "installed $(echo "$pc" | sed "s|$tmp/dest||")"
prefix=$(sed -n 's/^prefix=//p' "$pc")
find "$tmp/dest" -name logit_lens.so | grep -q "/loupe/plugins/logit_lens.so" || fail "logit_lens.so not installed in LIBDIR/loupe/plugins"
ok "logit_lens.so installed in LIBDIR/loupe/plugins"
loupe="$tmp/dest$prefix/bin/loupe"
[ -x "$loupe" ] || fail "no installed loupe at $loupe"

cflags=$(PKG_CONFIG_PATH=$(dirname "$pc") pkg-config --define-variable=prefix="$tmp/dest$prefix" --cflags loupe-plugin)
mkdir -p "$tmp/plugins"
${CC:-cc} -shared -fPIC -fvisibility=hidden -std=c17 -Wall -Wextra -Werror $cflags \
    -o "$tmp/plugins/hello.so" "$src/tests/plugin/example/hello_plugin.c" || fail "building hello.so with cflags '$cflags'"
ok "hello.so built out of tree with: $cflags"
# The compile must not have used the source tree's headers.
case "$cflags" in *"$src/core"*) fail "cflags point into the source tree" ;; esac

LOUPE_PLUGIN_PATH="$tmp/plugins" "$loupe" plugins >"$tmp/out" 2>"$tmp/err" || fail "loupe plugins exit $?"
grep -q "hello.greet" "$tmp/out" || { cat "$tmp/out"; fail "loupe plugins does not list hello.greet"; }
grep -q "^hello 0.1.0" "$tmp/out" || fail "no 'hello 0.1.0' line"
grep -q "$tmp/plugins/hello.so" "$tmp/out" || fail "path of hello.so not shown"
[ ! -s "$tmp/err" ] || { cat "$tmp/err"; fail "unexpected diagnostics"; }
ok "LOUPE_PLUGIN_PATH=DIR loupe plugins lists hello.greet"

LOUPE_PLUGIN_PATH="$tmp/plugins" "$loupe" call hello.greet "$fixture" name=tester >"$tmp/out" || fail "loupe call exit $?"
grep -q "greeting: hello, tester, from a 2-layer" "$tmp/out" || { cat "$tmp/out"; fail "greeting"; }
grep -q "n_layers: 2" "$tmp/out" || fail "n_layers"
ok "loupe call hello.greet FIXTURE name=tester"

LOUPE_PLUGIN_PATH="$tmp/plugins" "$loupe" call hello.greet --json "$fixture" >"$tmp/out" || fail "--json exit $?"
grep -q '"value":[[:space:]]*"hello, world, from' "$tmp/out" || { cat "$tmp/out"; fail "--json greeting"; }
ok "loupe call --json"

LOUPE_PLUGIN_PATH="$tmp/plugins" "$loupe" call hello.greet --help >"$tmp/out" || fail "--help exit $?"
grep -q "name  *string  *\"world\"  *who to greet" "$tmp/out" || { cat "$tmp/out"; fail "method help table"; }
ok "loupe call hello.greet --help shows the parameter table"

set +e
LOUPE_PLUGIN_PATH="$tmp/plugins" "$loupe" call hello.greet "$fixture" nme=x >/dev/null 2>"$tmp/err"; rc=$?
set -e
[ $rc -eq 2 ] && grep -q "^loupe: error: hello.greet has no parameter 'nme'; its parameters: name" "$tmp/err" ||
    { cat "$tmp/err"; fail "unknown parameter: exit $rc"; }
ok "unknown parameter: exit 2, one line listing the valid ones"

set +e
"$loupe" call nope.run "$fixture" >/dev/null 2>"$tmp/err"; rc=$?
set -e
[ $rc -eq 2 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -q "no method 'nope.run'" "$tmp/err" ||
    { cat "$tmp/err"; fail "unknown method: exit $rc"; }
ok "unknown method: exit 2"

# broken plugins on the path: diagnostics on stderr, one line per bad file, exit 0
LOUPE_PLUGIN_PATH="$baddir:$tmp/plugins" "$loupe" plugins >"$tmp/out" 2>"$tmp/err" || fail "loupe plugins with bad plugins: exit $?"
n=$(grep -c "^loupe: warning: $baddir/" "$tmp/err" || true)
[ "$n" -eq 9 ] || { cat "$tmp/err"; fail "expected 9 diagnostics, got $n"; }
grep -q "hello.greet" "$tmp/out" && grep -q "good.echo" "$tmp/out" || fail "good plugins missing next to bad ones"
ok "bad plugins: 9 diagnostic lines on stderr, good ones listed, exit 0"
echo "all out-of-tree checks passed"
