#!/usr/bin/env bash
# drain.sh - SIGTERM drains: the proxy stops accepting at once, lets the
# exchanges in flight finish, closes idle keep-alive connections, and exits
# 0 within timeouts_ms.drain.
. "$(dirname "$0")/lib.sh"
sy_init "$@"

CLIENTS=10
LATENCY_MS=1000
DRAIN_MS=5000

sy_port BLUE
sy_port GREEN
sy_port PORT
sy_backend blue-1 "$BLUE" --latency-ms "$LATENCY_MS"
sy_backend green-1 "$GREEN" --latency-ms "$LATENCY_MS"
sy_config "$SY_TMP/drain.json" port="$PORT" blue="blue-1@$BLUE" green="green-1@$GREEN" \
    percent=50 extra="\"timeouts_ms\": {\"drain\": $DRAIN_MS}"
sy_proxy "$SY_TMP/drain.json" "$PORT" || sy_finish
PROXY=$SY_PROXY_PID

# An idle keep-alive client: one answered request, then silence. The drain
# must close it rather than wait for it.
exec 3<>"/dev/tcp/127.0.0.1/$PORT"
printf 'GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n' >&3
idle_status=
IFS= read -r -t 5 idle_status <&3
sy_match "idle client: its first request is answered" "$idle_status" '^HTTP/1\.1 200 '
for ((i = 0; i < 20; i++)); do # the rest of that head and its "ok\n" body
    IFS= read -r -t 5 line <&3 || break
    [[ "$line" == ok ]] && break
done

curls=()
for ((i = 0; i < CLIENTS; i++)); do
    sy_curl -o /dev/null -w '%{http_code}\n' "http://127.0.0.1:$PORT/slow/$i" \
        >"$SY_TMP/curl.$i" 2>&1 &
    curls+=($!)
    SY_PIDS+=($!)
done
# All of them connected (plus the idle client), then ~300 ms for the
# requests to reach the backends: they are in flight for 1 s.
for ((i = 0; i < 100; i++)); do
    (($(sy_clients "$PORT") >= CLIENTS + 1)) && break
    sleep 0.03
done
sy_eq "all $CLIENTS slow clients and the idle one are connected" "$(sy_clients "$PORT")" \
    $((CLIENTS + 1))
sleep 0.3

t0=$(sy_now_ms)
kill -TERM "$PROXY"

# New connections are refused soon after the signal, while the slow
# requests are still in flight (they need about 700 ms more).
refused=0
for ((i = 0; i < 20; i++)); do
    if ! (exec 4<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
        refused=1
        break
    fi
    sleep 0.02
done
t_refused=$(($(sy_now_ms) - t0))
sy_eq "a new connection after SIGTERM is refused" "$refused" 1
if kill -0 "$PROXY" 2>/dev/null; then
    sy_ok "the proxy still runs while requests are in flight (refused after $t_refused ms)"
else
    sy_not_ok "the proxy still runs while requests are in flight" "it exited before $t_refused ms"
fi

# The idle keep-alive connection is closed: EOF, not a timeout.
if IFS= read -r -t 3 line <&3; then
    sy_not_ok "the idle keep-alive connection is closed by the drain" "read: $line"
elif (($? > 128)); then
    sy_not_ok "the idle keep-alive connection is closed by the drain" "still open after 3 s"
else
    sy_ok "the idle keep-alive connection is closed by the drain"
fi
exec 3<&-

ok=0
for ((i = 0; i < CLIENTS; i++)); do
    wait "${curls[$i]}"
    sy_forget "${curls[$i]}"
    [[ "$(cat "$SY_TMP/curl.$i")" == 200 ]] && ok=$((ok + 1))
done
sy_eq "all $CLIENTS requests in flight at SIGTERM answered 200" "$ok" "$CLIENTS"

# Bounded wait for the exit: the drain time plus a little.
for ((i = 0; i < (DRAIN_MS + 2000) / 50; i++)); do
    kill -0 "$PROXY" 2>/dev/null || break
    sleep 0.05
done
elapsed=$(($(sy_now_ms) - t0))
if kill -0 "$PROXY" 2>/dev/null; then
    sy_not_ok "the proxy exits within timeouts_ms.drain" "still running after $elapsed ms"
    sy_stop "$PROXY" 1
else
    wait "$PROXY"
    rc=$?
    sy_forget "$PROXY"
    sy_eq "the proxy exits 0 after the drain" "$rc" 0
    sy_range "the proxy exits within timeouts_ms.drain ($DRAIN_MS ms) of SIGTERM (ms)" \
        "$elapsed" 0 "$DRAIN_MS"
fi
sy_match "the proxy logged the drain" "$(cat "$SY_TMP/proxy.log")" '[Dd]rain'

# --- a drain cut short: requests outliving timeouts_ms.drain ------------------------
sy_port PORT2
sy_config "$SY_TMP/cut.json" port="$PORT2" blue="blue-1@$BLUE" green="green-1@$GREEN" \
    percent=0 extra='"timeouts_ms": {"drain": 300}' alog=access-cut.log
sy_proxy "$SY_TMP/cut.json" "$PORT2" proxy-cut || sy_finish
PROXY=$SY_PROXY_PID
sy_match "the blue backend accepts a 3 s latency fault" \
    "$(sy_curl -X POST -d '{"latency_ms": 3000}' -o /dev/null -w '%{http_code}' \
        "http://127.0.0.1:$BLUE/__fault")" '^200$'
sy_curl -o /dev/null -w '%{http_code}\n' "http://127.0.0.1:$PORT2/slower" >"$SY_TMP/cut.curl" \
    2>/dev/null &
cut_curl=$!
SY_PIDS+=("$cut_curl")
for ((i = 0; i < 100; i++)); do
    (($(sy_clients "$PORT2") >= 1)) && break
    sleep 0.03
done
sleep 0.3
t0=$(sy_now_ms)
sy_stop "$PROXY" 5
elapsed=$(($(sy_now_ms) - t0))
sy_eq "drain cut short: the proxy still exits 0" "$SY_RC" 0
sy_range "drain cut short: it exits soon after timeouts_ms.drain (300 ms) (ms)" "$elapsed" 200 2000
wait "$cut_curl"
sy_forget "$cut_curl"
# Cut off before its head: no answer at all (curl says 000), or an error.
sy_match "drain cut short: the cut request did not get a 200" "$(cat "$SY_TMP/cut.curl")" \
    '^(000|5[0-9][0-9])$'

sy_finish
