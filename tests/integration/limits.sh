#!/usr/bin/env bash
# limits.sh - the proxy under too many clients and too greedy ones:
#   - limits.max_connections 5 and 8 connections: the first 5 are served,
#     the other 3 are closed at once, the refusal is logged once and counted,
#     and once the 5 close new connections are served again;
#   - a client that pipelines 200 MB of requests without reading a byte: the
#     proxy stops reading from it (the kernel takes a bounded part, the rest
#     waits in the client) and keeps serving everyone else;
#   - out of descriptors (ulimit -n 64, 100 idle connections): accept fails,
#     the listeners pause instead of spinning (the process's CPU time stays
#     low), one log line says so, and it serves again once clients close.
. "$(dirname "$0")/lib.sh"
sy_init "$@"

sy_port BLUE
sy_port GREEN
sy_port PORT
sy_port HTTP
sy_port P_EMFILE
sy_backend blue-1 "$BLUE" --body-bytes 65536
sy_backend green-1 "$GREEN"
CONF="$SY_TMP/limits.json"
LOG="$SY_TMP/proxy.log"
ADMIN="\"admin\": {\"socket\": \"$SY_TMP/ctl.sock\", \"http\": \"127.0.0.1:$HTTP\"}"
sy_config "$CONF" port="$PORT" blue="blue-1@$BLUE" green="green-1@$GREEN" percent=0 \
    extra="\"limits\": {\"max_connections\": 5}, $ADMIN"
sy_proxy "$CONF" "$PORT" || sy_finish
PROXY=$SY_PROXY_PID
sy_check "the admin listener accepts connections" sy_wait_port "$HTTP" "$PROXY"

# metric NAME: a sample of the proxy's /metrics without labels.
metric()
{
    sy_curl "http://127.0.0.1:$HTTP/metrics" | awk -v n="$1" '$1 == n { print $2 }'
}

# wait_metric NAME VALUE: until the metric reads VALUE (at most 5 s).
wait_metric()
{
    local i
    for ((i = 0; i < 100; i++)); do
        [[ "$(metric "$1")" == "$2" ]] && return 0
        sleep 0.05
    done
    return 1
}

# ask FD: sends a GET on the open connection FD; prints its status line (or
# nothing when the connection closed or stayed silent for 3 s).
ask()
{
    local line=
    printf 'GET /held HTTP/1.1\r\nHost: t\r\n\r\n' 1>&"$1" 2>/dev/null
    read -r -t 3 line <&"$1"
    printf '%s' "${line%$'\r'}"
}

# --- limits.max_connections -------------------------------------------------------
held=()
for ((i = 0; i < 5; i++)); do
    exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
    held+=("$fd")
done
# The two workers accept from queues of their own: the first 5 must be in
# before the next come, or one of those could be the one refused.
sy_check "5 connections open: switchyard_connections is 5" wait_metric switchyard_connections 5
over=()
for ((i = 0; i < 3; i++)); do
    exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
    over+=("$fd")
done
closed=0
t0=$(sy_now_ms)
for fd in "${over[@]}"; do
    read -r -t 3 line <&"$fd"
    (($? < 128)) && closed=$((closed + 1)) # not a timeout: end of file (or reset)
done
elapsed=$(($(sy_now_ms) - t0))
sy_eq "connections 6 to 8 are closed by the proxy" "$closed" 3
sy_range "... at once (ms)" "$elapsed" 0 1500
served=0
for fd in "${held[@]}"; do
    [[ "$(ask "$fd")" == "HTTP/1.1 200 OK" ]] && served=$((served + 1))
done
sy_eq "the first 5 connections are served" "$served" 5
sy_eq "switchyard_connections_refused_total is 3" "$(metric switchyard_connections_refused_total)" 3
sy_eq "the refusal is logged once" "$(grep -c 'limits.max_connections (5) reached' "$LOG")" 1
for fd in "${held[@]}" "${over[@]}"; do
    exec {fd}>&-
