#!/usr/bin/env bash
# control.sh - the control socket: one JSON request per line, one reply line.
#   - status, weight, expect_generation conflicts, rollback, and that the split
#     the proxy serves really follows them;
#   - every error code for a bad request, and the proxy keeps serving;
#   - a line over 64 KiB is refused and the connection closed;
#   - events in order, and followers get new ones as they happen; a follower
#     that half-closes or vanishes is closed and its slot freed;
#   - the socket file: its mode, removed on exit (only when it is still ours),
#     a stale one replaced, a live one (even one not accepting) or a
#     non-socket refused;
#   - a restart keeps the weight (state file); a uid not allowed is refused,
#     unless its gid is in allow_gids.
. "$(dirname "$0")/lib.sh"
sy_init "$@"

if ! command -v jq >/dev/null; then
    sy_not_ok "jq is installed (the replies are checked with it)"
    sy_finish
fi
RAW=$SY_BUILD/sy-rawclient
[[ -x "$RAW" ]] || {
    sy_not_ok "sy-rawclient is built" "missing: $RAW"
    sy_finish
}

sy_backends
SOCK="$SY_TMP/ctl.sock"
STATE="$SY_TMP/switchyard.state.json"
CONF="$SY_TMP/control.json"
sy_config "$CONF" port="$PORT" blue="blue-1@$BLUE" green="green-1@$GREEN" percent=0 \
    extra="\"admin\": {\"socket\": \"$SOCK\", \"socket_mode\": \"0640\"},
  \"state\": {\"file\": \"$STATE\"}"

# ctl LINE [SOCKET]: sends LINE, half-closes, prints the reply lines.
ctl()
{
    printf '%s\n' "$1" | "$RAW" --unix "${2:-$SOCK}" --half-close --timeout-ms 5000
}

# field JSON FILTER: jq -r FILTER on one reply ("" when it is not JSON).
field()
{
    jq -r "$2" <<<"$1" 2>/dev/null
}

# requests TAG: 50 requests on one connection; prints the X-Backend of each.
requests()
{
    for ((i = 0; i < 50; i++)); do
        echo "url = \"http://127.0.0.1:$PORT/$1/$i\""
        echo 'output = "/dev/null"'
    done | sy_curl -K - -w '%header{x-backend}\n'
}

# wait_file PATH: until PATH exists (5 s at most).
wait_file()
{
    local i
    for ((i = 0; i < 100; i++)); do
        [[ -e "$1" ]] && return 0
        sleep 0.05
    done
    return 1
}

sy_proxy "$CONF" "$PORT" proxy || sy_finish
wait_file "$SOCK"

# --- the socket file ----------------------------------------------------------------------
sy_check "the socket file exists and is a socket" test -S "$SOCK"
sy_eq "the socket file has admin.socket_mode" "$(stat -c %a "$SOCK")" 640

# --- status -------------------------------------------------------------------------------
r=$(ctl '{"cmd":"status"}')
sy_eq "status: ok" "$(field "$r" .ok)" true
sy_eq "status: generation 0" "$(field "$r" .state.generation)" 0
sy_eq "status: phase idle" "$(field "$r" .state.phase)" idle
sy_eq "status: stable blue, candidate green" \
    "$(field "$r" '.state.stable + "/" + .state.candidate')" blue/green
sy_eq "status: blue's servers" "$(field "$r" '.pools.blue.role + " " + .pools.blue.servers[0].name +
    " " + .pools.blue.servers[0].addr')" "stable blue-1 127.0.0.1:$BLUE"
sy_eq "status: green is the candidate" "$(field "$r" .pools.green.role)" candidate
out=$(requests a)
sy_eq "before any change: all 50 requests on blue" "$(grep -c '^blue-1$' <<<"$out")" 50

