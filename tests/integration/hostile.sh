#!/usr/bin/env bash
# hostile.sh - backends that break the protocol (sy-badbackend, one mode at a
# time on the same port behind one proxy). For each misbehaviour:
#   - the client gets a 502 when nothing had gone down yet, a 504 when the
#     head trickles past upstream_header, and a connection closed before the
#     end of the body when the head had already gone down;
#   - the access log names the failure;
#   - the server's counters in /metrics gain one error per request;
#   - the upstream connection is never used again: every request reaches the
#     backend on a connection of its own.
# The control case (--ok) shows that the proxy does reuse a good connection,
# so that the last check can fail.
. "$(dirname "$0")/lib.sh"
sy_init "$@"

BAD_BIN=$SY_BUILD/sy-badbackend
[[ -x "$BAD_BIN" ]] || {
    sy_not_ok "sy-badbackend is built" "missing: $BAD_BIN"
    sy_finish
}

sy_port BAD
sy_port GREEN
sy_port PORT
sy_port HTTP
sy_backend green-1 "$GREEN"
CONF="$SY_TMP/hostile.json"
ALOG="$SY_TMP/access.log"
TIMEOUTS='"timeouts_ms": {"upstream_header": 500, "body_idle": 2000}'
ADMIN="\"admin\": {\"socket\": \"$SY_TMP/ctl.sock\", \"http\": \"127.0.0.1:$HTTP\"}"
sy_config "$CONF" port="$PORT" blue="blue-1@$BAD" green="green-1@$GREEN" percent=0 \
    extra="$TIMEOUTS, $ADMIN"
# One worker: one idle list, so a connection that should not be reused would be.
sed -i 's/"workers": 2/"workers": 1/' "$CONF"
sy_proxy "$CONF" "$PORT" || sy_finish
PROXY=$SY_PROXY_PID
sy_check "the admin listener accepts connections" sy_wait_port "$HTTP" "$PROXY"
URL="http://127.0.0.1:$PORT"

# bad_start MODE [ARG]: sy-badbackend in MODE on $BAD, its lines in
# $SY_TMP/bad.log. Sets BAD_PID.
bad_start()
{
    : >"$SY_TMP/bad.log"
    "$BAD_BIN" "$BAD" "$@" >"$SY_TMP/bad.log" 2>&1 &
    BAD_PID=$!
    SY_PIDS+=("$BAD_PID")
    sy_wait_port "$BAD" "$BAD_PID" || sy_not_ok "sy-badbackend $* listens" "$(cat "$SY_TMP/bad.log")"
}

# errors: blue-1's errors since start (5xx, timeouts, resets, connect errors).
errors()
{
    sy_curl "http://127.0.0.1:$HTTP/metrics" |
        awk '/^switchyard_server_requests_total\{/ && /server="blue-1"/ &&
             /outcome="(5xx|timeout|reset|connect_error)"/ { n += $2 } END { print n + 0 }'
}

# two_requests: two GETs in one curl (one client connection while it stays
# open); prints "CODE BYTES EXIT" per request.
two_requests()
{
    local i
    for i in 1 2; do
        sy_curl -o /dev/null -w '%{http_code} %{size_download}' "$URL/$MODE/$i" 2>/dev/null
        echo " $?"
    done
}

# check_case MODE ARGS... -- WANT ERROR_TEXT: WANT is a regex for the
# "CODE BYTES EXIT" line of each request.
check_case()
{
    local args=() want why before out
    while [[ $1 != -- ]]; do
        args+=("$1")
        shift
    done
    want=$2 why=$3
    MODE=${args[0]#--}
    bad_start "${args[@]}"
    before=$(errors)
    out=$(two_requests)
    sy_match "$MODE: each request gets $want" "$out" "^($want)"$'\n'"($want)$"
    sy_check "$MODE: the access log says \"$why\"" sy_wait_alog "\"error\":\"$why\""
    sy_eq "$MODE: blue-1 counts one error per request" "$(($(errors) - before))" 2
    sy_eq "$MODE: two requests reached the backend" "$(grep -c '^conn ' "$SY_TMP/bad.log")" 2
    sy_nomatch "$MODE: no connection was used again" "$(cat "$SY_TMP/bad.log")" 'request 2$'
    sy_stop "$BAD_PID"
}

# --- the control: a good connection is reused --------------------------------------
bad_start --ok
before=$(errors)
out=$(sy_curl -w '%{http_code}\n' "$URL/ok/1" "$URL/ok/2")
sy_eq "ok: both answered" "$(grep -c '^200$' <<<"$out")" 2
sy_match "ok: the second request came on the same upstream connection" \
    "$(cat "$SY_TMP/bad.log")" 'request 2$'
sy_eq "ok: no error counted" "$(($(errors) - before))" 0
sy_stop "$BAD_PID"

# --- before the head: 502 ---------------------------------------------------------
check_case --bad-status -- '502 [0-9]+ 0' "malformed upstream response"
check_case --garbage -- '502 [0-9]+ 0' "malformed upstream response"
check_case --huge-head -- '502 [0-9]+ 0' "upstream response head too large"
check_case --bad-header -- '502 [0-9]+ 0' "malformed upstream response"
check_case --nul-header -- '502 [0-9]+ 0' "malformed upstream response"
check_case --cl-te -- '502 [0-9]+ 0' "malformed upstream response"
check_case --two-cl -- '502 [0-9]+ 0' "malformed upstream response"
check_case --trickle 100 -- '504 [0-9]+ 0' "upstream did not answer in time"

# --- after the head: the body is cut and the connection closes -----------------------
# curl: 18 is "partial file", 56 "failure receiving data".
check_case --short-body -- '200 10 (18|56)' "upstream closed the connection mid-response"
check_case --reset-mid-body -- '200 100 (18|56)' "upstream connection failed mid-response"
# Too long a body: the client gets the 10 bytes that were announced, never
# the rest, and keeps its connection.
check_case --long-body -- '200 10 0' "upstream sent bytes past the end of its response"

bad_start --ok
sy_eq "after all of it: a sound server is answered again" \
    "$(sy_curl -o /dev/null -w '%{http_code}' "$URL/after")" 200
sy_check "the proxy is still running" kill -0 "$PROXY"

sy_finish
