#!/usr/bin/env bash
# metrics.sh - the admin HTTP listener (admin.http):
#   - GET /metrics is Prometheus text (its grammar checked line by line)
#     whose counters match the requests sent: 30 to blue, 3 to green, then
#     5 answered 500 by green; the histograms count every response, +Inf
#     equals _count and the buckets never decrease;
#   - the gauges follow the state: server up, weight ratio after
#     `switchyardctl weight 25`, phase, generation;
#   - GET /api/status is the object `switchyardctl --json status` prints;
#   - 404 for other paths, 405 with Allow for other methods, HEAD without a
#     body; a garbage request and an oversized head get a 400 and the
#     listener keeps serving, and so does the proxy;
#   - an address in use is a start-up error, logged; a reload may not change
#     admin.http.
. "$(dirname "$0")/lib.sh"
sy_init "$@"

sy_need_ctl

sy_backends
sy_port HTTP
SOCK="$SY_TMP/ctl.sock"
CONF="$SY_TMP/metrics.json"
LOG="$SY_TMP/proxy.log"
ADMIN="\"admin\": {\"socket\": \"$SOCK\", \"http\": \"127.0.0.1:$HTTP\"}"
ROUTING='"override": {"header": "X-Switchyard-Pool"}'
METRICS="http://127.0.0.1:$HTTP/metrics"

sy_config "$CONF" port="$PORT" blue="blue-1@$BLUE" green="green-1@$GREEN" percent=0 \
    routing="$ROUTING" extra="$ADMIN"
sy_proxy "$CONF" "$PORT" || sy_finish
PROXY=$SY_PROXY_PID
sy_check "the admin listener accepts connections" sy_wait_port "$HTTP" "$PROXY"
sy_nomatch "admin.http is no longer reported as inactive" "$(cat "$LOG")" \
    'admin.http: validated but not active'
sy_match "its address is logged" "$(cat "$LOG")" "info: admin http on 127.0.0.1:$HTTP"

# requests N [POOL]: N requests through the proxy (forced to POOL if given);
# prints the statuses, sorted and counted.
requests()
{
    local i force=()
    [[ -n "${2:-}" ]] && force=(-H "X-Switchyard-Pool: $2")
    for ((i = 0; i < $1; i++)); do
        sy_curl -o /dev/null -w '%{http_code}\n' "${force[@]}" "http://127.0.0.1:$PORT/m/$i"
    done | sort | uniq -c | awk '{printf "%s%s %s", (NR > 1 ? " " : ""), $1, $2}'
}

# sample TEXT NAME{LABELS}: the value of that exact series, or "missing".
sample()
{
    awk -v s="$2" 'index($0, s " ") == 1 { v = substr($0, length(s) + 2) } END { print (v == "" ? "missing" : v) }' <<<"$1"
}

# grammar TEXT: prints each line that is not valid exposition text (format
# 0.0.4), and each sample whose family has no TYPE before it; nothing when
# all is well.
grammar()
{
    awk '
    function fail(why) { print NR ": " why ": " $0 }
    /^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* / { next }
    /^# TYPE / {
        if (NF != 4 || $4 !~ /^(counter|gauge|histogram|summary|untyped)$/) fail("bad TYPE")
        else if ($3 in type) fail("second TYPE")
        else type[$3] = $4
        next
    }
    /^#/ { fail("bad comment"); next }
    {
        name = $0; sub(/[{ ].*/, "", name)
        if (name !~ /^[a-zA-Z_:][a-zA-Z0-9_:]*$/) { fail("bad name"); next }
        rest = substr($0, length(name) + 1)
        lv = "[a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\\n]|\\\\[\\\\\"n])*\""
        if (rest !~ ("^(\\{" lv "(," lv ")*\\})? ([-+]?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?|[-+]Inf|NaN)$"))
            { fail("bad sample"); next }
        family = name
        if (!(family in type)) sub(/_(bucket|sum|count)$/, "", family)
        if (!(family in type)) fail("no TYPE for " name)
        else if (family != name && type[family] != "histogram") fail("suffix on a " type[family])
    }' <<<"$1"
}

# histogram_checks TEXT NAME SELECTOR: +Inf == _count == WANT, buckets
# non-decreasing; prints what is wrong, nothing when all is well.
histogram_checks()
{
    local text=$1 name=$2 sel=$3 want=$4
    awk -v b="${name}_bucket{$sel,le=" -v c="${name}_count{$sel} " -v want="$want" '
    index($0, b) == 1 { n++; v = $NF + 0; if (n > 1 && v < last) print "decreasing at " $0
                        last = v; if ($0 ~ /le="\+Inf"/) inf = v }
    index($0, c) == 1 { count = $NF + 0 }
    END {
        if (n != 16) print n " buckets, want 16"
        if (inf != count) print "+Inf " inf " != _count " count
        if (count != want) print "_count " count ", want " want
    }' <<<"$text"
}

