#!/usr/bin/env bash
# failures.sh - what clients get when things break.
#   - a dead server in a pool: the request goes to another server of the
#     same pool, the client never notices;
#   - every server of the pool dead: 502;
#   - a backend that never answers: 504 after timeouts_ms.upstream_header;
#   - malformed or ambiguous requests: 400 and the connection closes;
#   - an oversized request head: 431;
#   - a request head that never ends (slowloris): 408 after client_header;
#   - a request body that stalls: 408 after body_idle;
#   - a kept-alive connection with nothing to do: closed after client_idle.
. "$(dirname "$0")/lib.sh"
sy_init "$@"

sy_port BLUE
sy_port GREEN
sy_port DEAD1
sy_port DEAD2
sy_port P_ONE_DEAD
sy_port P_ALL_DEAD
sy_port P_FALLBACK
sy_backend blue-1 "$BLUE"
sy_backend green-1 "$GREEN"

TIMEOUTS='"timeouts_ms": {"connect": 1000, "upstream_header": 500, "client_header": 500,
                          "client_idle": 700, "body_idle": 700}'
sy_config "$SY_TMP/one-dead.json" port="$P_ONE_DEAD" \
    blue="blue-1@$BLUE,blue-dead@$DEAD1" green="green-1@$GREEN" percent=0 extra="$TIMEOUTS" \
    alog=access-one-dead.log
sy_config "$SY_TMP/all-dead.json" port="$P_ALL_DEAD" \
    blue="blue-dead-1@$DEAD1,blue-dead-2@$DEAD2" green="green-1@$GREEN" percent=0 \
    extra="$TIMEOUTS" alog=access-all-dead.log
sy_config "$SY_TMP/fallback.json" port="$P_FALLBACK" \
    blue="blue-1@$BLUE" green="green-dead@$DEAD1" percent=100 extra="$TIMEOUTS" \
    alog=access-fallback.log
sy_proxy "$SY_TMP/one-dead.json" "$P_ONE_DEAD" proxy-one-dead || sy_finish
ONE_DEAD_PID=$SY_PROXY_PID
sy_proxy "$SY_TMP/all-dead.json" "$P_ALL_DEAD" proxy-all-dead || sy_finish
URL="http://127.0.0.1:$P_ONE_DEAD"

# --- dead servers -----------------------------------------------------------------
out=$(for ((i = 0; i < 20; i++)); do
    echo "url = \"$URL/retry/$i\""
    echo 'output = "/dev/null"'
done | sy_curl -K - -w '%{http_code} %header{x-backend}\n')
sy_eq "one of two blue servers dead: 20 of 20 requests answered 200" \
    "$(grep -c '^200 blue-1$' <<<"$out")" 20

# Each on its own connection, too (no reuse of a known-good connection).
ok=0
for ((i = 0; i < 10; i++)); do
    [[ "$(sy_curl -o /dev/null -w '%{http_code}' "$URL/retry-new/$i")" == 200 ]] && ok=$((ok + 1))
done
sy_eq "one of two blue servers dead: 10 new connections all answered 200" "$ok" 10

code=$(sy_curl -o "$SY_TMP/502.body" -w '%{http_code}' "http://127.0.0.1:$P_ALL_DEAD/")
sy_eq "every blue server dead: 502" "$code" 502
sy_match "every blue server dead: the body says why" "$(cat "$SY_TMP/502.body")" '^502 '
sy_eq "every blue server dead: the green pool is not used instead" \
    "$(sy_curl -o /dev/null -w '%{http_code} %header{x-backend}' "http://127.0.0.1:$P_ALL_DEAD/")" \
    "502 "

# The candidate is the pool that failed: the request goes to stable instead.
sy_proxy "$SY_TMP/fallback.json" "$P_FALLBACK" proxy-fallback || sy_finish
sy_eq "candidate at 100 % unreachable: answered by stable" \
    "$(sy_curl -o /dev/null -w '%{http_code} %header{x-backend}' "http://127.0.0.1:$P_FALLBACK/")" \
    "200 blue-1"

# An upload slower than upstream_header (500 ms) is not a slow server: the
# deadline starts once the whole request went up.
head -c 1500000 /dev/zero >"$SY_TMP/upload.bin"
t0=$(sy_now_ms)
out=$(SY_CURL_MAX_TIME=20 sy_curl --limit-rate 1M -T "$SY_TMP/upload.bin" -w ' %{http_code}' \
    "$URL/__sink")
elapsed=$(($(sy_now_ms) - t0))
sy_match "a 1.5 s upload with upstream_header 500 ms: 200 and every byte" "$out" \
    '"bytes": ?1500000.* 200$'
sy_range "the upload really took longer than upstream_header (ms)" "$elapsed" 900 20000

