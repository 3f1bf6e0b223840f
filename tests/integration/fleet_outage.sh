#!/usr/bin/env bash
# fleet_outage.sh - a fleet instance when Redis misbehaves:
#   - Redis down at start: the instance serves from its local state file,
#     says so loudly (log, status), and joins once Redis is there (seeding
#     an empty one);
#   - Redis slow (DEBUG SLEEP): requests never wait on it, an operator's
#     change applies at once and reaches Redis when it answers again;
#   - Redis frozen (SIGSTOP) longer than the lease: no instance can prove it
#     leads, so the rollout holds its weight; it goes on once Redis is back.
. "$(dirname "$0")/lib.sh"
sy_init "$@"

sy_need_ctl
command -v redis-server >/dev/null && command -v redis-cli >/dev/null ||
    { sy_not_ok "redis-server and redis-cli are there"; sy_finish; }

sy_backends
sy_port REDIS
NS="sy-outage-test"
SOCK="$SY_TMP/ctl.sock"
CONF="$SY_TMP/outage.json"
sy_config "$CONF" port="$PORT" blue="blue-1@$BLUE" green="green-1@$GREEN" percent=10 \
    extra="\"admin\": {\"socket\": \"$SOCK\"},
  \"state\": {\"file\": \"state.json\"},
  \"redis\": {\"url\": \"redis://127.0.0.1:$REDIS/0\", \"namespace\": \"$NS\", \"lease_ms\": 1000},
  \"detector\": {\"window_s\": 5, \"min_requests\": 5, \"max_p99_ms\": 1000},
  \"rollout\": {\"steps\": [20, 40, 100], \"step_s\": 1}"

# slowest N: the slowest of N requests through the proxy, in ms.
slowest()
{
    local i t max=0
    for ((i = 0; i < $1; i++)); do
        t=$(sy_curl -o /dev/null -w '%{time_total}' "http://127.0.0.1:$PORT/s/$i")
        t=$(awk -v t="$t" 'BEGIN { printf "%d", t * 1000 }')
        ((t > max)) && max=$t
    done
    echo "$max"
}

# --- Redis down at start ----------------------------------------------------
t0=$(sy_now_ms)
sy_proxy "$CONF" "$PORT" || sy_finish
started_ms=$(($(sy_now_ms) - t0))
sy_range "with Redis down, it serves within 5 s (waited at most 3 s for Redis)" \
    "$started_ms" 0 5000
sy_eq "requests are answered" "$(sy_curl -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/x")" 200
sy_eq "status says Redis is down" "$(sy_field .redis.up)" false
sy_match "... and why" "$(sy_field .redis.last_error)" "refused"
sy_match "the log says it loudly" "$(cat "$SY_TMP/proxy.log")" \
    "error: redis: .* did not answer within 3000 ms: starting from the local state"
sy_ctl weight 15 --reason "set while Redis was away"
sy_eq "an operator's change applies without Redis" "$(sy_field .state.candidate_percent)" 15

sy_redis "$REDIS"
sy_check "it joins once Redis is there" sy_wait_field .redis.synced true 10
sy_eq "... and seeded the empty Redis with its state" \
    "$(redis-cli -p "$REDIS" hget "$NS:state" state | jq -c .candidate_bp)" 1500

# --- Redis slow -------------------------------------------------------------
redis-cli -p "$REDIS" debug sleep 2 >/dev/null &
SLEEPER=$!
sleep 0.2
t0=$(sy_now_ms)
sy_ctl weight 25 --reason "set while Redis sleeps"
sy_range "a weight change does not wait for a sleeping Redis (ms)" $(($(sy_now_ms) - t0)) 0 1000
sy_eq "... and routes at once" "$(sy_field .state.candidate_percent)" 25
sy_range "requests do not wait for it either (slowest of 50, ms)" "$(slowest 50)" 0 500
wait "$SLEEPER"
sy_check "the change reaches Redis once it answers" sy_wait_field .redis.synced true 10
sy_eq "... with its generation" "$(redis-cli -p "$REDIS" hget "$NS:state" generation)" \
    "$(sy_field .state.generation)"

# --- Redis frozen longer than the lease: the rollout holds ------------------
sy_ctl rollout start --steps 20,40,100 --step-s 1 --reason "outage test"
sy_check "the rollout reaches step 1" sy_wait_field .state.step 1 10
( for ((i = 0; i < 3000; i++)); do sy_curl -o /dev/null "http://127.0.0.1:$PORT/t/$i" 2>/dev/null; done ) &
TRAFFIC=$!
SY_PIDS+=("$TRAFFIC")
kill -STOP "$SY_REDIS_PID"
sy_check "the lease lapses: this instance no longer leads" sy_wait_field .redis.leader false 5
step=$(sy_field .state.step)
sleep 3 # three step_s: a leader would have moved on
sy_eq "the rollout holds its step while no leader can be proven" "$(sy_field .state.step)" "$step"
sy_eq "... and its phase" "$(sy_field .state.phase)" progressing
kill -CONT "$SY_REDIS_PID"
sy_check "it leads again once Redis answers" sy_wait_field .redis.leader true 10
sy_check "the rollout goes on to promotion" sy_wait_field .state.phase promoted 30
kill "$TRAFFIC" 2>/dev/null
wait "$TRAFFIC" 2>/dev/null

sy_finish
