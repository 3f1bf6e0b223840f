#!/usr/bin/env bash
# reload.sh - SIGHUP re-reads the config while traffic flows:
#   - new servers and timeouts apply from the next request;
#   - a request in flight on a removed server finishes, and a kept-alive
#     client connection survives;
#   - a broken file, or one that changes what needs a restart, is refused
#     with a clear log line and the running config stays;
#   - routing.candidate_percent does not move the live split;
#   - the access log is reopened (log rotation).
. "$(dirname "$0")/lib.sh"
sy_init "$@"

sy_backends
sy_port BLUE2
sy_backend blue-2 "$BLUE2"
CONF="$SY_TMP/reload.json"
LOG="$SY_TMP/proxy.log"
sy_config "$CONF" port="$PORT" blue="blue-1@$BLUE" green="green-1@$GREEN" percent=0
sy_proxy "$CONF" "$PORT" || sy_finish
PROXY=$SY_PROXY_PID

# backend_of PATH: the X-Backend of one request through the proxy.
backend_of()
{
    sy_curl -o /dev/null -w '%header{x-backend}' "http://127.0.0.1:$PORT$1"
}

# answer_backend: reads one answer from fd 3 (head, then a Content-Length
# body) and prints its X-Backend.
answer_backend()
{
    local line backend='' len=0
    while IFS= read -r -t 5 line <&3; do
        line=${line%$'\r'}
        [[ -z "$line" ]] && break
        case ${line,,} in
        x-backend:*) backend=${line#*: } ;;
        content-length:*) len=${line#*: } ;;
        esac
    done
    ((len > 0)) && read -r -t 5 -N "$len" line <&3
    echo "$backend"
}

sy_eq "before the reload: blue-1 serves" "$(backend_of /a)" blue-1

# A kept-alive client, answered once before the reload.
exec 3<>"/dev/tcp/127.0.0.1/$PORT"
printf 'GET /keep/1 HTTP/1.1\r\nHost: test\r\n\r\n' >&3
sy_eq "kept-alive client: first answer from blue-1" "$(answer_backend)" blue-1

# A request in flight on blue-1 across the reload.
sy_fault "$BLUE" '{"latency_ms": 1500}'
sy_curl -o /dev/null -w '%{http_code} %header{x-backend}' "http://127.0.0.1:$PORT/slow" \
    >"$SY_TMP/inflight" 2>&1 &
inflight=$!
SY_PIDS+=("$inflight")
sleep 0.4

sy_config "$CONF" port="$PORT" blue="blue-2@$BLUE2" green="green-1@$GREEN" percent=0 \
    extra='"timeouts_ms": {"upstream_header": 800}'
sy_eq "a valid config is applied" "$(sy_reload)" applied
seen=
for ((i = 0; i < 40; i++)); do
    seen=$(backend_of /b)
    [[ "$seen" == blue-2 ]] && break
    sleep 0.05
done
sy_eq "after the reload: the new server blue-2 serves" "$seen" blue-2
wait "$inflight"
sy_eq "the request in flight on the removed server finished" "$(cat "$SY_TMP/inflight")" \
    "200 blue-1"
sy_fault "$BLUE" '{"latency_ms": 0}'

printf 'GET /keep/2 HTTP/1.1\r\nHost: test\r\n\r\n' >&3
sy_eq "kept-alive client: the connection survived, now served by blue-2" "$(answer_backend)" \
    blue-2
exec 3>&-

# The new upstream_header timeout (800 ms) holds from the next request on.
sy_fault "$BLUE2" '{"latency_ms": 1500}'
t0=$(sy_now_ms)
code=$(sy_curl -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/late")
took=$(($(sy_now_ms) - t0))
sy_eq "the reloaded upstream_header timeout applies (504)" "$code" 504
sy_range "... after about 800 ms" "$took" 700 1400
sy_fault "$BLUE2" '{"latency_ms": 0}'

# A broken file: refused with file:line:col, nothing changes.
good=$(cat "$CONF")
printf '{\n  "workers": 2,\n  "listen": [{"addr": "127.0.0.1:%s"}],\n  "pools": {\n' "$PORT" >"$CONF"
printf '    "blue": {"servers": [{"name": "b", "addr": "127.0.0.1:%s", "wieght": 2}]}\n}}\n' \
    "$BLUE" >>"$CONF"
sy_eq "a config with errors is refused" "$(sy_reload)" refused
sy_match "... and the log names file, line, column and key" "$(cat "$LOG")" \
    "reload refused: $CONF:5:[0-9]+: pools.blue.servers\[0\].wieght: unknown key"
sy_eq "... and the running config stays" "$(backend_of /c)" blue-2

# A change that needs a restart: refused, said so.
sy_port OTHER
sy_config "$CONF" port="$OTHER" blue="blue-1@$BLUE" green="green-1@$GREEN" percent=0
sy_eq "a listener change is refused" "$(sy_reload)" refused
sy_match "... with the reason" "$(cat "$LOG")" \
    "reload refused: $CONF: listen: changed from \[127.0.0.1:$PORT\] to \[127.0.0.1:$OTHER\]: needs a restart"
sy_eq "... and the running config stays" "$(backend_of /d)" blue-2

# routing.candidate_percent seeds the state at first start only.
sy_config "$CONF" port="$PORT" blue="blue-2@$BLUE2" green="green-1@$GREEN" percent=100
sy_eq "a config with another candidate_percent is applied" "$(sy_reload)" applied
sy_match "... with a note that the live split stays" "$(cat "$LOG")" \
    'routing.stable/candidate_percent: not applied: the live state \(stable blue, candidate 0.00%\) stays'
greens=0
for ((i = 0; i < 20; i++)); do
    [[ "$(backend_of "/e/$i")" == green-1 ]] && greens=$((greens + 1))
done
sy_eq "... and no request goes to green" "$greens" 0

# Log rotation: the access log is reopened at every reload.
mv "$SY_TMP/access.log" "$SY_TMP/access.log.1"
sy_eq "a reload after rotating the access log" "$(sy_reload)" applied
backend_of /after-rotation >/dev/null
for ((i = 0; i < 40; i++)); do
    grep -q after-rotation "$SY_TMP/access.log" 2>/dev/null && break
    sleep 0.05
done
sy_match "... writes to a new access.log" "$(cat "$SY_TMP/access.log" 2>/dev/null)" after-rotation
sy_nomatch "... and not to the rotated one" "$(cat "$SY_TMP/access.log.1")" after-rotation

sy_check "the proxy is still running" kill -0 "$PROXY"
sy_stop "$PROXY"
sy_eq "switchyard exits 0 after the reloads" "$SY_RC" 0
sy_finish
