#!/usr/bin/env bash
# fleet.sh - three switchyard instances sharing one state through a real
# redis-server:
#   - a weight set on one instance is routed by the other two (and how
#     long that took);
#   - a rollback on one stops green traffic on all three;
#   - only the leader advances a rollout, and when it dies another
#     instance takes the same rollout over and finishes it;
#   - Redis killed mid-rollout: a rollback made meanwhile is applied at
#     once locally, and written (state and event) when Redis returns;
#   - an instance that starts reads the fleet's state before it serves.
. "$(dirname "$0")/lib.sh"
sy_init "$@"

sy_need_ctl
command -v redis-server >/dev/null && command -v redis-cli >/dev/null ||
    { sy_not_ok "redis-server and redis-cli are there"; sy_finish; }

sy_backends
sy_port REDIS
NS="sy-fleet-test"
# appendfsync always: a redis-server killed with SIGKILL keeps every write,
# as a production Redis with AOF would.
sy_redis "$REDIS" --appendonly yes --appendfsync always

NAMES=(a b c)
declare -A PORTS SOCKS PIDS ADMINS
for n in "${NAMES[@]}"; do
    sy_port "PORTS[$n]"
    SOCKS[$n]="$SY_TMP/ctl-$n.sock"
    sy_port "ADMINS[$n]"
done

write_config()
{
    local n=$1
    sy_config "$SY_TMP/$n.json" port="${PORTS[$n]}" blue="blue-1@$BLUE" green="green-1@$GREEN" \
        percent=0 alog="access-$n.log" \
        extra="\"admin\": {\"socket\": \"${SOCKS[$n]}\", \"http\": \"127.0.0.1:${ADMINS[$n]}\"},
  \"state\": {\"file\": \"state-$n.json\"},
  \"redis\": {\"url\": \"redis://127.0.0.1:$REDIS/0\", \"namespace\": \"$NS\", \"lease_ms\": 1500},
  \"detector\": {\"window_s\": 5, \"min_requests\": 5, \"max_p99_ms\": 1000,
                 \"fast_rollback\": {\"consecutive_failures\": 5}},
  \"rollout\": {\"steps\": [10, 25, 50, 100], \"step_s\": 1}"
}

start()
{
    write_config "$1"
    sy_proxy "$SY_TMP/$1.json" "${PORTS[$1]}" "proxy-$1" || sy_finish
    PIDS[$1]=$SY_PROXY_PID
}

ctl()
{
    local n=$1
    shift
    OUT=$("$CTL" -s "${SOCKS[$n]}" --timeout 20000 "$@" 2>&1)
    RC=$?
    ((RC == 0)) || echo "# switchyardctl ($n) $*: exit $RC: $OUT"
}

# field N JQ: one value of instance N's status.
field()
{
    "$CTL" -s "${SOCKS[$1]}" --timeout 20000 --json status | jq -r "$2"
}

# wait_all JQ VALUE SECONDS: until every running instance's status says so.
wait_all()
{
    local i n ok
    for ((i = 0; i < $3 * 20; i++)); do
        ok=1
        for n in "${!PIDS[@]}"; do
            [[ "$(field "$n" "$1")" == "$2" ]] || { ok=0; break; }
        done
        ((ok)) && return 0
        sleep 0.05
    done
    for n in "${!PIDS[@]}"; do echo "# instance $n: $1 = $(field "$n" "$1")"; done
    return 1
}

