#!/usr/bin/env bash
# health.sh - active health checks take servers out of rotation and bring
# them back (interval 100 ms, rise 2, fall 3):
#   - a server whose /healthz answers 503 goes down after 3 checks, logged
#     once with the reason, and gets no traffic; it comes back after 2 good
#     checks;
#   - a killed server (connect refused) and a hanging one (timeout) go down;
#   - a candidate pool with every server down sends its share to stable;
#   - status shows each server's health and last check;
#   - a reload with expect_body checks the body, and starts checking a
#     server it adds.
. "$(dirname "$0")/lib.sh"
sy_init "$@"

sy_need_ctl

sy_backends
sy_port BLUE2
sy_backend blue-2 "$BLUE2"
BLUE2_PID=$SY_LAST_PID
sy_port BLUE3
sy_backend blue-3 "$BLUE3"
sy_port BLUE4
sy_backend blue-4 "$BLUE4"
SOCK="$SY_TMP/ctl.sock"
CONF="$SY_TMP/health.json"
LOG="$SY_TMP/proxy.log"
ADMIN="\"admin\": {\"socket\": \"$SOCK\"}"
HEALTH='"interval_ms": 100, "timeout_ms": 50, "rise": 2, "fall": 3'

# write_config HEALTH_EXTRA BLUE_SERVERS: the test's config.
write_config()
{
    sy_config "$CONF" port="$PORT" blue="$2" green="green-1@$GREEN" percent=0 \
        extra="$ADMIN, \"health\": {$HEALTH$1}"
}

write_config "" "blue-1@$BLUE,blue-2@$BLUE2,blue-3@$BLUE3"
sy_proxy "$CONF" "$PORT" || sy_finish
PROXY=$SY_PROXY_PID

# field NAME FIELD: a field of one server in `status --json`.
field()
{
    "$CTL" -s "$SOCK" --json status |
        jq -r --arg n "$1" ".pools[].servers[] | select(.name == \$n) | .$2"
}

# wait_field NAME FIELD VALUE: polls status (at most 5 s) until the field has
# VALUE; prints what it last saw.
wait_field()
{
    local i got=
    for ((i = 0; i < 100; i++)); do
        got=$(field "$1" "$2")
        [[ "$got" == "$3" ]] && break
        sleep 0.05
    done
    echo "$got"
}

# backends N: N requests through the proxy, one connection each; the
# X-Backend values, sorted and counted ("12 blue-1 8 blue-3").
backends()
{
    local i
    for ((i = 0; i < $1; i++)); do
        sy_curl -o /dev/null -w '%header{x-backend}\n' "http://127.0.0.1:$PORT/r/$i"
    done | sort | uniq -c | awk '{printf "%s%s %s", (NR > 1 ? " " : ""), $1, $2}'
}

sy_nomatch "health is no longer reported as inactive" "$(cat "$LOG")" \
    'health: validated but not active'
sy_eq "every server gets checked" "$(wait_field green-1 checked "ok: status 200")" "ok: status 200"
sy_eq "... and is up" "$(field blue-1 health) $(field blue-2 health) $(field green-1 health)" \
    "up up up"
sy_match "... when it was checked" "$(field blue-1 checked_at)" '^[0-9]{4}-[0-9]{2}-[0-9]{2}T'

# A failing /healthz: down after fall checks, no traffic, back after rise.
sy_fault "$BLUE2" '{"health_status": 503}'
sy_eq "a server answering 503 goes down" "$(wait_field blue-2 health down)" down
sy_eq "... its last check says why" "$(field blue-2 checked)" "status 503, expected 200"
sy_match "... logged once at warn with the reason" "$(grep -c 'server blue/blue-2 down' "$LOG")" '^1$'
sy_match "... in one line" "$(cat "$LOG")" \
    'warn: server blue/blue-2 down: 3 checks failed in a row, last: status 503, expected 200'