# --- a backend that hangs ----------------------------------------------------------
fault=$(sy_curl -X POST -d '{"hang": true}' "http://127.0.0.1:$BLUE/__fault" -w ' %{http_code}')
sy_match "the blue backend accepts a hang fault" "$fault" ' 200$'
t0=$(sy_now_ms)
code=$(SY_CURL_MAX_TIME=10 sy_curl -o /dev/null -w '%{http_code}' "$URL/hang")
elapsed=$(($(sy_now_ms) - t0))
sy_eq "hanging backend: 504" "$code" 504
sy_range "hanging backend: the 504 comes after upstream_header (500 ms), well under 5 s (ms)" \
    "$elapsed" 450 3000
fault=$(sy_curl -X POST -d '{"hang": false}' "http://127.0.0.1:$BLUE/__fault" -w ' %{http_code}')
sy_match "the blue backend accepts the hang fault's end" "$fault" ' 200$'
sy_eq "after the backend recovers: 200" \
    "$(sy_curl -o /dev/null -w '%{http_code}' "$URL/recovered")" 200

# --- bad requests -----------------------------------------------------------------
# bad_request DESC REQUEST STATUS: sends REQUEST raw; the answer must start
# with "HTTP/1.1 STATUS" and the proxy must close the connection.
bad_request()
{
    local desc=$1 req=$2 status=$3 closed=0
    printf '%b' "$req" | sy_raw "$P_ONE_DEAD" "$SY_TMP/raw.out" 5 || closed=1
    local first
    first=$(head -n 1 "$SY_TMP/raw.out" | tr -d '\r')
    sy_match "$desc: HTTP/1.1 $status" "$first" "^HTTP/1\\.1 $status "
    sy_eq "$desc: the connection closes" "$closed" 0
    sy_nomatch "$desc: not forwarded to the backend" "$(cat "$SY_TMP/raw.out")" '^X-Backend:'
}

bad_request "space before the colon" \
    'GET / HTTP/1.1\r\nHost : test\r\n\r\nGET /second HTTP/1.1\r\nHost: test\r\n\r\n' 400
bad_request "Transfer-Encoding: chunked with Content-Length" \
    'POST /__sink HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n' 400
bad_request "two different Content-Length values" \
    'POST /__sink HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!' 400
bad_request "a Transfer-Encoding other than chunked" \
    'POST /__sink HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: gzip\r\n\r\nxxxx' 400
bad_request "a request line with no version" 'GET /\r\nHost: test\r\n\r\n' 400
bad_request "a field line without a colon" 'GET / HTTP/1.1\r\nHost: test\r\nnonsense\r\n\r\n' 400

# A head that stops half-way: the client_header deadline (500 ms) answers.
t0=$(sy_now_ms)
printf 'GET /slow HTTP/1.1\r\nHost: test\r\nX-Slow: 1\r\n' | sy_raw "$P_ONE_DEAD" "$SY_TMP/slow.out" 5
elapsed=$(($(sy_now_ms) - t0))
sy_match "an unfinished request head: 408" "$(head -n 1 "$SY_TMP/slow.out")" '^HTTP/1\.1 408 '
sy_range "an unfinished request head: answered after about client_header (ms)" "$elapsed" 400 3000

# A body that stops half-way: body_idle (700 ms) answers.
t0=$(sy_now_ms)
printf 'POST /__sink HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n\r\n0123456789' |
    sy_raw "$P_ONE_DEAD" "$SY_TMP/stall.out" 5
elapsed=$(($(sy_now_ms) - t0))
sy_match "a stalled request body: 408" "$(head -n 1 "$SY_TMP/stall.out")" '^HTTP/1\.1 408 '
sy_range "a stalled request body: answered after about body_idle (ms)" "$elapsed" 600 3000

# A kept-alive connection left idle is closed after client_idle (700 ms).
t0=$(sy_now_ms)
printf 'GET /idle HTTP/1.1\r\nHost: test\r\n\r\n' |
    "$SY_BUILD/sy-rawclient" "$P_ONE_DEAD" --timeout-ms 5000 >"$SY_TMP/idle.out"
rc=$?
elapsed=$(($(sy_now_ms) - t0))
sy_match "an idle kept-alive connection: its request was answered" \
    "$(head -n 1 "$SY_TMP/idle.out")" '^HTTP/1\.1 200 '
sy_eq "an idle kept-alive connection: the proxy closes it" "$rc" 0
sy_range "an idle kept-alive connection: closed after about client_idle (ms)" "$elapsed" 600 3000

big=$(head -c $((40 * 1024)) /dev/zero | tr '\0' 'a')
code=$(sy_curl -o /dev/null -w '%{http_code}' -H "X-Big: $big" "$URL/big")
sy_eq "a 40 KiB request head: 431" "$code" 431

# The proxy is still fine for everyone else.
sy_eq "after all the bad requests: 200" "$(sy_curl -o /dev/null -w '%{http_code}' "$URL/")" 200
sy_check "the proxy is still running" kill -0 "$ONE_DEAD_PID"

sy_finish
