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
trap '$T kill-server 2>/dev/null' EXIT
$T new-session -d -s keep -x 80 -y 24 "sleep 600" # keeps the server up between sessions
fails=0 passes=0
ok() { passes=$((passes + 1)); echo "ok   $1"; }
bad() { fails=$((fails + 1)); echo "FAIL $1"; echo "----- screen -----"; $T capture-pane -p -t ui 2>/dev/null; echo "------------------"; }
screen() { $T capture-pane -p -t ui; }
# wait_for REGEX [seconds]: until the screen matches
wait_for() {
    local i
    for ((i = 0; i < ${2:-10} * 10; i++)); do
        screen | grep -qE -- "$1" && return 0
        sleep 0.1
    done
    return 1
}
check() { if wait_for "$2" "${3:-10}"; then ok "$1"; else bad "$1 (wanted /$2/)"; fi; }
start() { # start TERM COLSxROWS [env...]
    local term=$1 w=${2%x*} h=${2#*x}
    shift 2
    $T kill-session -t ui 2>/dev/null
    $T new-session -d -s ui -x "$w" -y "$h" \
        "trap '' INT; env TERM=$term $* '$LOUPE' ui '$MODEL'; echo EXIT=\$?; sleep 60"
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
        check "$term: Lua console placeholder" 'Lua console arrives with the Lua binding'
        # resize 80x24 -> 200x60 -> 80x24 in the lens view
        $T send-keys -t ui 2
        $T resize-window -t ui -x 200 -y 60
        check "$term: 200x60 redraws the lens" '^│out .*·time'
        check "$term: 200x60 puts the cursor's top-k beside the grid" '││ ?1 ·time'
        $T resize-window -t ui -x 80 -y 24
        check "$term: back at 80x24 the lens is legible" '^│out .*·time'
        if [ "$(screen | wc -L)" -le 80 ]; then ok "no line wider than 80 after the resize"; else bad "lines wider than 80"; fi
        for v in 1 3 4 5 6; do
            $T send-keys -t ui $v
            check "$term: view $v legible at 80x24 after the resize" "^ loupe .*stories260K|stories260K" 5
        done
        $T send-keys -t ui 1
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
