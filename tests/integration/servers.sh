#!/usr/bin/env bash
# servers.sh - operators take servers out of rotation and reload through the
# control socket, with switchyardctl:
#   - server disable / enable: no new request, then back in the rotation;
#   - server drain: no new request, the one in flight finishes, status shows
#     "draining" with the count, then "drained";
#   - a pool with no server left answers 503; a candidate pool with none
#     left sends its share to stable;
#   - unknown servers are refused (exit 1), bad names are usage errors (2);
#   - reload: applied with its notes, refused with every problem listed, and
#     admin states survive it.
. "$(dirname "$0")/lib.sh"
sy_init "$@"

sy_need_ctl

sy_backends
sy_port BLUE2
sy_backend blue-2 "$BLUE2"
sy_port BLUE3
sy_backend blue-3 "$BLUE3"
SOCK="$SY_TMP/ctl.sock"
CONF="$SY_TMP/servers.json"
ADMIN="\"admin\": {\"socket\": \"$SOCK\"}"
sy_config "$CONF" port="$PORT" blue="blue-1@$BLUE,blue-2@$BLUE2" green="green-1@$GREEN" \
    percent=0 extra="$ADMIN"
sy_proxy "$CONF" "$PORT" || sy_finish
PROXY=$SY_PROXY_PID

# ctl ARGS...: switchyardctl on our socket; output in $OUT, exit code in $RC.
ctl()
{
    OUT=$("$CTL" -s "$SOCK" "$@" 2>&1)
    RC=$?
}

# backends N TAG: N requests, one connection each; the X-Backend values,
# sorted and counted ("3 blue-1 5 blue-2").
backends()
{
    local i
    for ((i = 0; i < $1; i++)); do
        sy_curl -o /dev/null -w '%header{x-backend}\n' "http://127.0.0.1:$PORT/$2/$i"
    done | sort | uniq -c | awk '{printf "%s%s %s", (NR > 1 ? " " : ""), $1, $2}'
}

# server_field NAME FIELD: a field of one server in `status --json`.
server_field()
{
    "$CTL" -s "$SOCK" --json status |
        jq -r --arg n "$1" ".pools[].servers[] | select(.name == \$n) | .$2"
}

sy_eq "at first every server is enabled" "$(server_field blue-1 admin) $(server_field blue-2 admin)" \
    "enabled enabled"

ctl server disable blue/blue-1
sy_eq "server disable: exit 0" "$RC" 0
sy_eq "... says so" "$OUT" "server.disable: blue/blue-1 disabled, 0 in flight"
sy_eq "... and blue-1 gets no new request" "$(backends 20 off)" "20 blue-2"
ctl status
sy_match "status shows the state column" "$OUT" \
    "blue +blue-1 +127.0.0.1:$BLUE +1 +stable +disabled +0"
ctl server enable blue/blue-1
sy_eq "server enable: exit 0" "$RC" 0
# Two workers round-robin on their own: both servers get a share, not
# necessarily 10 each.
sy_match "... and blue-1 is back in the rotation" "$(backends 20 on)" '^[0-9]+ blue-1 [0-9]+ blue-2$'

# Drain with a request in flight on blue-1: only blue-1 in rotation while it
# starts, then blue-2 back and blue-1 drained.
ctl server disable blue/blue-2
sy_fault "$BLUE" '{"latency_ms": 1500}'
sy_curl -o /dev/null -w '%{http_code} %header{x-backend}' "http://127.0.0.1:$PORT/slow" \
    >"$SY_TMP/slow" 2>&1 &
slow=$!
SY_PIDS+=("$slow")
for ((i = 0; i < 100; i++)); do
    [[ "$(server_field blue-1 in_flight)" == 1 ]] && break
    sleep 0.02
