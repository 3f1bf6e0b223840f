#!/usr/bin/env bash
# tls_health.sh - health checks and preflight probes of a pool whose servers
# speak TLS (pools.green.tls), against sy-backends with --tls-cert:
#   - the checks speak TLS: with the right CA the servers stay up;
#   - a reload to a CA that did not sign them takes them down, the TLS
#     reason in status, the log and the events; a reload back brings them up;
#   - a preflight against a TLS candidate passes; one against a candidate
#     with a self-signed certificate fails, the TLS reason in the rollout's.
. "$(dirname "$0")/lib.sh"
sy_init "$@"

sy_need_ctl
if ! command -v openssl >/dev/null; then
    sy_not_ok "openssl is there" "openssl: $(command -v openssl)"
    sy_finish
fi

# --- certificates: a CA, a server certificate it signed, another CA, and a
# self-signed server certificate ---------------------------------------------
PKI=$SY_TMP/pki
mkdir -p "$PKI"
# server_cert NAME [SIGNED_BY]: NAME.pem and NAME.key for 127.0.0.1 and
# api.internal, signed by the CA SIGNED_BY, or by itself without one.
server_cert()
{
    printf 'subjectAltName=IP:127.0.0.1,DNS:api.internal\n' >"$PKI/san.ext"
    if [[ -z "${2:-}" ]]; then
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
            -subj '/CN=api.internal' -addext "$(cat "$PKI/san.ext")" \
            -keyout "$PKI/$1.key" -out "$PKI/$1.pem"
        return
    fi
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj '/CN=api.internal' \
        -keyout "$PKI/$1.key" -out "$PKI/$1.csr" &&
        openssl x509 -req -in "$PKI/$1.csr" -CA "$PKI/$2.pem" -CAkey "$PKI/$2.key" \
            -CAcreateserial -days 2 -extfile "$PKI/san.ext" -out "$PKI/$1.pem"
}
# ca NAME: a CA certificate NAME.pem and its key NAME.key.
ca()
{
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj "/CN=switchyard test $1" -keyout "$PKI/$1.key" -out "$PKI/$1.pem"
}
if ! { ca ca && ca other-ca && server_cert server ca && server_cert self; } >"$SY_TMP/pki.out" 2>&1; then
    sy_not_ok "test certificates are made" "$(cat "$SY_TMP/pki.out")"
    sy_finish
fi

# --- the servers: plain blue-1, TLS green-1 (signed by the CA) and green-2
# (self-signed) -----------------------------------------------------------------
sy_port BLUE
sy_port GREEN
sy_port GREEN2
sy_port PORT
sy_backend blue-1 "$BLUE"
sy_backend green-1 "$GREEN" --tls-cert "$PKI/server.pem" --tls-key "$PKI/server.key"
sy_backend green-2 "$GREEN2" --tls-cert "$PKI/self.pem" --tls-key "$PKI/self.key"

SOCK="$SY_TMP/ctl.sock"
CONF="$SY_TMP/tls_health.json"
LOG="$SY_TMP/proxy.log"

# write_config GREEN_SERVERS TLS_JSON: blue-1 stable, the green pool over TLS,
# health checks (fall 2, rise 2) and a rollout (which needs a detector) with
# a one-probe preflight.
write_config()
{
    sy_config "$CONF.tmp" port="$PORT" blue="blue-1@$BLUE" green="$1" percent=0 \
        extra="\"admin\": {\"socket\": \"$SOCK\"},
  \"health\": {\"interval_ms\": 200, \"timeout_ms\": 150, \"rise\": 2, \"fall\": 2},
  \"detector\": {\"window_s\": 5, \"min_requests\": 20},
  \"rollout\": {\"steps\": [10, 100], \"step_s\": 60,
                \"preflight\": [{\"path\": \"/healthz\", \"expect_status\": 200, \"expect_body\": \"ok\"}]}"
    jq --argjson tls "$2" '.pools.green.tls = $tls' "$CONF.tmp" >"$CONF"
}

# field NAME FIELD: a field of one server in `status --json`.
field()
{
    sy_field ".pools[].servers[] | select(.name == \"$1\") | .$2"
}

