#!/usr/bin/env bash
# tls_edge.sh - the TLS paths tls.sh leaves out, driven by sy-tlsclient,
# which decides what goes on the wire and when:
#   - a large answer to a client that reads slowly: whole, intact, and not
#     held in the proxy's memory (backpressure through SSL_write);
#   - half a TLS record after the handshake, then silence: closed by
#     client_header (first request) or client_idle (kept-alive), with the
#     proxy idle and serving others meanwhile;
#   - a request of one TLS record per byte, each record in two TCP segments;
#     a request in the segment of the handshake's Finished;
#   - pipelined requests in one record: all answered, in order;
#   - TLS 1.3 key updates (also while the proxy's writes wait), a TLS 1.2
#     renegotiation (refused);
#   - TLS 1.3 resumption, also with min_version 1.3;
#   - an upgrade tunnel over TLS: megabytes both ways, half-closed by us,
#     ended by either side;
#   - close_notify after a request (answered), in the middle of a request,
#     and a reset in the middle of an answer: logged, no connection left
#     behind, no sanitizer report.
. "$(dirname "$0")/lib.sh"
sy_init "$@"

TLSCLIENT=$SY_BUILD/sy-tlsclient
if ! command -v openssl >/dev/null || ! command -v jq >/dev/null || [[ ! -x "$TLSCLIENT" ]]; then
    sy_not_ok "openssl, jq and sy-tlsclient are there" \
        "openssl: $(command -v openssl); jq: $(command -v jq); sy-tlsclient: $TLSCLIENT"
    sy_finish
fi

HEADER_MS=1000
IDLE_MS=3000
BIG=20000000                       # the slow reader's answer
SLOW_READ=16384:10:2000000         # 16 KiB every 10 ms for 2 MB, then all at once
RSS_GROWTH_LIMIT_KB=$((8 * 1024))  # far below BIG: the answer must not be buffered
TUNNEL_BYTES=4000000
HALF_BYTES=2000000

# --- a certificate for localhost and 127.0.0.1 -------------------------------------
PKI=$SY_TMP/pki
mkdir -p "$PKI"
if ! openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj '/CN=localhost' -addext 'subjectAltName=IP:127.0.0.1,DNS:localhost' \
    -keyout "$PKI/server.key" -out "$PKI/server.pem" >"$SY_TMP/pki.out" 2>&1; then
    sy_not_ok "the test certificate is made" "$(cat "$SY_TMP/pki.out")"
    sy_finish
fi

sy_backends
GREEN_PID=$SY_LAST_PID # started last: the one stopped under a tunnel
sy_port PORT13
sy_port ADMIN
ALOG=$SY_TMP/access.log

# tls_config FILE PORT ADMIN_PORT TLS_JSON: a config whose listener has "tls",
# the timeouts above, admin.http (for the connection gauge) and a pool override
# header (to reach green-1, the backend that gets stopped).
tls_config()
{
    sy_config "$1.plain" port="$2" blue="blue-1@$BLUE" green="green-1@$GREEN" \
        routing='"override": {"header": "X-Switchyard-Pool", "allow_from": ["127.0.0.1/32"]}' \
        extra="\"timeouts_ms\": {\"client_header\": $HEADER_MS, \"client_idle\": $IDLE_MS},
  \"admin\": {\"http\": \"127.0.0.1:$3\"}"
    jq --argjson tls "$4" '.listen[0].tls = $tls' "$1.plain" >"$1"
}
IDENTITY="\"cert\": \"$PKI/server.pem\", \"key\": \"$PKI/server.key\""
tls_config "$SY_TMP/tls.json" "$PORT" "$ADMIN" "{$IDENTITY}"
sy_proxy "$SY_TMP/tls.json" "$PORT" || sy_finish
PROXY=$SY_PROXY_PID
URL="https://127.0.0.1:$PORT"

tls_curl()
{
    sy_curl --cacert "$PKI/server.pem" "$@"
}

