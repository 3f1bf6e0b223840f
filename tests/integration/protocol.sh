#!/usr/bin/env bash
# protocol.sh - HTTP/1.1 details on the way through the proxy: forwarding
# headers, hop-by-hop headers, responses without bodies, 100-continue,
# HTTP/1.0 clients, close-delimited answers, pipelining and the access log.
. "$(dirname "$0")/lib.sh"
sy_init "$@"

sy_backends
sy_config "$SY_TMP/protocol.json" port="$PORT" blue="blue-1@$BLUE" green="green-1@$GREEN" percent=0
sy_proxy "$SY_TMP/protocol.json" "$PORT" || sy_finish
URL="http://127.0.0.1:$PORT"

# --- request headers, as the backend received them (/__echo) ---------------------
echo1=$(sy_curl "$URL/__echo?h=1" -H 'X-Keep: kept' -H 'Connection: foo' -H 'Foo: bar' \
    -H 'Keep-Alive: timeout=5' -H 'TE: trailers' -H 'Proxy-Connection: keep-alive' | tr -d '\r')
sy_match "echo: the request line arrives" "$echo1" '^GET /__echo\?h=1 HTTP/1\.1$'
sy_match "echo: an ordinary header passes" "$echo1" '^X-Keep: kept$'
sy_match "X-Forwarded-For: the client address is added" "$echo1" '^X-Forwarded-For: 127\.0\.0\.1$'
sy_match "X-Forwarded-Proto: http" "$echo1" '^X-Forwarded-Proto: http$'
sy_nomatch "hop-by-hop: the header named in Connection (Foo) is removed" "$echo1" '^foo:'
sy_nomatch "hop-by-hop: Connection: foo is removed" "$echo1" '^connection:.*foo'
sy_nomatch "hop-by-hop: Keep-Alive is removed" "$echo1" '^keep-alive:'
sy_nomatch "hop-by-hop: TE is removed" "$echo1" '^te:'
sy_nomatch "hop-by-hop: Proxy-Connection is removed" "$echo1" '^proxy-connection:'

echo2=$(sy_curl "$URL/__echo?h=2" -H 'X-Forwarded-For: 10.1.2.3' \
    -H 'X-Forwarded-Proto: https' | tr -d '\r')
sy_match "X-Forwarded-For: appended to the client's own" "$echo2" \
    '^X-Forwarded-For: 10\.1\.2\.3, 127\.0\.0\.1$'
sy_eq "X-Forwarded-For: exactly one such header" \
    "$(grep -ci '^x-forwarded-for:' <<<"$echo2")" 1
sy_eq "X-Forwarded-Proto: a client's claim is replaced, not kept" \
    "$(grep -i '^x-forwarded-proto:' <<<"$echo2")" 'X-Forwarded-Proto: http'

# --- responses without a body -------------------------------------------------------
# HEAD, then a pipelined GET on the same connection: the HEAD answer must
# end at its head although it announces Content-Length: 1000.
printf 'HEAD /__bytes?n=1000 HTTP/1.1\r\nHost: test\r\n\r\nGET /__bytes?n=5 HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n' |
    sy_raw "$PORT" "$SY_TMP/head.out" 5
heads=$(tr -d '\r' <"$SY_TMP/head.out")
sy_match "HEAD: 200 with Content-Length: 1000" "$heads" '^[Cc]ontent-[Ll]ength: 1000$'
sy_eq "HEAD then GET: two answers" "$(grep -c '^HTTP/1\.1 200 ' <<<"$heads")" 2
sy_eq "HEAD: no body (the next answer follows the empty line at once)" \
    "$(awk 'p { print; exit } /^$/ { p = 1 }' <<<"$heads" | cut -c1-9)" 'HTTP/1.1 '
sy_eq "HEAD then GET: the GET's 5 bytes end the stream" "$(tail -c 6 "$SY_TMP/head.out")" \
    $'\nswitc'