# wait_field NAME FIELD VALUE: polls status (at most 10 s) until the field
# has VALUE; prints what it last saw.
wait_field()
{
    local i got=
    for ((i = 0; i < 200; i++)); do
        got=$(field "$1" "$2")
        [[ "$got" == "$3" ]] && break
        sleep 0.05
    done
    echo "$got"
}

# wait_phase PHASE: polls the state (at most 10 s) until the rollout is in
# PHASE.
wait_phase()
{
    sy_wait_field .state.phase "$1" 10
}

# wait_generation_above N: polls the state (at most 10 s) until a change
# after generation N.
wait_generation_above()
{
    local i
    for ((i = 0; i < 200; i++)); do
        (($(sy_field .state.generation) > $1)) && return 0
        sleep 0.05
    done
    return 1
}

write_config "green-1@$GREEN" "{\"ca\": \"$PKI/ca.pem\"}"
sy_proxy "$CONF" "$PORT" || sy_finish

# --- health checks over TLS ----------------------------------------------------
sy_eq "a TLS server verified by its CA passes its checks" \
    "$(wait_field green-1 checked "ok: status 200")" "ok: status 200"
sleep 1 # five more intervals: still passing
sy_eq "... and stays up" "$(field green-1 health) $(field green-1 checked)" "up ok: status 200"
sy_eq "the plain pool is still checked in plain HTTP" "$(field blue-1 checked)" "ok: status 200"

write_config "green-1@$GREEN" "{\"ca\": \"$PKI/other-ca.pem\"}"
sy_ctl reload
sy_eq "reload to a CA that did not sign it: exit 0" "$RC" 0
sy_eq "the server goes down" "$(wait_field green-1 health down)" down
sy_eq "... the TLS failure in its last check" "$(field green-1 checked)" \
    "certificate verify failed: unable to get local issuer certificate"
sy_match "... in switchyardctl status" "$("$CTL" -s "$SOCK" status 2>&1)" \
    "green +green-1 +127.0.0.1:$GREEN .* down"
sy_match "... logged at warn with the reason" "$(cat "$LOG")" \
    'warn: server green/green-1 down: 2 checks failed in a row, last: certificate verify failed: unable to get local issuer certificate'
sy_match "... and an event" "$("$CTL" -s "$SOCK" events 2>&1)" \
    "health-check .*server green/green-1 down: .*certificate verify failed"
sy_eq "the plain pool is not touched" "$(field blue-1 health)" up

write_config "green-1@$GREEN" "{\"ca\": \"$PKI/ca.pem\", \"sni\": \"api.internal\"}"
sy_ctl reload
sy_eq "reload back to the right CA (and an SNI it holds): the server comes back up" \
    "$(wait_field green-1 health up)" up
sy_eq "... passing its checks" "$(field green-1 checked)" "ok: status 200"

# --- preflight over TLS --------------------------------------------------------
sy_ctl rollout start --reason "release 7"
sy_eq "rollout start: exit 0" "$RC" 0
sy_check "a preflight against a TLS candidate passes" wait_phase progressing
sy_match "... saying so" "$(sy_field .state.reason)" '^preflight passed: 1 probe passed on 1 server'
sy_ctl rollback --reason "next test"
sy_check "... rolled back by hand" wait_phase rolled_back

write_config "green-2@$GREEN2" "{\"ca\": \"$PKI/ca.pem\"}"
sy_ctl reload
sy_eq "reload to a candidate with a self-signed certificate: exit 0" "$RC" 0
gen=$(sy_field .state.generation)
sy_ctl rollout start --reason "release 8"
sy_check "a preflight against it ends" wait_generation_above "$((gen + 1))"
sy_eq "... rolled back" "$(sy_field .state.phase)" rolled_back
sy_match "... the TLS failure in the rollout's reason" "$(sy_field .state.reason)" \
    "^preflight failed: probe 1 \(GET /healthz\) on green-2 \(127.0.0.1:$GREEN2\): certificate verify failed: self-signed certificate$"
sy_eq "... and its health checks fail the same way" "$(wait_field green-2 health down)" down
sy_eq "... with the same reason" "$(field green-2 checked)" \
    "certificate verify failed: self-signed certificate"

sy_stop "$SY_PROXY_PID" 10
sy_eq "switchyard exits 0" "$SY_RC" 0
sy_finish