done
ctl server enable blue/blue-2
ctl server drain blue/blue-1
sy_eq "server drain: exit 0" "$RC" 0
sy_eq "... shows the request still in flight" "$OUT" "server.drain: blue/blue-1 draining, 1 in flight"
sy_eq "... and blue-1 gets no new request" "$(backends 10 drain)" "10 blue-2"
wait "$slow"
sy_eq "the request in flight on the draining server finished" "$(cat "$SY_TMP/slow")" "200 blue-1"
ctl events
sy_match "admin changes are events, with who made them" "$OUT" \
    "uid:[0-9]+  server  server blue/blue-1: enabled -> draining"
sy_fault "$BLUE" '{"latency_ms": 0}'
ctl status
sy_match "status: blue-1 is drained once empty" "$OUT" "blue-1 .* +drained +0"
sy_eq "... and the JSON says draining, 0 in flight" \
    "$(server_field blue-1 admin) $(server_field blue-1 in_flight)" "draining 0"

# Nobody left in the stable pool: 503, said clearly.
ctl server disable blue/blue-2
resp=$(sy_curl -sS -w '\n%{http_code}' "http://127.0.0.1:$PORT/none")
sy_eq "no server of the stable pool in rotation: 503" "${resp##*$'\n'}" 503
sy_match "... with a clear body" "$resp" "no server of pool blue is in rotation"

# A candidate pool with nobody left sends its share to stable.
ctl server enable blue/blue-2
ctl weight 100
ctl server disable green/green-1
sy_eq "candidate pool out of rotation: its share goes to stable" "$(backends 10 fallback)" \
    "10 blue-2"
ctl server enable green/green-1
sy_eq "... and back to the candidate once enabled" "$(backends 10 back)" "10 green-1"
ctl weight 0

ctl server disable blue/nobody
sy_eq "an unknown server is refused: exit 1" "$RC" 1
sy_match "... with the reason" "$OUT" "refused: unknown_server: .*blue/nobody"
ctl server disable green/blue-2
sy_eq "a server named in the wrong pool is refused: exit 1" "$RC" 1
ctl server disable blue-2
sy_eq "a name without its pool is a usage error: exit 2" "$RC" 2

# Reload through the socket: blue-3 joins, blue-1 (drained) stays drained,
# blue-2 (disabled) stays disabled.
ctl server disable blue/blue-2
sy_config "$CONF" port="$PORT" blue="blue-1@$BLUE,blue-2@$BLUE2,blue-3@$BLUE3" \
    green="green-1@$GREEN" percent=0 extra="$ADMIN"
ctl reload
sy_eq "reload: exit 0" "$RC" 0
sy_match "... says it was applied" "$OUT" "^reload: applied \(reload 1 since start\)"
sy_eq "... the new server is in the status" "$(server_field blue-3 admin)" enabled
sy_eq "... blue-1 is still drained, blue-2 still disabled" \
    "$(server_field blue-1 admin) $(server_field blue-2 admin)" "draining disabled"
sy_eq "... and traffic goes to blue-3 only" "$(backends 10 reloaded)" "10 blue-3"

printf '{"listen": [{"addr": "127.0.0.1:%s"}], "pools": {"blue": {}}, "bogus": 1}\n' \
    "$PORT" >"$CONF"
ctl reload
sy_eq "a bad reload is refused: exit 1" "$RC" 1
sy_match "... with code bad_config" "$OUT" "refused: bad_config: "
sy_match "... listing each problem with its position" "$OUT" "servers.json:1:[0-9]+: bogus: unknown key"
sy_match "... all of them" "$OUT" "pools.blue: missing required key|pools.green"
ctl --json reload
sy_eq "... the JSON reply lists them in error.details" \
    "$(jq -r '.error.details | length > 1' <<<"$OUT")" true
sy_eq "... and the running config stays" "$(backends 4 after-bad)" "4 blue-3"

sy_check "the proxy is still running" kill -0 "$PROXY"
sy_stop "$PROXY"
sy_eq "switchyard exits 0" "$SY_RC" 0
sy_finish