# 204 and 304 then a normal answer on one kept-alive connection: a body
# sneaking after either would corrupt the next answer.
out=$(sy_curl -w '%{http_code} %{size_download} %{num_connects}\n' \
    -o /dev/null "$URL/__status/204" -o /dev/null "$URL/__status/304" \
    -o /dev/null "$URL/__bytes?n=10")
sy_eq "204, 304 then 200 on one connection, with no body on 204 and 304" \
    "$(tr '\n' ';' <<<"$out")" '204 0 1;304 0 0;200 10 0;'

# --- request bodies --------------------------------------------------------------------
yes switchyard | head -c 65536 >"$SY_TMP/64k.bin"
t0=$(sy_now_ms)
reply=$(sy_curl -H 'Expect: 100-continue' --expect100-timeout 5 --data-binary "@$SY_TMP/64k.bin" \
    -D "$SY_TMP/expect.head" "$URL/__sink")
elapsed=$(($(sy_now_ms) - t0))
sy_eq "Expect: 100-continue: the body arrives whole" "$(sy_json_num "$reply" bytes)" 65536
sy_eq "Expect: 100-continue: sha256 matches" "$(sy_json_str "$reply" sha256)" \
    "$(sy_pattern_sha 65536)"
sy_range "Expect: 100-continue: the client did not wait out its 5 s (ms)" "$elapsed" 0 4000
sy_match "Expect: 100-continue: the client saw 100 Continue" \
    "$(tr -d '\r' <"$SY_TMP/expect.head")" '^HTTP/1\.1 100 '

# --- HTTP/1.0 ---------------------------------------------------------------------------
got=$(sy_curl -0 -D "$SY_TMP/http10.head" "$URL/__bytes?n=100000" | sha256sum | cut -d' ' -f1)
sy_eq "HTTP/1.0: 100000 bytes arrive intact" "$got" "$(sy_pattern_sha 100000)"
sy_match "HTTP/1.0: answered 200" "$(tr -d '\r' <"$SY_TMP/http10.head")" '^HTTP/1\.[01] 200 '
sy_nomatch "HTTP/1.0: no chunked encoding toward a 1.0 client" \
    "$(tr -d '\r' <"$SY_TMP/http10.head")" '^transfer-encoding:'
if printf 'GET /healthz HTTP/1.0\r\n\r\n' | sy_raw "$PORT" "$SY_TMP/http10.out" 5; then
    sy_ok "HTTP/1.0 without keep-alive: the proxy closes after the answer"
else
    sy_not_ok "HTTP/1.0 without keep-alive: the proxy closes after the answer"
fi
sy_match "HTTP/1.0: raw request answered 200" "$(head -n 1 "$SY_TMP/http10.out")" \
    '^HTTP/1\.[01] 200 '
sy_eq "HTTP/1.0: raw request body is ok" "$(tail -c 3 "$SY_TMP/http10.out")" 'ok'

# --- close-delimited response --------------------------------------------------------------
body=$(sy_curl -D "$SY_TMP/close.head" "$URL/__close" | od -An -c | tr -s ' ')
sy_eq "close-delimited: the body arrives whole" "$body" ' b y e \n'
sy_match "close-delimited: answered 200" "$(head -n 1 "$SY_TMP/close.head")" '^HTTP/1\.1 200 '

# --- pipelining ---------------------------------------------------------------------------
printf 'GET /__echo?first HTTP/1.1\r\nHost: test\r\n\r\nGET /__echo?second HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n' |
    sy_raw "$PORT" "$SY_TMP/pipe.out" 5
pipe=$(tr -d '\r' <"$SY_TMP/pipe.out")
sy_eq "pipelining: two requests in one write get two answers" \
    "$(grep -c '^HTTP/1\.1 200 ' <<<"$pipe")" 2