done
sy_check "the 5 closed: switchyard_connections is 0" wait_metric switchyard_connections 0
sy_eq "then a new connection is served" "$(sy_curl -o /dev/null -w '%{http_code}' \
    "http://127.0.0.1:$PORT/after")" 200

# --- pipelining without reading -----------------------------------------------------
# 200 MB of GETs, each answered with 64 KiB, on one connection that never
# reads. A proxy that kept reading would take them all within the 4 s; one
# that stops takes what fits in the socket buffers (a few MB). dd prints how
# much it wrote when SIGINT stops it; --foreground makes timeout send that
# signal once, to dd alone: the second copy it otherwise sends to its process
# group could kill dd before dd has printed (its handler is SA_RESETHAND).
SENT=$((200 * 1000 * 1000))
exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
yes $'GET /pipe HTTP/1.1\r\nHost: t\r\n\r' | head -c "$SENT" |
    timeout --foreground -s INT 4 dd bs=65536 iflag=fullblock 2>"$SY_TMP/dd.err" 1>&"$fd"
taken=$(grep -Eo '^[0-9]+ bytes' "$SY_TMP/dd.err" | grep -Eo '^[0-9]+')
[[ -n "$taken" ]] || sed "s/^/# dd: /" "$SY_TMP/dd.err"
sy_range "a client pipelining 200 MB without reading: the proxy took at most 100 MB (bytes)" \
    "${taken:-0}" 1 100000000
sy_eq "meanwhile another client is served" "$(sy_curl -o /dev/null -w '%{http_code}' \
    "http://127.0.0.1:$PORT/meanwhile")" 200
exec {fd}>&-
sy_check "the pipelining client closed: switchyard_connections is 0" \
    wait_metric switchyard_connections 0

# --- out of file descriptors ----------------------------------------------------------
sy_config "$SY_TMP/emfile.json" port="$P_EMFILE" blue="blue-1@$BLUE" green="green-1@$GREEN" \
    percent=0 alog=access-emfile.log
ELOG="$SY_TMP/proxy-emfile.log"
(
    ulimit -n 64 && exec "$SY_BUILD/switchyard" -c "$SY_TMP/emfile.json"
) >>"$ELOG" 2>&1 &
EPID=$!
SY_PIDS+=("$EPID")
sy_check "switchyard with ulimit -n 64 listens" sy_wait_port "$P_EMFILE" "$EPID"

# cpu_ticks PID: user + system time of PID so far, in clock ticks.
cpu_ticks()
{
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}

many=()
for ((i = 0; i < 100; i++)); do
    exec {fd}<>"/dev/tcp/127.0.0.1/$P_EMFILE" || break
    many+=("$fd")
done
sy_eq "100 connections made (the kernel queues what the proxy cannot accept)" "${#many[@]}" 100
sleep 0.5
ticks0=$(cpu_ticks "$EPID")
sleep 2
ticks=$(($(cpu_ticks "$EPID") - ticks0))
hz=$(getconf CLK_TCK)
# A loop on accept() would burn the 2 s whole; pausing costs next to nothing.
sy_range "out of descriptors for 2 s: CPU time used (ticks of 1/$hz s)" "$ticks" 0 $((hz / 4))
sy_eq "out of descriptors: logged once" "$(grep -c 'accept: Too many open files' "$ELOG")" 1
for fd in "${many[@]}"; do
    exec {fd}>&-
done
code=
for ((i = 0; i < 50; i++)); do
    code=$(SY_CURL_MAX_TIME=2 sy_curl -o /dev/null -w '%{http_code}' \
        "http://127.0.0.1:$P_EMFILE/again" 2>/dev/null)
    [[ "$code" == 200 ]] && break
    sleep 0.1
done
sy_eq "after the clients closed: served again" "$code" 200
sy_check "the proxy is still running" kill -0 "$EPID"
sy_check "the first proxy is still running" kill -0 "$PROXY"

sy_finish