# --- weight 100 ----------------------------------------------------------------------------
r=$(ctl '{"cmd":"weight","percent":100,"reason":"all in"}')
sy_eq "weight 100: ok" "$(field "$r" .ok)" true
sy_eq "weight 100: generation 1" "$(field "$r" .state.generation)" 1
sy_eq "weight 100: candidate_percent 100" "$(field "$r" .state.candidate_percent)" 100
sy_eq "weight 100: updated_by is our uid" "$(field "$r" .state.updated_by)" "uid:$(id -u)"
sy_eq "weight 100: the reason is kept" "$(field "$r" .state.reason)" "all in"
out=$(requests b)
sy_eq "after weight 100: all 50 requests on green" "$(grep -c '^green-1$' <<<"$out")" 50

# --- a stale expect_generation -------------------------------------------------------------
r=$(ctl '{"cmd":"weight","percent":0,"expect_generation":7}')
sy_eq "stale expect_generation: conflict" "$(field "$r" .error.code)" conflict
sy_eq "stale expect_generation: ok false" "$(field "$r" .ok)" false
r=$(ctl '{"cmd":"status"}')
sy_eq "after the conflict: still generation 1" "$(field "$r" .state.generation)" 1
out=$(requests c)
sy_eq "after the conflict: still all 50 on green" "$(grep -c '^green-1$' <<<"$out")" 50

# --- rollback ----------------------------------------------------------------------------
r=$(ctl '{"cmd":"rollback","reason":"bad canary","expect_generation":1}')
sy_eq "rollback: phase rolled_back" "$(field "$r" .state.phase)" rolled_back
sy_eq "rollback: candidate_percent 0" "$(field "$r" .state.candidate_percent)" 0
sy_eq "rollback: generation 2" "$(field "$r" .state.generation)" 2
out=$(requests d)
sy_eq "after rollback: all 50 requests on blue" "$(grep -c '^blue-1$' <<<"$out")" 50

# --- bad requests: each its code, nothing changes -------------------------------------------
bad()
{
    local line=$1 want=$2 r
    r=$(ctl "$line")
    sy_eq "$line: $want" "$(field "$r" .error.code)" "$want"
}
bad '{"cmd":"status"' bad_json
bad 'not json at all' bad_json
bad '{"cmd":"fly"}' unknown_command
bad '{"percent":10}' bad_request
bad '{"cmd":"weight"}' bad_request
bad '{"cmd":"weight","percent":"10"}' bad_request
bad '{"cmd":"weight","percent":150}' bad_request
bad '{"cmd":"weight","percent":-1}' bad_request
bad '{"cmd":"weight","percent":12.345}' bad_request
bad '{"cmd":"weight","percent":10,"colour":"green"}' bad_request
bad '{"cmd":"weight","percent":10,"expect_generation":0}' bad_request
bad '{"cmd":"status","verbose":true}' bad_request
bad '[1,2]' bad_request
# An empty key once made the key check loop forever on the control thread.
bad '{"cmd":"weight","":1,"percent":5}' bad_request
bad '{"cmd":"status","":1}' bad_request
# Control characters in a reason would forge lines in logs and terminals.
bad '{"cmd":"rollback","reason":"ok\n2026 fake event"}' bad_request
bad '{"cmd":"rollback","reason":"\u001b[31mred"}' bad_request
bad '{"cmd":"server.drain","server":"blue/nobody"}' unknown_server
bad '{"cmd":"rollout.start"}' bad_request
r=$(ctl '{"cmd":"rollout.start"}')
sy_eq "rollout.start without a rollout section says so" "$(field "$r" .error.message)" \
    "cannot start a rollout: the config has no rollout section"
bad '{"cmd":"rollout.report"}' not_found
r=$(ctl '{"cmd":"status"}')
sy_eq "after the bad requests: still generation 2" "$(field "$r" .state.generation)" 2
out=$(requests e)
sy_eq "after the bad requests: the proxy serves, all on blue" "$(grep -c '^blue-1$' <<<"$out")" 50