# tlsclient ARGS...: sy-tlsclient on the proxy's port.
tlsclient()
{
    "$TLSCLIENT" "$PORT" "$@"
}

# open_connections: the proxy's switchyard_connections gauge.
open_connections()
{
    sy_curl "http://127.0.0.1:$ADMIN/metrics" | awk '$1 == "switchyard_connections" { print $2 }'
}

# wait_no_connections: until the proxy holds no client connection (5 s).
wait_no_connections()
{
    local i
    for ((i = 0; i < 100; i++)); do
        [[ "$(open_connections)" == 0 ]] && return 0
        sleep 0.05
    done
    echo "# switchyard_connections = $(open_connections)"
    return 1
}

proxy_cpu_ticks()
{
    awk '{ print $14 + $15 }' "/proc/$PROXY/stat"
}

vm_kb()
{
    awk -v k="$1:" '$1 == k { print $2 }' "/proc/$PROXY/status"
}

# --- a slow reader of a large answer: backpressure ------------------------------------
# Warm-up first, so that the growth measured is the answer's, not the first
# TLS connections' of each worker.
for i in 1 2 3 4; do
    tls_curl -o /dev/null "$URL/healthz"
done
hwm0=$(vm_kb VmHWM)
printf 'GET /__bytes?n=%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' "$BIG" |
    tlsclient --timeout-ms 30000 send head slow-read "$SLOW_READ" read \
        >"$SY_TMP/slow.out" 2>"$SY_TMP/slow.err"
sy_eq "slow reader: the client is done without error" "$?" 0
size=$(stat -c %s "$SY_TMP/slow.out")
head_len=$((size - BIG))
head_text=$(head -c "$((head_len > 0 ? head_len : 0))" "$SY_TMP/slow.out" | tr -d '\r')
sy_match "slow reader: a 200" "$head_text" '^HTTP/1\.1 200 '
sy_match "slow reader: ... with Content-Length: $BIG" "$head_text" "^[Cc]ontent-[Ll]ength: $BIG\$"
sy_eq "slow reader: all $BIG bytes come back intact" \
    "$(tail -c "$BIG" "$SY_TMP/slow.out" | sha256sum | cut -d' ' -f1)" "$(sy_pattern_sha "$BIG")"
rm -f "$SY_TMP/slow.out"
sy_match "slow reader: the proxy ends with close_notify" "$(cat "$SY_TMP/slow.err")" \
    'end: close_notify'
growth=$(($(vm_kb VmHWM) - hwm0))
if [[ "${SY_SANITIZE:-OFF}" == "ON" ]]; then
    sy_ok "# SKIP memory growth check: sanitizer build (VmHWM grew $growth kB)"
else
    sy_range "slow reader: the proxy's peak memory grew by less than the answer (kB)" \
        "$growth" 0 "$RSS_GROWTH_LIMIT_KB"
fi

# --- half a record, then silence ---------------------------------------------------------
# First request: client_header applies. Kept-alive after one answer:
# client_idle. Both run at once, while others are served.
t0=$(sy_now_ms)
printf 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n' |
    tlsclient send-half read >/dev/null 2>"$SY_TMP/half1.err" &
half1=$!
SY_PIDS+=("$half1")
printf 'GET /__bytes?n=100 HTTP/1.1\r\nHost: x\r\n\r\n' |
    tlsclient send head read-n 100 send-half read >"$SY_TMP/half2.out" 2>"$SY_TMP/half2.err" &
