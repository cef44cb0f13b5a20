# Shared by the tmux UI tests (sourced after T="tmux -L SOCKET" is set): counters, the
# screen of session "ui", and waiting for it to match.
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
