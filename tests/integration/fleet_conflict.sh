#!/usr/bin/env bash
# fleet_conflict.sh - what a writer with a stale view of the fleet's state
# does. Another instance's write is played by writing <ns>:state straight
# into Redis without publishing it, so this instance has not seen it when
# an operator changes the state:
#   - its weight change is refused by the compare-and-set and gives way to
#     the stored state (the conflict is counted);
#   - its rollback is refused too, but wins: it is applied again on top of
#     the stored state and written over it.
. "$(dirname "$0")/lib.sh"
sy_init "$@"

sy_need_ctl
command -v redis-server >/dev/null && command -v redis-cli >/dev/null ||
    { sy_not_ok "redis-server and redis-cli are there"; sy_finish; }

sy_backends
sy_port REDIS
sy_redis "$REDIS"
NS="sy-conflict-test"
SOCK="$SY_TMP/ctl.sock"
CONF="$SY_TMP/conflict.json"
sy_config "$CONF" port="$PORT" blue="blue-1@$BLUE" green="green-1@$GREEN" percent=0 \
    extra="\"admin\": {\"socket\": \"$SOCK\"},
  \"state\": {\"file\": \"state.json\"},
  \"redis\": {\"url\": \"redis://127.0.0.1:$REDIS/0\", \"namespace\": \"$NS\"}"
sy_proxy "$CONF" "$PORT" || sy_finish