half2=$!
SY_PIDS+=("$half2")
sleep 0.2
cpu0=$(proxy_cpu_ticks)
sy_check "half a record: the proxy serves others meanwhile" tls_curl -o /dev/null "$URL/healthz"
wait "$half1"
rc1=$?
t1=$(sy_now_ms)
sy_forget "$half1"
sy_eq "half a record on a new connection: closed by the proxy" "$rc1" 0
sy_range "... after client_header ($HEADER_MS ms)" $((t1 - t0)) $((HEADER_MS - 100)) $((HEADER_MS + 2500))
sy_range "... with the proxy idle meanwhile (CPU ticks)" $(($(proxy_cpu_ticks) - cpu0)) 0 30
wait "$half2"
rc2=$?
t2=$(sy_now_ms)
sy_forget "$half2"
sy_match "half a record after a first answer: that answer came" "$(head -n 1 "$SY_TMP/half2.out")" \
    '^HTTP/1\.1 200 '
sy_eq "half a record on a kept-alive connection: closed by the proxy" "$rc2" 0
sy_range "... after client_idle ($IDLE_MS ms)" $((t2 - t0)) $((IDLE_MS - 100)) $((IDLE_MS + 2500))
sy_match "... cleanly (close_notify)" "$(cat "$SY_TMP/half2.err")" 'end: close_notify'

# --- one record per byte ---------------------------------------------------------------
REQ_BODY='split into records'
for version in 1.2 1.3; do
    printf 'POST /__echo?v=%s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' \
        "$version" "${#REQ_BODY}" "$REQ_BODY" |
        tlsclient "--tls$version" send-bytewise read >"$SY_TMP/bytewise.out" 2>"$SY_TMP/bytewise.err"
    rc=$?
    out=$(tr -d '\r' <"$SY_TMP/bytewise.out")
    sy_eq "TLS $version, one byte per record: the client is done" "$rc" 0
    sy_match "TLS $version, one byte per record: the backend gets the whole request" "$out" \
        "^POST /__echo\?v=$version HTTP/1\.1\$"
    sy_match "TLS $version, one byte per record: ... and its body" "$out" "$REQ_BODY\$"
done

# The client's Finished and its request in one segment: OpenSSL takes the
# request off the socket inside the handshake, where no poll reports it.
printf 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' |
    tlsclient --tls1.3 --late-finished send read >"$SY_TMP/late.out" 2>"$SY_TMP/late.err"
sy_eq "a request in the segment of the handshake's Finished: the client is done" "$?" 0
sy_match "... and it is answered at once (no 408 after client_header)" \
    "$(head -n 1 "$SY_TMP/late.out")" '^HTTP/1\.1 200 '

# --- pipelined requests in one record ------------------------------------------------------
{
    printf 'GET /__status/201 HTTP/1.1\r\nHost: x\r\n\r\n'
    printf 'POST /__echo?pipe=2 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello'
    printf 'GET /__bytes?n=70000 HTTP/1.1\r\nHost: x\r\n\r\n'
    printf 'GET /__status/203 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'
} | tlsclient send read >"$SY_TMP/pipe.out" 2>"$SY_TMP/pipe.err"
sy_eq "four pipelined requests in one record: the client is done" "$?" 0
sy_eq "... answered in order" \
    "$(grep -aEo 'HTTP/1\.1 [0-9]{3}' "$SY_TMP/pipe.out" | cut -d' ' -f2 | tr '\n' ' ')" \
    "201 200 200 203 "
sy_eq "... the second is the echo of the second" \
    "$(grep -ac '^POST /__echo?pipe=2 HTTP/1.1' "$SY_TMP/pipe.out")" 1
sy_match "... and the proxy closes after the last, with close_notify" \
    "$(cat "$SY_TMP/pipe.err")" 'end: close_notify'

# --- key updates and renegotiation ----------------------------------------------------------
# TLS 1.3 KeyUpdate asking the proxy to update too: between two requests,
# and while the proxy's writes wait for a slow reader (its answering
# KeyUpdate must queue behind a record half written).
printf 'GET /__bytes?n=100 HTTP/1.1\r\nHost: x\r\n\r\n' |
    tlsclient --tls1.3 send head read-n 100 key-update send head read-n 100 \
        >"$SY_TMP/ku.out" 2>"$SY_TMP/ku.err"
