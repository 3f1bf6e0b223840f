#!/usr/bin/env bash
# valgrind.sh - one short run of switchyard under valgrind's memcheck: no
# invalid read or write, no jump on uninitialised memory, no definite or
# indirect leak, over a workload that goes through most of the code:
#   - 200 requests over both pools on one kept-alive connection, more on
#     connections of their own, a request body;
#   - a reload; switchyardctl status, weight, rollback and events;
#   - a 502 from a dead backend;
#   - SIGTERM, and an exit status of 0.
# Skipped in the sanitizer build: ASan and valgrind do not mix.
. "$(dirname "$0")/lib.sh"
sy_init "$@"

if [[ "${SY_SANITIZE:-OFF}" == ON ]]; then
    sy_ok "skipped under sanitizers (ASan and valgrind do not mix)"
    sy_finish
fi
if ! command -v valgrind >/dev/null; then
    sy_not_ok "valgrind is installed (make deps installs it)"
    sy_finish
fi
sy_need_ctl

sy_port BLUE
sy_port GREEN
sy_port PORT
sy_backend blue-1 "$BLUE"
BLUE_PID=$SY_LAST_PID
sy_backend green-1 "$GREEN"
GREEN_PID=$SY_LAST_PID
SOCK="$SY_TMP/ctl.sock"
CONF="$SY_TMP/valgrind.json"
sy_config "$CONF" port="$PORT" blue="blue-1@$BLUE" green="green-1@$GREEN" \
    extra="\"admin\": {\"socket\": \"$SOCK\"},
  \"state\": {\"file\": \"$SY_TMP/state.json\", \"audit_log\": \"$SY_TMP/audit.jsonl\"}"
VGLOG="$SY_TMP/valgrind.log"

# Every error counts, definite and indirect leaks included; "possibly lost"
# and "still reachable" do not, as a library's process-wide cache can show
# as either. No suppression file: none has been needed.
valgrind --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=1 \
    --log-file="$VGLOG" "$SY_BUILD/switchyard" -c "$CONF" >"$SY_TMP/proxy.log" 2>&1 &
SY_PROXY_PID=$!
SY_PIDS+=("$SY_PROXY_PID")
if ! sy_wait_port "$PORT" "$SY_PROXY_PID" 60; then
    sy_not_ok "switchyard under valgrind listens on 127.0.0.1:$PORT" "$(tail -n 20 "$VGLOG")"
    sy_finish
fi
for ((i = 0; i < 200; i++)); do
    [[ -S "$SOCK" ]] && break
    sleep 0.05
done

ctl()
{
    "$SY_BUILD/switchyardctl" -s "$SOCK" --timeout 20000 "$@" >>"$SY_TMP/ctl.out" 2>&1
}

sy_check "switchyardctl weight 50" ctl weight 50

# 200 requests on one kept-alive connection: both pools answer every one.
out=$(for ((i = 0; i < 200; i++)); do
    echo "url = \"http://127.0.0.1:$PORT/k/$i\""
    echo 'output = "/dev/null"'
done | sy_curl -K - -w '%{http_code} %header{x-backend} %{num_connects}\n')
sy_eq "200 kept-alive requests: all 200" "$(grep -c '^200 ' <<<"$out")" 200
sy_range "200 kept-alive requests: blue answers some" "$(grep -c ' blue-1 ' <<<"$out")" 1 199
sy_range "200 kept-alive requests: green answers some" "$(grep -c ' green-1 ' <<<"$out")" 1 199
sy_eq "200 kept-alive requests: on one connection" \
    "$(awk '{n += $3} END {print n}' <<<"$out")" 1

codes=$(for ((i = 0; i < 10; i++)); do
    sy_curl -o /dev/null -w '%{http_code}\n' "http://127.0.0.1:$PORT/n/$i"
done | sort -u | tr '\n' ' ')
sy_eq "10 requests on connections of their own: all 200" "$codes" "200 "
code=$(head -c 100000 /dev/zero | sy_curl -o /dev/null -w '%{http_code}' --data-binary @- \
    "http://127.0.0.1:$PORT/upload")
sy_eq "a 100 kB request body: 200" "$code" 200

sy_check "switchyardctl reload" ctl reload
sy_check "switchyardctl status" ctl status
sy_check "switchyardctl rollback" ctl rollback
sy_check "switchyardctl events" ctl events

# Both: a dead candidate alone would fall back to the stable pool.
sy_stop "$BLUE_PID"
sy_stop "$GREEN_PID"
code=$(sy_curl -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/dead")
sy_eq "dead backends: 502" "$code" 502

sy_stop "$SY_PROXY_PID" 60
sy_eq "switchyard under valgrind exits 0 on SIGTERM" "$SY_RC" 0
summary=$(grep -E 'ERROR SUMMARY' "$VGLOG")
sy_match "valgrind reports no error" "$summary" 'ERROR SUMMARY: 0 errors from 0 contexts'
if ! grep -q 'ERROR SUMMARY: 0 errors' "$VGLOG"; then
    sy_not_ok "valgrind's report" "$(grep -E -A15 '^==[0-9]+== (Invalid|Conditional|Use of|.*definitely|.*indirectly)' "$VGLOG" | head -n 40)"
fi

sy_finish