# answers N COUNT SERVER: how many of COUNT requests to instance N SERVER
# answered.
answers()
{
    local i g=0
    for ((i = 0; i < $2; i++)); do
        [[ "$(sy_curl -o /dev/null -w '%header{x-backend}' "http://127.0.0.1:${PORTS[$1]}/g/$i")" == "$3" ]] && ((g++))
    done
    echo "$g"
}

leader()
{
    local n
    for n in "${!PIDS[@]}"; do
        [[ "$(field "$n" .redis.leader)" == true ]] && { echo "$n"; return 0; }
    done
    return 1
}

# wait_leader SECONDS: until some running instance leads.
wait_leader()
{
    local i
    for ((i = 0; i < $1 * 10; i++)); do
        leader >/dev/null && return 0
        sleep 0.1
    done
    return 1
}

for n in "${NAMES[@]}"; do start "$n"; done

# --- All three share one state ----------------------------------------------
sy_check "every instance is linked to Redis" wait_all .redis.up true 10
sy_check "one generation everywhere" wait_all .redis.synced true 10

t0=$(sy_now_ms)
ctl a weight 30 --reason "fleet test"
sy_eq "weight 30 on a is accepted" "$RC" 0
sy_check "b and c route 30 % to green within 2 s" wait_all .state.candidate_percent 30 2
echo "# weight on a -> seen by every instance in $(($(sy_now_ms) - t0)) ms (includes status polling)"
sy_eq "redis holds the new generation" \
    "$(redis-cli -p "$REDIS" hget "$NS:state" generation)" "$(field a .state.generation)"

# --- A rollback anywhere is a rollback everywhere ---------------------------
ctl b rollback --reason "bad build seen on b"
sy_eq "rollback on b is accepted" "$RC" 0
sy_check "every instance is rolled back" wait_all .state.phase rolled_back 2
for n in a b c; do
    sy_eq "no green answer from instance $n after the rollback" "$(answers "$n" 20 green-1)" 0
done
sy_match "the rollback is in the fleet's event stream" \
    "$(redis-cli -p "$REDIS" xrange "$NS:events" - + | grep -c '"op":"rollback"')" '^[1-9]'

# --- The leader drives a rollout; another takes it over ---------------------
sy_check "one instance leads" wait_leader 5
L=$(leader)
echo "# leader: $L"
OTHER=a
[[ "$L" == a ]] && OTHER=b
ctl "$OTHER" rollout start --steps 10,25,50,100 --step-s 2 --reason "fleet rollout"
sy_eq "a rollout starts from a follower" "$RC" 0
# Traffic so that every step earns a verdict.
( for ((i = 0; i < 4000; i++)); do
      for n in a b c; do sy_curl -o /dev/null "http://127.0.0.1:${PORTS[$n]}/t/$i" 2>/dev/null; done
  done ) &
TRAFFIC=$!
SY_PIDS+=("$TRAFFIC")
sy_check "the rollout reaches step 2" wait_all '.state.step >= 2' true 20
kill -9 "${PIDS[$L]}"
unset "PIDS[$L]"
sy_check "another instance leads within the lease" wait_leader 5
echo "# new leader: $(leader)"
sy_check "the same rollout is promoted by the new leader" wait_all .state.phase promoted 30
kill "$TRAFFIC" 2>/dev/null
wait "$TRAFFIC" 2>/dev/null

# A leader stopped for a deploy gives its lease back: the next one need not
# wait for it to run out.
L2=$(leader)
L2_ID="$(hostname):${PIDS[$L2]}"
sy_stop "${PIDS[$L2]}"
unset "PIDS[$L2]"
sy_check "a leader that stops gives its lease back" \
    test "$(redis-cli -p "$REDIS" get "$NS:leader")" != "$L2_ID"
start "$L2"

# --- Redis dies mid-rollout -------------------------------------------------
start "$L" # back: it reads the fleet's state before it serves
sy_eq "the restarted instance took the fleet's state" "$(field "$L" .state.phase)" promoted
ctl a rollout start --steps 10,25,50,100 --step-s 30 --reason "second rollout"
sy_check "the second rollout is at step 1 everywhere" wait_all .state.step 1 20
kill -9 "$SY_REDIS_PID"
sy_check "instance a sees Redis gone" wait_all .redis.up false 10
ctl a rollback --reason "rolled back while Redis was down"
sy_eq "a rollback works without Redis" "$(field a .state.phase)" rolled_back
# Green was promoted: blue is the candidate now.
sy_eq "instance a routes nothing to the candidate at once" "$(answers a 20 blue-1)" 0
sy_redis "$REDIS" --appendonly yes --appendfsync always
sy_check "every instance is rolled back once Redis returns" wait_all .state.phase rolled_back 10
sy_match "the rollback made while Redis was down is in the stream" \
    "$(redis-cli -p "$REDIS" xrange "$NS:events" - + | grep -c 'while Redis was down')" '^[1-9]'

# --- switchyardctl events reads the fleet's stream --------------------------
B_ID=$(field b .redis.instance)
ctl b rollback --reason "fleet events from b"
# b sends the event before the state: once c took the state, the stream has it.
sy_check "c takes b's rollback" wait_all .state.generation "$(field b .state.generation)" 5
ctl c events
sy_match "events on c shows the rollback made on b, with b's instance" \
    "$(grep 'fleet events from b' <<<"$OUT")" "  $B_ID  .*  rollback  "
ctl c events --local
sy_match "events --local on c shows the rollback only as adopted" \
    "$(grep 'fleet events from b' <<<"$OUT")" "  sync  "
# metric N NAME: one sample of instance N's GET /metrics.
metric()
{
    sy_curl "http://127.0.0.1:${ADMINS[$1]}/metrics" | awk -v m="$2" '$1 == m { print $2 }'
}

# wait_metric N NAME VALUE SECONDS
wait_metric()
{
    local i
    for ((i = 0; i < $4 * 10; i++)); do
        [[ "$(metric "$1" "$2")" == "$3" ]] && return 0
        sleep 0.1
    done
    echo "# instance $1: $2 = $(metric "$1" "$2")"
    return 1
}

sy_check "metrics on c: Redis up" wait_metric c switchyard_redis_up 1 1
sy_check "metrics on c: Redis holds c's state" wait_metric c switchyard_redis_synced 1 5
sy_check "metrics on c: three instances in the fleet" wait_metric c switchyard_fleet_instances 3 5
one_leader_metric()
{
    local i n sum
    for ((i = 0; i < 30; i++)); do
        sum=0
        for n in a b c; do sum=$((sum + $(metric "$n" switchyard_fleet_leader))); done
        ((sum == 1)) && return 0
        sleep 0.1
    done
    return 1
}
sy_check "metrics: exactly one instance says it leads" one_leader_metric
sy_match "metrics on c: b's changes were adopted" "$(metric c switchyard_redis_adopted_total)" \
    '^[1-9]'
kill -STOP "$SY_REDIS_PID"
t0=$(sy_now_ms)
OUT_FLEET=$("$CTL" -s "${SOCKS[c]}" --timeout 5000 events 2>&1)
RC_FLEET=$?
t1=$(sy_now_ms)
ctl c events --local
RC_LOCAL=$RC
# An answer still owed when switchyard stops: the sanitizer build checks
# that nothing leaks and nothing freed is touched.
"$CTL" -s "${SOCKS[c]}" --timeout 5000 events >/dev/null 2>&1 &
PENDING=$!
sleep 0.2
sy_stop "${PIDS[c]}"
unset "PIDS[c]"
wait "$PENDING"
kill -CONT "$SY_REDIS_PID"
sy_eq "c stopped cleanly with an events reply owed" "$SY_RC" 0
sy_eq "events with Redis frozen is refused" "$RC_FLEET" 1
sy_match "... as redis_unavailable, pointing to --local" "$OUT_FLEET" \
    "redis_unavailable: .*events --local"
sy_range "... within 2 s" "$((t1 - t0))" 0 2000
sy_eq "events --local works with Redis frozen" "$RC_LOCAL" 0

# --- Rollouts started on a follower, one after the other --------------------
# The leader takes each over from preflight, and its report holds only that
# rollout's steps.
sy_check "a or b leads" wait_leader 5
L=$(leader)
F=a
[[ "$L" == a ]] && F=b
for round in 1 2; do
    ctl "$F" rollout start --steps 50,100 --step-s 60 --reason "follower's rollout $round"
    sy_check "rollout $round started on the follower $F leaves preflight" \
        wait_all .state.phase progressing 10
    ctl "$F" rollback --reason "end of round $round"
    sy_check "... and is rolled back" wait_all .state.phase rolled_back 5
    ctl "$L" --json rollout report
    sy_eq "... the leader's report has this rollout's one step" \
        "$(jq -r '.report.steps | length' <<<"$OUT")" 1
done

sy_finish
