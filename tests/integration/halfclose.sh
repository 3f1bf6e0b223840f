#!/usr/bin/env bash
# halfclose.sh - a side that closes only its sending half still gets
# everything it is owed:
#   - a client that pipelines two requests and then shuts its sending side
#     gets both answers, the last one with Connection: close;
#   - a tunnel carries on in the other direction after one side's FIN;
#   - a server that closes right after a long answer, to a client that reads
#     slowly, still gets its whole answer delivered.
. "$(dirname "$0")/lib.sh"
sy_init "$@"

RAW="$SY_BUILD/sy-rawclient"
[[ -x "$RAW" ]] || {
    sy_not_ok "sy-rawclient is built" "missing: $RAW"
    sy_finish
}

sy_backends
sy_config "$SY_TMP/halfclose.json" port="$PORT" blue="blue-1@$BLUE" green="green-1@$GREEN" \
    percent=0
sy_proxy "$SY_TMP/halfclose.json" "$PORT" || sy_finish

# --- pipelined requests, then our FIN ---------------------------------------------------
printf 'GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n' |
    "$RAW" "$PORT" --half-close --timeout-ms 5000 >"$SY_TMP/pipe.out"
rc=$?
out=$(tr -d '\r' <"$SY_TMP/pipe.out")
sy_eq "pipelined then half-closed: both requests answered" "$(grep -c '^HTTP/1.1 200' <<<"$out")" 2
sy_eq "pipelined then half-closed: the proxy closes after the last answer" "$rc" 0
# (Whether the last answer can still say "Connection: close" depends on
# whether our FIN arrived before it went out; the close itself must come.)

# --- a tunnel after the client's FIN ------------------------------------------------------
printf 'GET /ws HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\nhello-through-the-tunnel' |
    "$RAW" "$PORT" --half-close --timeout-ms 5000 >"$SY_TMP/tunnel.out"
rc=$?
out=$(tr -d '\r' <"$SY_TMP/tunnel.out")
sy_match "tunnel: 101 Switching Protocols" "$(head -n 1 <<<"$out")" '^HTTP/1.1 101 '
sy_match "tunnel: the echo comes back after the client's FIN" "$out" 'hello-through-the-tunnel$'
sy_eq "tunnel: closed once both sides are done" "$rc" 0

# --- a server that closes at once, a client that reads slowly -----------------------------
# Answers of about 4 MB with Content-Length; the backend closes right after
# the last byte, long before the client (64 KiB every 5 ms) has read it all.
# Whether the FIN is seen while answer bytes still wait in the proxy depends
# on the size, so several sizes around the buffers' sum are tried.
short=0 broken=0
for ((N = 4200000; N <= 4400000; N += 25000)); do
    printf 'GET /__bytes?n=%d&close=1 HTTP/1.1\r\nHost: x\r\n\r\n' "$N" |
        "$RAW" "$PORT" --half-close --slow-read 65536:5 --timeout-ms 30000 >"$SY_TMP/slow.out"
    head_len=$(sed -n '1,/^\r$/p' "$SY_TMP/slow.out" | wc -c)
    total=$(stat -c %s "$SY_TMP/slow.out")
    (((total - head_len) == N)) || short=$((short + 1))
    [[ "$(tail -c "$N" "$SY_TMP/slow.out" | sha256sum | cut -d' ' -f1)" == "$(sy_pattern_sha "$N")" ]] ||
        broken=$((broken + 1))
done
sy_eq "slow reader, server closed early: every answer arrives whole (9 sizes)" "$short" 0
sy_eq "slow reader, server closed early: every answer is intact" "$broken" 0

sy_stop "$SY_PROXY_PID" 10
sy_eq "proxy exits 0 on SIGTERM" "$SY_RC" 0
sy_finish