sy_eq "a key update between two requests: the client is done" "$?" 0
sy_eq "... and both are answered" "$(grep -aEo 'HTTP/1\.1 200' "$SY_TMP/ku.out" | wc -l)" 2
KU=5000000
printf 'GET /__bytes?n=%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' "$KU" |
    tlsclient --tls1.3 send head slow-read 16384:10:500000 key-update read \
        >"$SY_TMP/ku2.out" 2>"$SY_TMP/ku2.err"
sy_eq "a key update in the middle of a slowly read answer: the client is done" "$?" 0
sy_eq "... and the answer is intact" "$(tail -c "$KU" "$SY_TMP/ku2.out" | sha256sum | cut -d' ' -f1)" \
    "$(sy_pattern_sha "$KU")"
rm -f "$SY_TMP/ku2.out"

printf 'GET /__bytes?n=100 HTTP/1.1\r\nHost: x\r\n\r\n' |
    tlsclient --tls1.2 send head read-n 100 renegotiate read >/dev/null 2>"$SY_TMP/reneg.err"
sy_match "TLS 1.2 renegotiation is refused" "$(cat "$SY_TMP/reneg.err")" 'no renegotiation'
sy_check "... and the proxy serves on" tls_curl -o /dev/null "$URL/healthz"

# --- TLS 1.3 resumption -------------------------------------------------------------------
# The ticket comes after the handshake: s_client must stay for an answer
# (-ign_eof) to get it.
# resumed PORT: "Reused, TLSv1.3" lines of a second connection offering the
# first's session.
resumed()
{
    local req=$'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'
    rm -f "$SY_TMP/sess13.pem"
    printf '%s' "$req" | timeout 10 openssl s_client -connect "127.0.0.1:$1" -tls1_3 -ign_eof \
        -sess_out "$SY_TMP/sess13.pem" >"$SY_TMP/sess13-1.out" 2>&1
    printf '%s' "$req" | timeout 10 openssl s_client -connect "127.0.0.1:$1" -tls1_3 -ign_eof \
        -sess_in "$SY_TMP/sess13.pem" 2>&1 | grep -E '^(New|Reused), TLSv1\.3'
}
sy_match "a TLS 1.3 session is resumed" "$(resumed "$PORT")" '^Reused, TLSv1\.3,'

sy_port ADMIN13
tls_config "$SY_TMP/tls13.json" "$PORT13" "$ADMIN13" "{$IDENTITY, \"min_version\": \"1.3\"}"
if sy_proxy "$SY_TMP/tls13.json" "$PORT13" proxy13; then
    sy_match "min_version 1.3: a session is resumed" "$(resumed "$PORT13")" '^Reused, TLSv1\.3,'
    sy_stop "$SY_PROXY_PID" 10
    sy_eq "the min_version 1.3 proxy exits 0 on SIGTERM" "$SY_RC" 0
fi

# --- an upgrade tunnel over TLS -------------------------------------------------------------
UPGRADE=$'GET /tunnel HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: x\r\n'
printf '%s\r\n' "$UPGRADE" |
    tlsclient --timeout-ms 30000 send head tunnel "$TUNNEL_BYTES" close-notify read \
        >"$SY_TMP/tunnel.out" 2>"$SY_TMP/tunnel.err"
sy_eq "tunnel over TLS: the client is done" "$?" 0
sy_match "tunnel over TLS: the answer is 101" "$(head -n 1 "$SY_TMP/tunnel.out")" \
    '^HTTP/1\.1 101 '
sy_match "tunnel over TLS: $TUNNEL_BYTES bytes each way, intact" "$(cat "$SY_TMP/tunnel.err")" \
    "tunnel: $TUNNEL_BYTES bytes each way, intact"
sy_match "tunnel over TLS: our close_notify ends it; the proxy's follows" \
    "$(cat "$SY_TMP/tunnel.err")" 'end: close_notify'

