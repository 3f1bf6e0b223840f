#!/usr/bin/env bash
# flip.sh - a failing candidate is taken out before most users notice:
#   - the instant flip: N failures in a row from green on one worker set its
#     weight to 0 at once; the rollback is recorded (fast-flip, with the
#     numbers), persisted, and no later request reaches green;
#   - a dead candidate (connect refused): its requests are retried on stable,
#     none fails, and the flip still takes it out;
#   - the detector: a candidate that answers but slowly (p99 over
#     max_p99_ms) is rolled back once min_requests came in;
#   - after a rollback, a new weight is judged on new traffic only;
#   - failures under every threshold, or from the stable pool, change nothing.
. "$(dirname "$0")/lib.sh"
sy_init "$@"

sy_need_ctl

FAILURES=5
sy_backends
SOCK="$SY_TMP/ctl.sock"
STATE="$SY_TMP/state.json"
CONF="$SY_TMP/flip.json"
sy_config "$CONF" port="$PORT" blue="blue-1@$BLUE" green="green-1@$GREEN" percent=0 \
    extra="\"admin\": {\"socket\": \"$SOCK\"}, \"state\": {\"file\": \"$STATE\"},
  \"detector\": {\"window_s\": 10, \"min_requests\": 40, \"max_p99_ms\": 100,
                 \"fast_rollback\": {\"consecutive_failures\": $FAILURES}}"
sy_proxy "$CONF" "$PORT" || sy_finish

ctl()
{
    OUT=$("$CTL" -s "$SOCK" "$@" 2>&1)
    RC=$?
}

state_field()
{
    "$CTL" -s "$SOCK" --json status | jq -r ".state.$1"
}

# load N TAG: N requests on 4 parallel keep-alive connections; prints
# "STATUS BACKEND" per request.
load()
{
    local n=$1 tag=$2 c i pids=()
    for ((c = 0; c < 4; c++)); do
        for ((i = c; i < n; i += 4)); do
            echo "url = \"http://127.0.0.1:$PORT/$tag/$i\""
            echo 'output = "/dev/null"'
        done | sy_curl -K - -w '%{http_code} %header{x-backend}\n' &
        pids+=($!)
    done
    wait "${pids[@]}" # not a bare wait: the proxy and backends are children too
}

# --- The instant flip on 500s ----------------------------------------------
ctl weight 50 --reason "canary"
sy_fault "$GREEN" '{"fail_rate": 1.0, "fail_status": 500}'
out=$(load 400 fast)
green_500=$(grep -c '^500 green-1$' <<<"$out")
sy_range "green's 500s reach at most $FAILURES per worker before the flip" "$green_500" 1 \
    $((2 * FAILURES))
sy_eq "the candidate's weight is 0" "$(state_field candidate_percent)" 0
sy_eq "... phase rolled_back" "$(state_field phase)" rolled_back
sy_eq "... recorded as the fast flip" "$(state_field updated_by)" fast-flip
sy_match "... with the numbers in the reason" "$(state_field reason)" \
    "^worker [0-9]+ saw $FAILURES failures in a row from candidate green \(last: green-1: status 500\)$"
sy_eq "... persisted" "$(jq -r .phase "$STATE" 2>/dev/null)" rolled_back
last_green=$(grep -n 'green-1$' <<<"$out" | tail -n 1 | cut -d: -f1)
after=$(tail -n +"$((last_green + 1))" <<<"$out" | grep -c 'green-1$')
sy_eq "no request reaches green after the flip" "$after" 0
sy_eq "every other request was answered 200 by blue" "$(grep -c '^200 blue-1$' <<<"$out")" \
    $((400 - green_500))
sy_fault "$GREEN" '{"fail_rate": 0}'

# --- A dead candidate: retried on stable, then flipped ----------------------
ctl weight 50 --reason "again"
sy_stop "$(pgrep -f "sy-backend --listen 127.0.0.1:$GREEN")" >/dev/null
out=$(load 200 dead)
sy_eq "with green dead, every request is answered 200 by blue" "$(grep -c '^200 blue-1$' <<<"$out")" 200
sy_eq "... and the flip took green out" "$(state_field updated_by) $(state_field candidate_percent)" \
    "fast-flip 0"
sy_match "... naming the connect failure" "$(state_field reason)" "last: green-1: .*refused"
sy_backend green-1 "$GREEN"

# --- The detector: slow but answering ----------------------------------------
ctl weight 50 --reason "third try"
sy_fault "$GREEN" '{"latency_ms": 300}'
rolled=
for ((round = 0; round < 20; round++)); do
    load 40 slow >/dev/null
    if [[ "$(state_field phase)" == rolled_back ]]; then
        rolled=1
        break
    fi
done
sy_eq "a slow candidate is rolled back by the detector" "$rolled" 1
sy_eq "... recorded as the detector" "$(state_field updated_by)" detector
sy_match "... with its p99 in the reason" "$(state_field reason)" \
    "^candidate green over the last [0-9]+ s: p99 [0-9.]+ ms over max_p99_ms 100$"
sy_fault "$GREEN" '{"latency_ms": 0}'

# --- A new attempt is judged on new traffic ---------------------------------
ctl weight 50 --reason "fixed"
out=$(load 200 fixed)
sy_eq "after the fix, a new weight holds (old failures do not count)" \
    "$(state_field phase) $(state_field candidate_percent)" "idle 50"
sy_match "... and green serves again" "$out" "200 green-1"

# --- A few failures, under every threshold, are not a rollback -------------
# With all traffic on green: 300 good answers, 3 failures (fewer than 5 in
# a row), 100 good ones: 0.7 % errors, under max_error_rate at every tick.
ctl weight 100 --reason "all green"
load 300 good >/dev/null
sy_fault "$GREEN" '{"fail_rate": 1.0, "fail_status": 500}'
codes=$(for i in 1 2 3; do sy_curl -o /dev/null -w '%{http_code} ' "http://127.0.0.1:$PORT/few/$i"; done)
sy_fault "$GREEN" '{"fail_rate": 0}'
load 100 good-again >/dev/null
sy_eq "3 failures from green" "$codes" "500 500 500 "
sy_eq "... under every threshold: no rollback" \
    "$(state_field phase) $(state_field candidate_percent)" "idle 100"
ctl weight 50 --reason "half"

# --- Stable's failures are not the candidate's ------------------------------
generation=$(state_field generation)
sy_fault "$BLUE" '{"fail_rate": 1.0, "fail_status": 503}'
load 100 stable-fails >/dev/null
sy_eq "failures of the stable pool change nothing" "$(state_field generation)" "$generation"
sy_fault "$BLUE" '{"fail_rate": 0}'

sy_stop "$SY_PROXY_PID"
sy_eq "switchyard exits 0" "$SY_RC" 0
sy_finish