# --- Known traffic ----------------------------------------------------------
sy_eq "30 requests to blue" "$(requests 30)" "30 200"
sy_eq "3 requests forced to green" "$(requests 3 green)" "3 200"
sy_fault "$GREEN" '{"fail_rate": 1, "fail_status": 500}'
sy_eq "5 requests to a failing green" "$(requests 5 green)" "5 500"
sy_fault "$GREEN" '{"fail_rate": 0}'

headers=$(sy_curl -s -D - -o "$SY_TMP/metrics.txt" "$METRICS")
m=$(cat "$SY_TMP/metrics.txt")
sy_match "GET /metrics answers 200" "$headers" '^HTTP/1.1 200 OK'
sy_match "... as Prometheus text 0.0.4" "$headers" $'Content-Type: text/plain; version=0.0.4'
sy_eq "... whose every line is valid exposition text" "$(grammar "$m")" ""
sy_match "... ending with a newline" "$(tail -c 1 "$SY_TMP/metrics.txt" | od -An -c)" '\\n'

sy_eq "blue's 2xx counter" "$(sample "$m" 'switchyard_requests_total{pool="blue",outcome="2xx"}')" 30
sy_eq "blue's 5xx counter" "$(sample "$m" 'switchyard_requests_total{pool="blue",outcome="5xx"}')" 0
sy_eq "green's 2xx counter" "$(sample "$m" 'switchyard_requests_total{pool="green",outcome="2xx"}')" 3
sy_eq "green's 5xx counter" "$(sample "$m" 'switchyard_requests_total{pool="green",outcome="5xx"}')" 5
sy_eq "green's connect errors" \
    "$(sample "$m" 'switchyard_requests_total{pool="green",outcome="connect_error"}')" 0
sy_eq "blue-1's 2xx counter" \
    "$(sample "$m" 'switchyard_server_requests_total{pool="blue",server="blue-1",outcome="2xx"}')" 30
sy_eq "green-1's 5xx counter" \
    "$(sample "$m" 'switchyard_server_requests_total{pool="green",server="green-1",outcome="5xx"}')" 5
sy_eq "every pool counter has its 8 outcomes" \
    "$(grep -c '^switchyard_requests_total{' <<<"$m")" 16

sy_eq "blue's latency histogram: 16 buckets, +Inf = _count = 30, non-decreasing" \
    "$(histogram_checks "$m" switchyard_upstream_latency_seconds 'pool="blue"' 30)" ""
sy_eq "green's: _count = 8 responses (the 500s included)" \
    "$(histogram_checks "$m" switchyard_upstream_latency_seconds 'pool="green"' 8)" ""
sy_eq "green-1's server histogram agrees" \
    "$(histogram_checks "$m" switchyard_server_upstream_latency_seconds \
        'pool="green",server="green-1"' 8)" ""
sy_match "blue's latency sum is positive" \
    "$(sample "$m" 'switchyard_upstream_latency_seconds_sum{pool="blue"}')" '^0\.[0-9]*[1-9]|^[1-9]'

sy_eq "blue-1 is up" "$(sample "$m" 'switchyard_server_up{pool="blue",server="blue-1"}')" 1
sy_eq "green-1 is enabled" \
    "$(sample "$m" 'switchyard_server_admin_state{pool="green",server="green-1",state="enabled"}')" 1
sy_eq "... and not draining" \
    "$(sample "$m" 'switchyard_server_admin_state{pool="green",server="green-1",state="draining"}')" 0
sy_eq "nothing in flight on blue-1" \
    "$(sample "$m" 'switchyard_server_in_flight{pool="blue",server="blue-1"}')" 0
sy_eq "blue is stable" "$(sample "$m" 'switchyard_stable{pool="blue"}') \
$(sample "$m" 'switchyard_stable{pool="green"}')" "1 0"
sy_eq "the weight ratio starts at 0" "$(sample "$m" switchyard_candidate_weight_ratio)" 0
sy_eq "the phase is idle" "$(sample "$m" 'switchyard_phase{phase="idle"}')" 1
sy_eq "the state is persisted" "$(sample "$m" switchyard_state_persisted)" 1
sy_eq "the detector is inconclusive" \
    "$(sample "$m" 'switchyard_detector_verdict{verdict="inconclusive"}')" 1
sy_eq "no connection refused" "$(sample "$m" switchyard_connections_refused_total)" 0
sy_eq "no reload yet" "$(sample "$m" switchyard_reloads_total)" 0
sy_range "open client connections" "$(sample "$m" switchyard_connections)" 0 2