# Several requests on one connection, one reply line each, in order.
r=$(printf '%s\n' '{"cmd":"status"}' '{"cmd":"fly"}' '{"cmd":"status"}' |
    "$RAW" --unix "$SOCK" --half-close --timeout-ms 5000)
sy_eq "three requests on one connection: three replies in order" \
    "$(jq -r '.ok' <<<"$r" | tr '\n' ' ')" "true false true "

# --- a line over 64 KiB ---------------------------------------------------------------------
{
    printf '{"cmd":"status","reason":"'
    head -c 70000 /dev/zero | tr '\0' a
    printf '"}\n{"cmd":"status"}\n'
} >"$SY_TMP/long.txt"
"$RAW" --unix "$SOCK" --timeout-ms 5000 <"$SY_TMP/long.txt" >"$SY_TMP/long.out"
sy_eq "a line over 64 KiB: the server closes the connection" "$?" 0
sy_eq "a line over 64 KiB: line_too_long, and nothing after it" \
    "$(jq -r '.error.code' <"$SY_TMP/long.out" | tr '\n' ' ')" "line_too_long "
# A line of exactly 65536 bytes is still fine (spaces are valid JSON).
{
    printf '{"cmd":"status"}'
    head -c $((65536 - 16)) /dev/zero | tr '\0' ' '
    printf '\n'
} >"$SY_TMP/max.txt"
r=$("$RAW" --unix "$SOCK" --half-close --timeout-ms 5000 <"$SY_TMP/max.txt")
sy_eq "a line of exactly 65536 bytes is answered" "$(field "$r" .ok)" true

# --- percent with two decimals is exact -----------------------------------------------------
# A follower, connected before the change, must see it as it happens.
{
    printf '%s\n' '{"cmd":"events","since":2,"follow":true}'
    sleep 2
} | "$RAW" --unix "$SOCK" --timeout-ms 3000 >"$SY_TMP/follow.out" &
FOLLOW_PID=$!
sleep 0.5
r=$(ctl '{"cmd":"weight","percent":25.5,"reason":"quarter"}')
sy_eq "weight 25.5: candidate_percent 25.5" "$(field "$r" .state.candidate_percent)" 25.5
sy_eq "weight 25.5: generation 3" "$(field "$r" .state.generation)" 3
sy_eq "weight 25.5: the state file holds 2550 basis points" \
    "$(jq -r .candidate_bp "$STATE" 2>/dev/null)" 2550
wait "$FOLLOW_PID"
sy_eq "follower: first the (empty) history since generation 2" \
    "$(head -n 1 "$SY_TMP/follow.out")" '{"ok":true,"events":[],"truncated":false}'
sy_eq "follower: then the new event, as it happened" \
    "$(sed -n 2p "$SY_TMP/follow.out" | jq -r '.event.op + " " + (.event.generation|tostring)')" \
    "weight 3"

# --- events ----------------------------------------------------------------------------------
r=$(ctl '{"cmd":"events"}')
sy_eq "events: every applied change, oldest first" \
    "$(field "$r" '[.events[] | .op + ":" + (.generation|tostring)] | join(" ")')" \
    "weight:1 rollback:2 weight:3"
sy_eq "events: who and why" "$(field "$r" '.events[1].who + " " + .events[1].why')" \
    "uid:$(id -u) bad canary"
r=$(ctl '{"cmd":"events","since":1}')
sy_eq "events since 1: the later two" "$(field "$r" '[.events[].generation|tostring] | join(" ")')" \
    "2 3"

# --- followers that go away ----------------------------------------------------------------
printf '%s\n' '{"cmd":"events","since":1000,"follow":true}' |
    "$RAW" --unix "$SOCK" --half-close --timeout-ms 5000 >"$SY_TMP/halfclosed.out"
sy_eq "a follower that half-closes: the server closes it" "$?" 0
sy_eq "a follower that half-closes: it got its reply first" "$(cat "$SY_TMP/halfclosed.out")" \
    '{"ok":true,"events":[],"truncated":false}'