sy_nomatch "... and gets no request" "$(backends 30)" 'blue-2'
ctl_out=$("$CTL" -s "$SOCK" status 2>&1)
sy_match "switchyardctl status shows the HEALTH column" "$ctl_out" 'IN FLIGHT +HEALTH'
sy_match "... with blue-2 down" "$ctl_out" "blue +blue-2 +127.0.0.1:$BLUE2 .* 0 +down"
sy_fault "$BLUE2" '{"health_status": 200}'
sy_eq "it comes back after rise good checks" "$(wait_field blue-2 health up)" up
sy_match "... logged at info" "$(cat "$LOG")" 'info: server blue/blue-2 up: 2 checks passed in a row'
sy_match "... and gets requests again" "$(backends 30)" 'blue-2'
events=$("$CTL" -s "$SOCK" events 2>&1)
sy_match "both changes are events" "$events" \
    "health-check  server  server blue/blue-2 down: 3 checks failed in a row, last: status 503"
sy_match "... the way back too" "$events" \
    "health-check  server  server blue/blue-2 up: 2 checks passed in a row"

# A killed server: connect refused.
sy_stop "$BLUE2_PID"
sy_eq "a killed server goes down" "$(wait_field blue-2 health down)" down
sy_eq "... connect refused" "$(field blue-2 checked)" "connect refused"
sy_match "... logged with it" "$(cat "$LOG")" \
    'server blue/blue-2 down: 3 checks failed in a row, last: connect refused'

# A server that accepts and never answers: the check's timeout.
sy_fault "$BLUE3" '{"hang": true}'
sy_eq "a hanging server goes down" "$(wait_field blue-3 health down)" down
sy_eq "... by timeout" "$(field blue-3 checked)" "timeout after 50 ms"
sy_eq "... and the survivor takes everything" "$(backends 20)" "20 blue-1"
sy_fault "$BLUE3" '{"hang": false}'
sy_eq "the hanging server recovers" "$(wait_field blue-3 health up)" up

# The candidate pool all down: its share goes to stable.
"$CTL" -s "$SOCK" weight 50 >/dev/null
sy_match "at 50 % the candidate gets its share" "$(backends 30)" 'green-1'
sy_fault "$GREEN" '{"health_status": 500}'
sy_eq "the only candidate server goes down" "$(wait_field green-1 health down)" down
sy_nomatch "... and the candidate's share goes to stable" "$(backends 30)" 'green-1'
sy_fault "$GREEN" '{"health_status": 200}'
sy_eq "the candidate comes back" "$(wait_field green-1 health up)" up
"$CTL" -s "$SOCK" weight 0 >/dev/null

# A reload: expect_body, and a new server that starts being checked.
write_config ', "expect_body": "nope"' "blue-1@$BLUE,blue-3@$BLUE3,blue-4@$BLUE4"
"$CTL" -s "$SOCK" reload >/dev/null
sy_eq "a body without expect_body fails the check" "$(wait_field blue-1 health down)" down
sy_eq "... saying so" "$(field blue-1 checked)" 'status 200, body does not contain "nope"'
sy_eq "a server the reload added is checked too" "$(wait_field blue-4 health down)" down
write_config ', "expect_body": "ok"' "blue-1@$BLUE,blue-3@$BLUE3,blue-4@$BLUE4"
"$CTL" -s "$SOCK" reload >/dev/null
sy_eq "a body with expect_body passes" "$(wait_field blue-4 health up)" up
sy_eq "... saying so" "$(field blue-4 checked)" "ok: status 200, body matches"
sy_eq "blue-1 is back" "$(wait_field blue-1 health up)" up
sy_eq "the server the reload removed is gone from status" "$(field blue-2 health)" ""

# Without the health section: nothing is checked and every server is up.
sy_fault "$BLUE3" '{"health_status": 503}'
sy_eq "blue-3 goes down again" "$(wait_field blue-3 health down)" down
sy_config "$CONF" port="$PORT" blue="blue-1@$BLUE,blue-3@$BLUE3" green="green-1@$GREEN" \
    percent=0 extra="$ADMIN"
"$CTL" -s "$SOCK" reload >/dev/null
sy_eq "a reload that drops the health section puts it back up" "$(wait_field blue-3 health up)" up
sy_eq "... and no check result is shown" "$(field blue-3 checked)" "null"
sy_match "... logged" "$(cat "$LOG")" 'server blue/blue-3 up: health checks are off'

sy_stop "$PROXY" 10
sy_eq "switchyard exits 0" "$SY_RC" 0
sy_finish