# --- The gauges follow the state -------------------------------------------
"$CTL" -s "$SOCK" weight 25 >/dev/null
m=$(sy_curl "$METRICS")
sy_eq "after weight 25 the ratio is 0.25" "$(sample "$m" switchyard_candidate_weight_ratio)" 0.25
sy_eq "... at generation 1" "$(sample "$m" switchyard_state_generation)" 1
sy_eq "the counters did not move" \
    "$(sample "$m" 'switchyard_requests_total{pool="blue",outcome="2xx"}')" 30
"$CTL" -s "$SOCK" server drain green/green-1 >/dev/null
m=$(sy_curl "$METRICS")
sy_eq "a drained server shows draining" \
    "$(sample "$m" 'switchyard_server_admin_state{pool="green",server="green-1",state="draining"}')" 1
"$CTL" -s "$SOCK" server enable green/green-1 >/dev/null

# --- /api/status -------------------------------------------------------------
# The traffic figures are rates over a moving window: compared apart.
STEADY='del(.pools[].traffic, .pools[].servers[].traffic)'
status_headers=$(sy_curl -s -D - -o "$SY_TMP/status.json" "http://127.0.0.1:$HTTP/api/status")
ctl_json=$("$CTL" -s "$SOCK" --json status)
sy_match "GET /api/status answers 200 with JSON" "$status_headers" 'Content-Type: application/json'
sy_eq "... the object switchyardctl --json status prints" \
    "$(jq -S "$STEADY" "$SY_TMP/status.json")" "$(jq -S "$STEADY" <<<"$ctl_json")"
sy_eq "... with the same traffic counts" \
    "$(jq -c '[.pools[].traffic.by_kind]' "$SY_TMP/status.json")" \
    "$(jq -c '[.pools[].traffic.by_kind]' <<<"$ctl_json")"
sy_eq "... and the weight" "$(jq -r .state.candidate_percent "$SY_TMP/status.json")" 25

# --- Other paths, methods, bad requests -------------------------------------
code() { sy_curl -o /dev/null -w '%{http_code}' "$@"; }
sy_eq "another path is 404" "$(code "http://127.0.0.1:$HTTP/nope")" 404
sy_eq "/metrics/ is another path" "$(code "http://127.0.0.1:$HTTP/metrics/")" 404
sy_eq "a query string is fine" "$(code "$METRICS?x=1")" 200
post=$(sy_curl -s -D - -o /dev/null -X POST --data x "$METRICS")
sy_match "POST is 405" "$post" '^HTTP/1.1 405'
sy_match "... with Allow" "$post" 'Allow: GET, HEAD'
sy_eq "DELETE on /api/status is 405" "$(code -X DELETE "http://127.0.0.1:$HTTP/api/status")" 405
head_out=$(printf 'HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' |
    sy_raw "$HTTP" /dev/stdout 5)
sy_match "HEAD answers 200 with the length" "$head_out" 'Content-Length: [1-9][0-9]*'
sy_nomatch "... and no body" "$head_out" '^# HELP'

sy_match "a garbage request gets 400" \
    "$(printf 'garbage\r\n\r\n' | sy_raw "$HTTP" /dev/stdout 5)" '^HTTP/1.1 400'
big=$(head -c 20000 /dev/zero | tr '\0' a)
sy_match "a head over the limit is refused" \
    "$(printf 'GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n' "$big" |
        sy_raw "$HTTP" /dev/stdout 5)" '^HTTP/1.1 4[0-9][0-9]'
sy_eq "the listener still serves" "$(code "$METRICS")" 200
sy_eq "... and so does the proxy" "$(requests 2)" "2 200"

# --- Start-up and reload ----------------------------------------------------
sy_port PORT2
CONF2="$SY_TMP/second.json"
sy_config "$CONF2" port="$PORT2" blue="blue-1@$BLUE" green="green-1@$GREEN" \
    extra="\"admin\": {\"http\": \"127.0.0.1:$HTTP\"}" alog=second-access.log
timeout 20 "$SY_BUILD/switchyard" -c "$CONF2" >"$SY_TMP/second.log" 2>&1
sy_eq "a second switchyard on the same admin.http fails to start" "$?" 1
sy_match "... saying why" "$(cat "$SY_TMP/second.log")" \
    "error: admin.http: cannot listen on 127.0.0.1:$HTTP: Address already in use"

sy_port HTTP2
sy_config "$CONF" port="$PORT" blue="blue-1@$BLUE" green="green-1@$GREEN" percent=0 \
    routing="$ROUTING" extra="\"admin\": {\"socket\": \"$SOCK\", \"http\": \"127.0.0.1:$HTTP2\"}"
sy_match "a reload may not move admin.http" "$("$CTL" -s "$SOCK" reload 2>&1)" \
    'admin.http: changed'
sy_eq "... and the listener stays" "$(code "$METRICS")" 200

sy_stop "$PROXY" 10
sy_eq "switchyard exits 0" "$SY_RC" 0
sy_finish