first=$(grep -n '^GET /__echo?first ' <<<"$pipe" | cut -d: -f1)
second=$(grep -n '^GET /__echo?second ' <<<"$pipe" | cut -d: -f1)
if [[ -n "$first" && -n "$second" ]] && ((first < second)); then
    sy_ok "pipelining: the answers come in request order"
else
    sy_not_ok "pipelining: the answers come in request order" "$pipe"
fi

# --- Connection naming a framing field ------------------------------------------------------
# "Connection: content-length" must not strip the length: the next hop would
# read the body as a second request, smuggled past every check.
before=$(sy_json_num "$(sy_curl "http://127.0.0.1:$BLUE/__stats")" requests)
smuggled='GET /__status/404 HTTP/1.1\r\nHost: y\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n'
printf "POST /__echo HTTP/1.1\r\nHost: x\r\nContent-Length: 65\r\nConnection: close, content-length\r\n\r\n$smuggled" |
    sy_raw "$PORT" "$SY_TMP/smuggle.out" 5
after=$(sy_json_num "$(sy_curl "http://127.0.0.1:$BLUE/__stats")" requests)
sy_eq "Connection: content-length: one answer" "$(grep -c '^HTTP/1.1 ' "$SY_TMP/smuggle.out")" 1
sy_match "Connection: content-length: the backend still sees the length" \
    "$(tr -d '\r' <"$SY_TMP/smuggle.out")" '^Content-Length: 65$'
sy_eq "Connection: content-length: the backend saw one request, not two" \
    "$((after - before))" 2

# --- access log ------------------------------------------------------------------------------
out=$(for ((i = 1; i <= 10; i++)); do
    echo "url = \"$URL/__status/200?alog=$i\""
    echo 'output = "/dev/null"'
done | sy_curl -K - -w '%{http_code}\n')
code404=$(sy_curl -o /dev/null -w '%{http_code}' "$URL/__status/404?alog=404")
sy_eq "access log: the 11 requests were answered" "$(tr '\n' ' ' <<<"$out")$code404" \
    "200 200 200 200 200 200 200 200 200 200 404"
# The log is written in batches, at least once a second: wait for it (5 s at
# most: a loaded CI machine can be slow to schedule the flush).
ALOG="$SY_TMP/access.log"
for ((i = 0; i < 100; i++)); do
    [[ -f "$ALOG" ]] && (($(grep -c 'alog=' "$ALOG") >= 11)) && break
    sleep 0.05
done
lines=$(grep 'alog=' "$ALOG" 2>/dev/null)
sy_eq "access log: one line per request" "$(grep -c . <<<"$lines")" 11
sy_eq "access log: every request has its own line" \
    "$(grep -Eo 'alog=[0-9]+' <<<"$lines" | sort -u | wc -l)" 11
sy_eq "access log: every line is one JSON object" "$(grep -Ecv '^\{.*\}$' "$ALOG")" 0
sy_eq "access log: status 200 and pool blue on the 10 good ones" \
    "$(grep -E '"status": ?200' <<<"$lines" | grep -cE '"pool": ?"blue"')" 10
sy_eq "access log: the 404 is logged as 404" \
    "$(grep 'alog=404' <<<"$lines" | grep -cE '"status": ?404')" 1

# A request refused before it reached a pool is an exchange too.
printf 'GET /bad HTTP/1.1\r\nHost : x\r\n\r\n' | sy_raw "$PORT" "$SY_TMP/bad.out" 5
sy_match "a malformed request gets 400" "$(head -n 1 "$SY_TMP/bad.out")" '^HTTP/1.1 400 '
for ((i = 0; i < 100; i++)); do
    grep -qE '"status": ?400' "$ALOG" && break
    sleep 0.05
done
sy_match "access log: the 400 is logged, with no pool" "$(grep -E '"status": ?400' "$ALOG")" \
    '"pool": ?null.*"error": ?"malformed request"'

sy_stop "$SY_PROXY_PID" 10
sy_eq "proxy exits 0 on SIGTERM" "$SY_RC" 0

sy_finish
