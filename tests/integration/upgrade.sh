#!/usr/bin/env bash
# upgrade.sh - protocol upgrades: a request with Connection: upgrade gets the
# backend's 101, after which the proxy is a raw byte tunnel both ways.
. "$(dirname "$0")/lib.sh"
sy_init "$@"

sy_backends
sy_config "$SY_TMP/upgrade.json" port="$PORT" blue="blue-1@$BLUE" green="green-1@$GREEN" \
    percent=0
sy_proxy "$SY_TMP/upgrade.json" "$PORT" || sy_finish

# read_head FD: reads one response head (to the empty line) from FD into
# HEAD, without the CRs. Returns 1 when the head did not come within 5 s.
read_head()
{
    local fd=$1 line i
    HEAD=
    for ((i = 0; i < 100; i++)); do
        IFS= read -r -t 5 line <&"$fd" || return 1
        line=${line%$'\r'}
        [[ -z "$line" ]] && return 0
        HEAD+="$line"$'\n'
    done
    return 1
}

exec 3<>"/dev/tcp/127.0.0.1/$PORT"
printf 'GET /tunnel HTTP/1.1\r\nHost: test\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n' >&3
if read_head 3; then
    sy_match "upgrade: the answer is 101" "$HEAD" '^HTTP/1\.1 101 '
    sy_match "upgrade: the 101 comes from the backend" "$HEAD" '^X-Backend: blue-1$'
    sy_match "upgrade: the 101 keeps Upgrade: x" "$HEAD" '^[Uu]pgrade: x$'
    sy_match "upgrade: the 101 keeps Connection: upgrade" "$HEAD" '^[Cc]onnection: [Uu]pgrade$'
else
    sy_not_ok "upgrade: a response head within 5 s" "got: $HEAD"
fi

# Line by line: each line written comes back before the next is sent.
echoed=0
for ((i = 1; i <= 5; i++)); do
    msg="tunnel line $i: $(printf '%0*d' $((i * 300)) 0)"
    printf '%s\n' "$msg" >&3
    if IFS= read -r -t 5 back <&3 && [[ "$back" == "$msg" ]]; then
        echoed=$((echoed + 1))
    fi
done
sy_eq "upgrade: 5 lines sent through the tunnel are echoed back" "$echoed" 5

# Bytes that are no HTTP at all, in both directions at once: 1 MiB written
# by a background writer while the echo is read back.
N=$((1024 * 1024))
(yes switchyard | head -c "$N" >&3) &
writer=$!
SY_PIDS+=("$writer")
got=$(timeout 20 head -c "$N" <&3 | sha256sum | cut -d' ' -f1)
wait "$writer"
sy_forget "$writer"
sy_eq "upgrade: 1 MiB through the tunnel comes back intact" "$got" "$(sy_pattern_sha "$N")"
exec 3>&-

# The tunnel does not disturb the proxy for others.
code=$(sy_curl -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/after")
sy_eq "a plain request after the tunnel closed answers 200" "$code" 200

# Without the upgrade request the proxy never tunnels: Upgrade without
# Connection: upgrade is an ordinary request.
exec 4<>"/dev/tcp/127.0.0.1/$PORT"
printf 'GET /plain HTTP/1.1\r\nHost: test\r\nUpgrade: x\r\nConnection: close\r\n\r\n' >&4
if read_head 4; then
    sy_match "Upgrade without Connection: upgrade gets a plain 200" "$HEAD" '^HTTP/1\.1 200 '
else
    sy_not_ok "Upgrade without Connection: upgrade: a head within 5 s" "got: $HEAD"
fi
exec 4>&-

sy_stop "$SY_PROXY_PID" 10
sy_eq "proxy exits 0 on SIGTERM" "$SY_RC" 0

sy_finish
