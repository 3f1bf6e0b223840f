#!/usr/bin/env bash
# state.sh - the state file decides the split at start-up:
#   - a readable state file wins over routing.candidate_percent;
#   - a missing one means "start from the config";
#   - a corrupt or torn one is reported, kept aside as FILE.corrupt, and the
#     config is used: the proxy still starts and serves.
. "$(dirname "$0")/lib.sh"
sy_init "$@"

sy_backends
STATE="$SY_TMP/switchyard.state.json"
sy_config "$SY_TMP/state.json" port="$PORT" blue="blue-1@$BLUE" green="green-1@$GREEN" \
    percent=0 extra="\"state\": {\"file\": \"$STATE\"}"

# requests TAG: 50 requests on one connection; prints the X-Backend of each.
requests()
{
    for ((i = 0; i < 50; i++)); do
        echo "url = \"http://127.0.0.1:$PORT/$1/$i\""
        echo 'output = "/dev/null"'
    done | sy_curl -K - -w '%header{x-backend}\n'
}

# --- no state file: the config (0 %) --------------------------------------------------
sy_proxy "$SY_TMP/state.json" "$PORT" proxy-none || sy_finish
out=$(requests n)
sy_eq "no state file: all 50 requests on blue (the config's 0 %)" "$(grep -c '^blue-1$' <<<"$out")" 50
sy_match "no state file: the log says so" "$(cat "$SY_TMP/proxy-none.log")" 'does not exist yet'
sy_stop "$SY_PROXY_PID" 10

# --- a state file at 100 % green wins over the config ----------------------------------------
printf '%s' '{"stable": "blue", "candidate_bp": 10000, "phase": "idle", "step": 0,
 "generation": 7, "updated_by": "uid:0", "reason": "test", "updated_ms": 1763900000000}' >"$STATE"
sy_proxy "$SY_TMP/state.json" "$PORT" proxy-file || sy_finish
out=$(requests f)
sy_eq "state file at 100 %: all 50 requests on green" "$(grep -c '^green-1$' <<<"$out")" 50
sy_match "state file: the log names its generation" "$(cat "$SY_TMP/proxy-file.log")" \
    'generation 7, stable blue, candidate 100\.00%'
sy_stop "$SY_PROXY_PID" 10

# --- a torn state file: reported, the config is used ---------------------------------------
printf '%s' '{"stable": "blue", "candidate_bp": 10000, "pha' >"$STATE"
sy_proxy "$SY_TMP/state.json" "$PORT" proxy-torn || sy_finish
out=$(requests t)
sy_eq "torn state file: the proxy serves, from the config (all blue)" \
    "$(grep -c '^blue-1$' <<<"$out")" 50
sy_match "torn state file: reported as an error naming the file" \
    "$(cat "$SY_TMP/proxy-torn.log")" "error: state: .*switchyard\\.state\\.json"
sy_eq "torn state file: kept aside as .corrupt before anything overwrites it" \
    "$(cat "$STATE.corrupt" 2>/dev/null)" '{"stable": "blue", "candidate_bp": 10000, "pha'
sy_stop "$SY_PROXY_PID" 10
sy_eq "torn state file: the proxy exits 0 on SIGTERM" "$SY_RC" 0

sy_finish