# write_behind_its_back PERCENT PHASE: another instance's newer state, in
# Redis only (no PUBLISH), two generations ahead.
write_behind_its_back()
{
    local gen state
    gen=$(($(redis-cli -p "$REDIS" hget "$NS:state" generation) + 2))
    state=$(redis-cli -p "$REDIS" hget "$NS:state" state |
        jq -c --argjson g "$gen" --argjson bp "$(($1 * 100))" --arg ph "$2" \
            '.generation = $g | .candidate_bp = $bp | .phase = $ph |
             .updated_by = "uid:4242" | .reason = "written elsewhere"')
    redis-cli -p "$REDIS" hset "$NS:state" generation "$gen" state "$state" \
        instance other-host:1 >/dev/null
    echo "$gen"
}

# stale_change PERCENT COMMAND...: writes another instance's state behind
# this one's back (STALE_GEN), then runs the command. Returns 0 once the
# command's write met that state as a conflict. The instance re-reads Redis
# every second and may see the other write first (the command then simply
# applies on top): the scenario is played again, at most 5 times.
stale_change()
{
    local pct=$1 before attempt
    shift
    for ((attempt = 0; attempt < 5; attempt++)); do
        before=$(sy_field .redis.conflicts)
        STALE_GEN=$(write_behind_its_back "$pct" idle)
        sy_ctl "$@"
        ((RC == 0)) || return 1
        sy_wait_field .redis.synced true 10 || return 1
        (($(sy_field .redis.conflicts) > before)) && return 0
        echo "# the instance read the other write before its own write: again"
    done
    return 1
}

sy_check "the instance seeded Redis" sy_wait_field .redis.synced true 10

# --- A stale weight change gives way -----------------------------------------
sy_check "a weight change from a stale view succeeds locally, its write is refused" \
    stale_change 40 weight 10 --reason "from a stale view"
gen=$STALE_GEN
sy_check "... and the stored state wins" sy_wait_field .state.candidate_percent 40 5
sy_eq "... at the stored generation" "$(sy_field .state.generation)" "$gen"
sy_eq "Redis still holds the other instance's write" \
    "$(redis-cli -p "$REDIS" hget "$NS:state" instance)" other-host:1
sy_match "... and logged" "$(cat "$SY_TMP/proxy.log")" \
    "generation $gen from other-host:1 was written first; our unwritten changes give way"

# --- A stale rollback wins --------------------------------------------------
sy_check "a rollback from a stale view meets the other write" \
    stale_change 60 rollback --reason "bad build, seen from a stale view"
gen=$STALE_GEN
sy_eq "it stays: applied again on top of the stored state" \
    "$(sy_field .state.candidate_percent)" 0
sy_eq "... which Redis now holds, rolled back" \
    "$(redis-cli -p "$REDIS" hget "$NS:state" state | jq -r '"\(.phase) \(.candidate_bp)"')" \
    "rolled_back 0"
sy_eq "... one generation past the other instance's" \
    "$(redis-cli -p "$REDIS" hget "$NS:state" generation)" $((gen + 1))
sy_match "... with the operator's reason" \
    "$(redis-cli -p "$REDIS" hget "$NS:state" state | jq -r .reason)" \
    "^bad build, seen from a stale view \(applied again over generation $gen\)"
sy_eq "... and the same operator" \
    "$(redis-cli -p "$REDIS" hget "$NS:state" state | jq -r .updated_by)" "$(sy_field .state.updated_by)"

# --- A write applied after its reply timed out is ours -----------------------
# CLIENT PAUSE holds the write past its 500 ms timeout; a second change
# comes meanwhile. The first write then applies: it is recognised as this
# instance's own, and the second is written after it, not given up.
conflicts=$(sy_field .redis.conflicts)
redis-cli -p "$REDIS" client pause 1200 write >/dev/null
sy_ctl weight 10 --reason "first, delayed"
sleep 0.7
sy_ctl weight 20 --reason "second"
sy_check "both changes reach Redis, the second last" sy_wait_field .redis.synced true 10
sy_eq "... the instance kept the second" "$(sy_field .state.candidate_percent)" 20
sy_eq "... Redis holds it" "$(redis-cli -p "$REDIS" hget "$NS:state" state | jq -r .reason)" second
sy_eq "... and no conflict was counted for it" "$(sy_field .redis.conflicts)" "$conflicts"

# --- Redis goes back in time ------------------------------------------------
# Restarted from an older snapshot: the newer state is written over it, a
# rollback made since is never undone.
sy_ctl weight 35 --reason "saved in the snapshot"
sy_check "the weight reaches Redis" sy_wait_field .redis.synced true 10
redis-cli -p "$REDIS" save >/dev/null
sy_ctl rollback --reason "made after the snapshot"
sy_check "the rollback reaches Redis" sy_wait_field .redis.synced true 10
gen=$(sy_field .state.generation)
kill -9 "$SY_REDIS_PID"
wait "$SY_REDIS_PID" 2>/dev/null
sy_redis "$REDIS" --dbfilename dump.rdb
# The instance may write over the snapshot before this script can read it:
# its log says what it found.
sy_check "the instance writes its newer state over it" sy_wait_field .redis.synced true 10
sy_match "... having found the older snapshot" "$(cat "$SY_TMP/proxy.log")" \
    "redis: .*(older than ours|went back from generation $gen)"
sy_eq "... and keeps its rollback" "$(sy_field .state.phase) $(sy_field .state.candidate_percent)" \
    "rolled_back 0"
sy_eq "... which Redis holds again" \
    "$(redis-cli -p "$REDIS" hget "$NS:state" state | jq -r '"\(.phase) \(.generation)"')" \
    "rolled_back $gen"

# --- A state written by a newer version --------------------------------------
# A key this version does not know is skipped, not a reason to stop syncing.
gen=$(($(sy_field .state.generation) + 1))
newer=$(redis-cli -p "$REDIS" hget "$NS:state" state |
    jq -c --argjson g "$gen" '.generation = $g | .candidate_bp = 500 | .phase = "idle" |
                              .reason = "from a newer version" | .added_later = {"x": 1}')
redis-cli -p "$REDIS" hset "$NS:state" generation "$gen" state "$newer" instance newer:1 >/dev/null
redis-cli -p "$REDIS" publish "$NS:changes" "$gen newer:1" >/dev/null
sy_check "a newer version's state is taken" sy_wait_field .state.candidate_percent 5 5

# --- A state nobody can read ---------------------------------------------------
redis-cli -p "$REDIS" config resetstat >/dev/null
redis-cli -p "$REDIS" hset "$NS:state" generation $((gen + 100)) state "not json" >/dev/null
sy_ctl weight 15 --reason "over an unreadable state"
sleep 2
evals=$(redis-cli -p "$REDIS" info commandstats | sed -n 's/^cmdstat_eval:calls=\([0-9]*\),.*/\1/p')
sy_range "an unreadable state is retried once a second, not in a loop (EVALs in 2 s)" \
    "${evals:-0}" 1 6
sy_eq "... the instance says it is not in sync" "$(sy_field .redis.synced)" false
sy_match "... and why, once" "$(grep -c 'is unreadable' "$SY_TMP/proxy.log")" '^1$'

sy_finish