# 64 followers take every slot; killed, their slots must come back without
# waiting for an event to fail a write.
fpids=()
for ((k = 0; k < 64; k++)); do
    printf '%s\n' '{"cmd":"events","since":1000,"follow":true}' |
        "$RAW" --unix "$SOCK" --timeout-ms 60000 >/dev/null &
    fpids+=($!)
done
# accepted SOCK: the connections the server accepted on the control socket
# (/proc/net/unix lists them with the socket's path, state 03: connected).
accepted()
{
    awk -v p="$1" '$6 == "03" && $8 == p { n++ } END { print n + 0 }' /proc/net/unix
}
# 64 sanitized clients starting on a loaded machine can take seconds. No
# other client may connect meanwhile: it could take a slot that a follower
# would then find busy.
for ((i = 0; i < 600; i++)); do
    (($(accepted "$SOCK") >= 64)) && break
    sleep 0.05
done
sy_eq "64 followers hold their slots" "$(accepted "$SOCK")" 64
r=$(ctl '{"cmd":"status"}')
sy_eq "with 64 followers, one more client is busy" "$(field "$r" .error.code)" busy
sleep 0.2 # their requests, sent before we were turned away, are read by now
kill -KILL "${fpids[@]}" 2>/dev/null
wait "${fpids[@]}" 2>/dev/null
for ((i = 0; i < 40; i++)); do
    r=$(ctl '{"cmd":"status"}')
    [[ "$(field "$r" .ok)" == true ]] && break
    sleep 0.05
done
sy_eq "the killed followers' slots are free again" "$(field "$r" .ok)" true

# --- a second switchyard on the same socket is refused ---------------------------------------
sy_port PORT2
sed "s/127.0.0.1:$PORT\"/127.0.0.1:$PORT2\"/" "$CONF" >"$SY_TMP/second.json"
timeout 20 "$SY_BUILD/switchyard" -c "$SY_TMP/second.json" >"$SY_TMP/second.log" 2>&1
sy_eq "a second switchyard on a live socket exits 1" "$?" 1
sy_match "it says another process is listening" "$(cat "$SY_TMP/second.log")" \
    'another process is listening'
r=$(ctl '{"cmd":"status"}')
sy_eq "the first one still answers on the socket" "$(field "$r" .state.generation)" 3
# A stopped first one fills its backlog and accepts nobody: the check for a
# live socket must not wait for it.
kill -STOP "$SY_PROXY_PID"
bpids=()
for ((k = 0; k < 70; k++)); do
    "$RAW" --unix "$SOCK" --timeout-ms 3000 </dev/null >/dev/null 2>&1 &
    bpids+=($!)
done
sleep 1
timeout 20 "$SY_BUILD/switchyard" -c "$SY_TMP/second.json" >"$SY_TMP/second-full.log" 2>&1
sy_eq "a second switchyard on a live socket with a full backlog exits 1 (no hang)" "$?" 1
sy_match "it says another process is listening" "$(cat "$SY_TMP/second-full.log")" \
    'another process is listening'
kill -CONT "$SY_PROXY_PID"
wait "${bpids[@]}" 2>/dev/null

# --- a socket file that is no longer ours is left in place --------------------------------
# An operator removes the first one's socket and starts a second switchyard
# there: stopping the first one must not remove the second one's socket.
FIRST_PID=$SY_PROXY_PID
rm -f "$SOCK"
sy_proxy "$SY_TMP/second.json" "$PORT2" proxy-second || sy_finish
wait_file "$SOCK"
sy_stop "$FIRST_PID" 10
sy_eq "the first switchyard exits 0" "$SY_RC" 0
sy_check "the second one's socket file is still there" test -S "$SOCK"
sy_match "the first one says the file is no longer its own" "$(cat "$SY_TMP/proxy.log")" \
    'no longer ours'
