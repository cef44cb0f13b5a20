#!/usr/bin/env bash
# The terminal UI end to end: the real binary inside tmux (its own socket), keys sent with
# send-keys, the screen read back with capture-pane. 80x24 and 200x60, 256 / 8 / no colours.
# Uses ../shared/models/stories260K ("Once upon a" -> " time"); skips (77) without it or tmux.
set -u
LOUPE=${1:?usage: test_ui_tmux.sh LOUPE}
MODEL=${LOUPE_SHARED:-$(dirname "$0")/../../../shared}/models/stories260K
command -v tmux >/dev/null || { echo "SKIP: tmux is not installed"; exit 77; }
[ -f "$MODEL/config.json" ] || { echo "SKIP: $MODEL is absent (../shared models)"; exit 77; }
SOCK=loupe-test-$$
T="tmux -L $SOCK"
STATE=$(mktemp -d) # the console's history goes to $XDG_STATE_HOME/loupe/history
trap '$T kill-server 2>/dev/null; rm -rf "$STATE"' EXIT
$T new-session -d -s keep -x 80 -y 24 "sleep 600" # keeps the server up between sessions
. "$(dirname "$0")/tmux_lib.sh"
start() { # start TERM COLSxROWS [env...]
    local term=$1 w=${2%x*} h=${2#*x}
    shift 2
    $T kill-session -t ui 2>/dev/null
    $T new-session -d -s ui -x "$w" -y "$h" \
        "trap '' INT; env TERM=$term XDG_STATE_HOME='$STATE' $* '$LOUPE' ui '$MODEL'; echo EXIT=\$?; sleep 60"
    $T set-option -t ui -g status off >/dev/null 2>&1
    wait_for 'Prompt' 20 || bad "UI did not start ($term $w x $h)"
}
alt_off() { [ "$($T display -p -t ui '#{alternate_on}')" = 0 ]; }

for mode in "xterm-256color" "xterm" "vt100 NO_COLOR=1" "screen-256color" "tmux-256color"; do
    term=${mode%% *}
    extra=""
    [ "$mode" != "$term" ] && extra=${mode#* }
    echo "# TERM=$term $extra"
    start "$term" 80x24 $extra
    $T send-keys -t ui -l "Once upon a"
    check "$term: prompt shows the top-1 prediction ·time" '^│ ?1 ·time +[0-9.]+%'
    check "$term: token strip shows tokens and ids" '·Once.*·upon' 
    $T send-keys -t ui Escape 2
    check "$term: logit lens, last layer predicts ·time" '^│out .*·time'
    $T send-keys -t ui '?'
    check "$term: help overlay lists the lens keys" 'target token'
    $T send-keys -t ui '?' 3
    check "$term: attention view" 'Attention: layer 0 head 0'
    check "$term: head scores without the plugin, or with it" 'plugin not available|Head scores'
    if [ "$term" = xterm-256color ]; then
        $T send-keys -t ui a
        check "$term: all heads small multiples" 'all heads'
        $T send-keys -t ui 5
        check "$term: plugins view lists logit_lens" 'logit_lens'
        # methods are listed in load order (plugins by name): move down to logit_lens.run
        n_before=$("$LOUPE" plugins 2>/dev/null | grep -oE '^  [a-z_]+\.[a-z_]+ ' | awk '$1 == "logit_lens.run" {print NR - 1; exit}')
        for _ in $(seq 1 "${n_before:-0}"); do $T send-keys -t ui Down; done
        $T send-keys -t ui Enter r
        check "$term: running logit_lens.run fills the results" 'kl: tensor \[6, 4\] \(layer,pos\)' 30
        $T send-keys -t ui NPage NPage
        check "$term: results scroll down to the top-k table" '·upon +407 +1 +1'
        $T send-keys -t ui 4
        check "$term: patching view says what is missing" 'dla.run +(not available|available)'
        $T send-keys -t ui 6
        check "$term: Lua console is bound to the model" 'Lua console · m = stories260K'
        # resize 80x24 -> 200x60 -> 80x24 in the lens view (the console takes digits as text:
        # F2-F7 switch views from there)
        $T send-keys -t ui F3
        $T resize-window -t ui -x 200 -y 60
        check "$term: 200x60 redraws the lens" '^│out .*·time'
        check "$term: 200x60 puts the cursor's top-k beside the grid" '││ ?1 ·time'
        $T resize-window -t ui -x 80 -y 24
        check "$term: back at 80x24 the lens is legible" '^│out .*·time'
        if [ "$(screen | wc -L)" -le 80 ]; then ok "no line wider than 80 after the resize"; else bad "lines wider than 80"; fi
        for v in 1 3 4 5 6 7; do
            $T send-keys -t ui $v
            check "$term: view $v legible at 80x24 after the resize" "^ loupe .*stories260K|stories260K" 5
        done
        $T send-keys -t ui F2
        check "$term: prompt view after the resize" '^│ ?1 ·time'
        $T resize-window -t ui -x 50 -y 12
        check "$term: too-small screen" 'terminal too small'
        $T resize-window -t ui -x 80 -y 24
        check "$term: recovers from too small" '^│ ?1 ·time'
    fi
    if [ "$mode" = "vt100 NO_COLOR=1" ]; then
        $T send-keys -t ui 2
        check "$term: monochrome lens shades cells with characters" "shade: low"
    fi
    $T send-keys -t ui q
    check "$term: q quits with status 0" 'EXIT=0'
    if alt_off; then ok "$term: terminal restored"; else bad "$term: still in the alternate screen"; fi
done

echo "# the Lua console"
# type LINE: send a line of Lua to the console and press Enter
type() { $T send-keys -t ui -l "$1"; $T send-keys -t ui Enter; }
start xterm-256color 80x24
$T send-keys -t ui F7 # the UI starts typing into the prompt: F7 (not 6) opens the console
check "console: greeting names the model" 'm = stories260K \(5 layers'
type 'print(1+1)'
check "console: print(1+1) shows 2" '^│2 +│$'
type 'm.cfg.n_layers'
check "console: an expression echoes its value (m.cfg.n_layers)" '^│> m.cfg.n_layers.*│$' && check "console: ... which is 5" '^│5 +│$'
type 'error("boom")'
check "console: error() shows the message" '^│stdin:1: boom +│$'
check "console: ... with a traceback" 'stack traceback:'
type 'print("still" .. " here")'
check "console: the next command still works" '^│still here +│$'
$T send-keys -t ui -l 'for i=1,2 do'
$T send-keys -t ui Enter
check "console: an unfinished chunk continues with >>" '^│>> +│$'
type 'print(i * 10)'
type 'end'
check "console: the multi-line chunk prints 10" '^│10 +│$' && check "console: ... and 20" '^│20 +│$'
type 'while true do end'
check "console: an endless loop shows running" 'running… .*Esc interrupts'
$T send-keys -t ui Escape
check "console: Esc interrupts it" '^│interrupted +│$'
type 'print("alive " .. 6*7)'
check "console: usable after the interrupt" '^│alive 42 +│$'
$T send-keys -t ui C-l
sleep 0.3
if screen | grep -q 'alive 42'; then bad "console: C-l empties the pane"; else ok "console: C-l empties the pane"; fi
type 'while true do end'
check "console: a second endless loop" 'running…'
$T send-keys -t ui C-c
check "console: Ctrl-C interrupts it too (the UI stays)" '^│interrupted +│$' 5
type 'print(m:to_str_tokens("Once upon")[2])'
check "console: m is the UI's model (tokenizer)" '^│·?Once +│$|^│ Once +│$'
printf 'print("script", ...)\nprint(#arg)\n' > "$STATE/s.lua"
type ":run $STATE/s.lua x y"
check "console: :run PATH ARGS runs a script with its arguments" '^│script +x +y +│$'
type ':run /nonexistent.lua'
check "console: :run of a missing file says so" 'cannot open /nonexistent.lua'
$T send-keys -t ui Up Up
check "console: Up recalls the history" '^│> :run \S*s.lua x y'
$T send-keys -t ui C-u
if grep -q 'print(1+1)' "$STATE/loupe/history" 2>/dev/null; then ok "console: history saved to \$XDG_STATE_HOME/loupe/history"; else bad "console: no history file"; fi
for i in $(seq 1 30); do type "print('line $i')"; done
check "console: long output scrolls to the bottom" '^│line 30 +│$'
$T send-keys -t ui PPage
check "console: PgUp scrolls back" '^│line 1[0-9] +│$' && check "console: ... with a marker" '↓ [0-9]+ more'
$T send-keys -t ui NPage NPage
check "console: PgDn returns to the bottom" '^│line 30 +│$'
$T send-keys -t ui F2
check "console: F2 leaves the console for the prompt view" '^│ ?1 ·'
$T send-keys -t ui F10
check "console: F10 quits" 'EXIT=0'

echo "# Ctrl-C and a crash restore the terminal"
start xterm-256color 80x24
$T send-keys -t ui C-c
check "Ctrl-C ends the UI with 130" 'EXIT=130'
if alt_off; then ok "terminal restored after Ctrl-C"; else bad "alternate screen left on after Ctrl-C"; fi
start xterm-256color 80x24 LOUPE_UI_TEST_CRASH=1 ASAN_OPTIONS=handle_segv=0
$T send-keys -t ui 'C-\'
check "a crash signal ends the UI" 'EXIT=1[0-9][0-9]'
if alt_off; then ok "terminal restored after a crash"; else bad "alternate screen left on after a crash"; fi

echo "$passes passed, $fails failed"
[ "$fails" = 0 ]