# Half-closed: our close_notify right after the last byte sent, while the
# echo is still on its way back: the proxy keeps writing to us.
for version in 1.2 1.3; do
    printf '%s\r\n' "$UPGRADE" |
        tlsclient "--tls$version" --timeout-ms 30000 send head tunnel-close "$HALF_BYTES" read \
            >/dev/null 2>"$SY_TMP/tunnel-close.err"
    sy_eq "TLS $version tunnel, half-closed by us: the client is done" "$?" 0
    sy_match "... the whole echo comes back after our close_notify, then the proxy's" \
        "$(tr '\n' ' ' <"$SY_TMP/tunnel-close.err")" \
        "tunnel: $HALF_BYTES bytes each way, intact .*end: close_notify"
done

# The server's side ends: green-1 stops while the tunnel is open.
printf '%sX-Switchyard-Pool: green\r\n\r\n' "$UPGRADE" |
    tlsclient --timeout-ms 20000 send head tunnel 100000 read \
        >"$SY_TMP/tunnel2.out" 2>"$SY_TMP/tunnel2.err" &
tunnel=$!
SY_PIDS+=("$tunnel")
for ((i = 0; i < 200; i++)); do
    grep -q 'intact' "$SY_TMP/tunnel2.err" 2>/dev/null && break
    sleep 0.05
done
sy_match "tunnel to green-1 over TLS: bytes flow" "$(cat "$SY_TMP/tunnel2.err")" \
    'tunnel: 100000 bytes each way, intact'
sy_stop "$GREEN_PID" 5
wait "$tunnel"
sy_eq "tunnel: the server's close ends it for the client" "$?" 0
sy_forget "$tunnel"
sy_match "... with the proxy's close_notify" "$(cat "$SY_TMP/tunnel2.err")" 'end: close_notify'
sy_check "tunnels over: no client connection is left open" wait_no_connections

# --- a client that leaves in the middle -----------------------------------------------------
{
    printf 'POST /__sink HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n'
    head -c 50000 /dev/zero
} | tlsclient send close-notify read >/dev/null 2>"$SY_TMP/notify.err"
sy_eq "close_notify mid-request: the proxy closes" "$?" 0
sy_check "... and logs why" sy_wait_alog '"client closed in the middle of its request"'
sy_match "... on that request's line" "$(grep -F '"target":"/__sink"' "$ALOG")" \
    '"error":"client closed in the middle of its request"'

# close_notify right after a whole request: TLS's half-close. The answer
# still comes, then the proxy's close_notify.
printf 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n' |
    tlsclient send close-notify read >"$SY_TMP/halfclose.out" 2>"$SY_TMP/halfclose.err"
sy_eq "close_notify after a whole request: the client is done" "$?" 0
sy_match "... the request is answered" "$(head -n 1 "$SY_TMP/halfclose.out")" '^HTTP/1\.1 200 '
sy_match "... then the proxy closes with close_notify" "$(cat "$SY_TMP/halfclose.err")" \
    'end: close_notify'

# A size of its own tells its access log line from the slow reader's.
CUT=$((BIG + 1))
printf 'GET /__bytes?n=%d HTTP/1.1\r\nHost: x\r\n\r\n' "$CUT" |
    tlsclient send head read-n 1000000 reset >/dev/null 2>"$SY_TMP/reset.err"
sy_eq "a reset mid-response: the client got its first MB" "$?" 0
sy_check "... the proxy logs the cut answer" sy_wait_alog "\"target\":\"/__bytes?n=$CUT\",\"status\":200"
sy_match "... as a client connection error" "$(grep -F "\"target\":\"/__bytes?n=$CUT\"" "$ALOG")" \
    '"error":"client connection error"'
sy_check "the proxy still serves after those" tls_curl -o /dev/null "$URL/healthz"
sy_check "no client connection is left open" wait_no_connections

sy_stop "$PROXY" 10
sy_eq "proxy exits 0 on SIGTERM" "$SY_RC" 0

sy_finish