r=$(ctl '{"cmd":"status"}')
sy_eq "the second one answers on it" "$(field "$r" .state.generation)" 3

# --- restart: the socket file goes, the weight stays -----------------------------------------
sy_stop "$SY_PROXY_PID" 10
sy_eq "switchyard exits 0 on SIGTERM" "$SY_RC" 0
sy_check "the socket file is removed on exit" test ! -e "$SOCK"
# A stale socket file, as a crash leaves it: nothing listens there.
sy_proxy "$CONF" "$PORT" proxy-crash || sy_finish
wait_file "$SOCK"
kill -KILL "$SY_PROXY_PID"
wait "$SY_PROXY_PID" 2>/dev/null
sy_check "a stale socket file is in place" test -S "$SOCK"
sy_proxy "$CONF" "$PORT" proxy-restart || sy_finish
wait_file "$SOCK"
r=$(ctl '{"cmd":"status"}')
sy_eq "after a restart over a stale socket: answers, generation 3" \
    "$(field "$r" .state.generation)" 3
sy_eq "after a restart: the weight is kept (25.5)" "$(field "$r" .state.candidate_percent)" 25.5
sy_eq "after a restart: the mode again" "$(stat -c %a "$SOCK")" 640
out=$(requests f)
n=$(grep -c '^green-1$' <<<"$out")
sy_range "after a restart at 25.5 %: some but not all requests on green" "$n" 1 49
sy_stop "$SY_PROXY_PID" 10

# --- a path that is not a socket is refused --------------------------------------------------
echo 'precious' >"$SOCK"
timeout 20 "$SY_BUILD/switchyard" -c "$CONF" >"$SY_TMP/notsock.log" 2>&1
sy_eq "admin.socket on a regular file: switchyard exits 1" "$?" 1
sy_match "it says the file is not a socket" "$(cat "$SY_TMP/notsock.log")" 'is not a socket'
sy_eq "the regular file is left alone" "$(cat "$SOCK")" precious
rm -f "$SOCK"

# --- a uid not in allow_uids ----------------------------------------------------------------
SOCK3="$SY_TMP/forbidden.sock"
sy_config "$SY_TMP/forbidden.json" port="$PORT" blue="blue-1@$BLUE" green="green-1@$GREEN" \
    extra="\"admin\": {\"socket\": \"$SOCK3\", \"allow_uids\": [12345]}" alog=access3.log
sy_proxy "$SY_TMP/forbidden.json" "$PORT" proxy-forbidden || sy_finish
wait_file "$SOCK3"
printf '%s\n' '{"cmd":"weight","percent":100}' |
    "$RAW" --unix "$SOCK3" --timeout-ms 5000 >"$SY_TMP/forbidden.out"
sy_eq "uid not allowed: the server closes the connection" "$?" 0
sy_eq "uid not allowed: forbidden" "$(jq -r .error.code <"$SY_TMP/forbidden.out")" forbidden
out=$(requests g)
sy_eq "uid not allowed: nothing changed, all 50 on blue" "$(grep -c '^blue-1$' <<<"$out")" 50
sy_stop "$SY_PROXY_PID" 10

# --- a gid in allow_gids is let in ------------------------------------------------------------
# SO_PEERCRED reports the peer's primary gid: ours, whoever runs the tests.
sy_config "$SY_TMP/gids.json" port="$PORT" blue="blue-1@$BLUE" green="green-1@$GREEN" \
    extra="\"admin\": {\"socket\": \"$SOCK3\", \"allow_uids\": [12345],
  \"allow_gids\": [12346, $(id -g)]}" alog=access4.log
sy_proxy "$SY_TMP/gids.json" "$PORT" proxy-gids || sy_finish
wait_file "$SOCK3"
r=$(ctl '{"cmd":"status"}' "$SOCK3")
sy_eq "uid not allowed but gid in allow_gids: answered" "$(field "$r" .ok)" true

sy_finish
