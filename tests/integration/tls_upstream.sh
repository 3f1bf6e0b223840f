#!/usr/bin/env bash
# tls_upstream.sh - TLS from the proxy to a pool's servers (pools.<colour>.tls):
#   - verified against a CA, by the server's IP or by the SNI name, and
#     kept-alive connections used again; sessions resumed on new ones;
#   - a failed verification (wrong CA, self-signed, a name the certificate
#     lacks) is a connect error: a 502 and an access log line that say why,
#     counted in the pool's connect errors;
#   - "verify": false takes a self-signed certificate;
#   - a plain HTTP server, or one that never answers the handshake, fails
#     within the connect timeout;
#   - a reload that fixes the CA makes requests succeed;
#   - a TLS candidate that fails verification is flipped out by the guard,
#     and no request fails meanwhile.
. "$(dirname "$0")/lib.sh"
sy_init "$@"

sy_need_ctl
BAD_BIN=$SY_BUILD/sy-badbackend
if ! command -v openssl >/dev/null || [[ ! -x "$BAD_BIN" ]]; then
    sy_not_ok "openssl and sy-badbackend are there" "openssl: $(command -v openssl); $BAD_BIN"
    sy_finish
fi

CONNECT_MS=500
FAILURES=5

# --- certificates: a CA and a server certificate it signed, a self-signed
# one, and a CA that signed neither --------------------------------------------
PKI=$SY_TMP/pki
mkdir -p "$PKI"
pki()
{
    local ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
    openssl req -x509 "${ec[@]}" -days 2 -subj '/CN=switchyard test CA' \
        -keyout "$PKI/ca.key" -out "$PKI/ca.pem" &&
        openssl req "${ec[@]}" -subj '/CN=green' -keyout "$PKI/server.key" \
            -out "$PKI/server.csr" &&
        printf 'subjectAltName=IP:127.0.0.1,DNS:green.internal\n' >"$PKI/san.ext" &&
        openssl x509 -req -in "$PKI/server.csr" -CA "$PKI/ca.pem" -CAkey "$PKI/ca.key" \
            -CAcreateserial -days 2 -extfile "$PKI/san.ext" -out "$PKI/server.pem" &&
        openssl req -x509 "${ec[@]}" -days 2 -subj '/CN=self' \
            -addext 'subjectAltName=IP:127.0.0.1' -keyout "$PKI/self.key" -out "$PKI/self.pem" &&
        openssl req -x509 "${ec[@]}" -days 2 -subj '/CN=another CA' \
            -keyout "$PKI/other.key" -out "$PKI/other.pem"
}
if ! pki >"$SY_TMP/pki.out" 2>&1; then
    sy_not_ok "test certificates are made" "$(cat "$SY_TMP/pki.out")"
    sy_finish
fi

sy_port BLUE
sy_port GREEN
sy_port SELF
sy_port SILENT
sy_port PORT
sy_port HTTP
sy_backend blue-1 "$BLUE"
sy_backend green-1 "$GREEN" --tls-cert "$PKI/server.pem" --tls-key "$PKI/server.key"
sy_backend green-self "$SELF" --tls-cert "$PKI/self.pem" --tls-key "$PKI/self.key"
# Accepts, reads and never answers: a handshake that would wait forever.
"$BAD_BIN" "$SILENT" --ok >"$SY_TMP/silent.log" 2>&1 &
SILENT_PID=$!
SY_PIDS+=("$SILENT_PID")
sy_check "the silent server listens" sy_wait_port "$SILENT" "$SILENT_PID"

# --- one worker (one idle list, one session per server), green stable: no
# fallback to another pool hides its failures --------------------------------
SOCK="$SY_TMP/ctl.sock"
CONF="$SY_TMP/up.json"
LOG="$SY_TMP/proxy.log"
ALOG="$SY_TMP/access.log"
sy_config "$CONF.base" port="$PORT" blue="blue-1@$BLUE" green="green-1@$GREEN" percent=0 \
    extra="\"timeouts_ms\": {\"connect\": $CONNECT_MS},
  \"admin\": {\"socket\": \"$SOCK\", \"http\": \"127.0.0.1:$HTTP\"}"

# green_pool JSON: writes $CONF with pools.green set to JSON.
green_pool()
{
    jq --argjson g "$1" '.workers = 1 | .routing.stable = "green" | .pools.green = $g' \
        "$CONF.base" >"$CONF"
}

# tls_pool NAME PORT TLS_JSON: a pool of one server with "tls": TLS_JSON.
tls_pool()
{
    green_pool "{\"servers\": [{\"name\": \"$1\", \"addr\": \"127.0.0.1:$2\"}], \"tls\": $3}"
}

# get PATH: one request through the proxy; prints its status, keeps the
# head in $SY_TMP/head and the body in $SY_TMP/body.
get()
{
    sy_curl -o "$SY_TMP/body" -D "$SY_TMP/head" -w '%{http_code}' "http://127.0.0.1:$PORT$1"
}

# header NAME: a header of the last answer get() saw.
header()
{
    tr -d '\r' <"$SY_TMP/head" | awk -v n="${1,,}:" 'tolower($1) == n { print $2 }'
}

# green_stats KEY: a counter of green-1's /__stats (asked over TLS).
green_stats()
{
    sy_json_num "$(sy_curl --cacert "$PKI/ca.pem" "https://127.0.0.1:$GREEN/__stats")" "$1"
}

# connect_errors: the green pool's connect errors, as /metrics counts them.
connect_errors()
{
    sy_curl "http://127.0.0.1:$HTTP/metrics" |
        awk 'index($0, "switchyard_requests_total{pool=\"green\",outcome=\"connect_error\"} ") == 1 {
                 print $2 }'
}

# --- verified against the CA, by IP --------------------------------------------
# trust.pem: the CA, in a file whose contents change further down.
cp "$PKI/ca.pem" "$PKI/trust.pem"
tls_pool green-1 "$GREEN" "{\"ca\": \"$PKI/trust.pem\"}"
"$SY_BUILD/switchyard" -t -c "$CONF" >"$SY_TMP/check.out" 2>&1
sy_eq "switchyard -t accepts a pool with tls" "$?" 0
sy_proxy "$CONF" "$PORT" || sy_finish
PROXY=$SY_PROXY_PID
sy_check "the admin listener accepts connections" sy_wait_port "$HTTP" "$PROXY"

sy_eq "a request to the TLS pool is answered 200" "$(get /a)" 200
sy_eq "... by green-1" "$(header x-backend)" green-1
sy_eq "... over TLS, without SNI (the IP is verified)" "$(header x-tls-sni)" "-"

# --- kept-alive connections are used again ---------------------------------------
before=$(green_stats connections)
for ((i = 0; i < 40; i++)); do
    echo "url = \"http://127.0.0.1:$PORT/k/$i\""
    echo 'output = "/dev/null"'
done | sy_curl -K - -w '%{http_code}\n' >"$SY_TMP/keep.out"
after=$(green_stats connections)
sy_eq "40 requests answered 200" "$(grep -c '^200$' "$SY_TMP/keep.out")" 40
# One more connection: the /__stats request itself.
sy_eq "... over the connection already open" "$((after - before))" 1

# --- a reload keeps idle TLS connections while the pool trusts the same ---------
before=$(green_stats connections)
sy_eq "a reload that leaves the pool's tls and CA file alone" "$(sy_reload)" applied
sy_eq "... then a request: 200" "$(get /kept)" 200
sy_eq "... over the idle connection carried across the reload" \
    "$(($(green_stats connections) - before))" 1
cat "$PKI/ca.pem" "$PKI/other.pem" >"$PKI/trust.pem"
before=$(green_stats connections)
sy_eq "a reload after the CA file changed under the same path" "$(sy_reload)" applied
sy_eq "... then a request: 200" "$(get /new-trust)" 200
sy_eq "... over a new connection, verified under the new bundle" \
    "$(($(green_stats connections) - before))" 2
cat "$PKI/ca.pem" "$PKI/other.pem" >"$PKI/trust.pem.new" && mv "$PKI/trust.pem.new" "$PKI/trust.pem"
before=$(green_stats connections)
sy_eq "a reload after the CA file was rewritten with the same bytes" "$(sy_reload)" applied
sy_eq "... then a request: 200" "$(get /same-bytes)" 200
sy_eq "... over the idle connection: what counts is the contents" \
    "$(($(green_stats connections) - before))" 1

# --- SNI, and a session resumed on a new connection --------------------------------
tls_pool green-1 "$GREEN" "{\"ca\": \"$PKI/ca.pem\", \"sni\": \"green.internal\"}"
sy_eq "reload with sni" "$(sy_reload)" applied
sy_eq "with sni: 200" "$(get /sni)" 200
sy_eq "... and the server saw the name" "$(header x-tls-sni)" green.internal
sy_eq "... on a new connection: a full handshake" "$(header x-tls-resumed)" no
# /__close ends the upstream connection: the next request needs a new one.
sy_eq "a request that closes the upstream connection" "$(get /__close)" 200
sy_eq "the next connection resumes the session" "$(get /resumed):$(header x-tls-resumed)" 200:yes

# --- failed verifications are connect errors ----------------------------------------
errors_before=$(connect_errors)
tls_pool green-1 "$GREEN" "{\"ca\": \"$PKI/other.pem\"}"
sy_eq "reload with a CA that did not sign the certificate" "$(sy_reload)" applied
sy_eq "wrong CA: 502" "$(get /wrong-ca)" 502
sy_eq "... whose body does not tell the client why" "$(cat "$SY_TMP/body")" \
    "502 Bad Gateway: no server of pool green could be reached"
sy_check "... in the access log" sy_wait_alog \
    '"target":"/wrong-ca","status":502,"pool":"green","server":null,"req_body_bytes":0,"resp_body_bytes":0,'
sy_match "... whose error names the failed verification" "$(grep -F '"/wrong-ca"' "$ALOG")" \
    '"error":"upstream TLS: certificate verify failed: unable to get local issuer certificate"'
# The first warning of this worker: none is held back by the once-a-second limit.
sy_match "... and in the warn log" "$(cat "$LOG")" \
    "warn: upstream green-1 \(127\.0\.0\.1:$GREEN\): upstream TLS: certificate verify failed"
get /wrong-ca-2 >/dev/null
sy_eq "each counts as a connect error of the pool" "$(($(connect_errors) - errors_before))" 2

tls_pool green-1 "$GREEN" "{\"ca\": \"$PKI/ca.pem\"}"
sy_eq "a reload that fixes the CA" "$(sy_reload)" applied
sy_eq "... makes requests succeed" "$(get /fixed):$(header x-backend)" 200:green-1

tls_pool green-1 "$GREEN" "{\"ca\": \"$PKI/ca.pem\", \"sni\": \"blue.internal\"}"
sy_eq "reload with an sni the certificate lacks" "$(sy_reload)" applied
sy_eq "sni not in the certificate: 502" "$(get /other-name)" 502
sy_check "... in the access log" sy_wait_alog '"target":"/other-name"'
sy_match "... as a hostname mismatch" "$(grep -F '"/other-name"' "$ALOG")" \
    '"error":"upstream TLS: certificate verify failed: hostname mismatch"'

tls_pool green-self "$SELF" "{\"ca\": \"$PKI/ca.pem\"}"
sy_eq "reload with a self-signed server" "$(sy_reload)" applied
sy_eq "self-signed, verified: 502" "$(get /self)" 502
sy_check "... in the access log" sy_wait_alog '"target":"/self"'
sy_match "... as self-signed" "$(grep -F '"/self"' "$ALOG" | head -n 1)" \
    '"error":"upstream TLS: certificate verify failed: self-signed certificate"'

tls_pool green-self "$SELF" '{"verify": false}'
sy_eq "reload with verify false" "$(sy_reload)" applied
sy_eq "verify false takes the self-signed certificate" "$(get /self):$(header x-backend)" \
    200:green-self
# Its idle connection was never verified: a reload that turns verification
# on (against the system's store, which does not trust it) must not carry it.
tls_pool green-self "$SELF" '{}'
sy_eq "reload to verify on, with the system's trust store" "$(sy_reload)" applied
sy_eq "... the unverified idle connection is not used: 502" "$(get /self-verified)" 502

# --- servers that do not speak TLS --------------------------------------------------
tls_pool plain-http "$BLUE" "{\"ca\": \"$PKI/ca.pem\"}"
sy_eq "reload with a plain HTTP server in a TLS pool" "$(sy_reload)" applied
t0=$(sy_now_ms)
sy_eq "plain HTTP server: 502" "$(get /plain)" 502
sy_range "... at once" "$(($(sy_now_ms) - t0))" 0 $((CONNECT_MS * 2))
sy_check "... in the access log" sy_wait_alog '"target":"/plain"'
sy_match "... as a failed handshake" "$(grep -F '"/plain"' "$ALOG")" \
    '"error":"upstream TLS: TLS handshake failed: '

tls_pool silent "$SILENT" "{\"ca\": \"$PKI/ca.pem\"}"
sy_eq "reload with a server that never answers the handshake" "$(sy_reload)" applied
t0=$(sy_now_ms)
sy_eq "silent server: 502" "$(get /silent)" 502
sy_range "... within the connect timeout" "$(($(sy_now_ms) - t0))" $((CONNECT_MS - 50)) \
    $((CONNECT_MS * 4))
sy_check "... in the access log" sy_wait_alog '"target":"/silent","status":502'

# --- the guard flips a TLS candidate that fails verification ---------------------------
sy_port PORT2
CONF2="$SY_TMP/flip.json"
SOCK="$SY_TMP/flip.sock"
sy_config "$CONF2.base" port="$PORT2" blue="blue-1@$BLUE" green="green-1@$GREEN" percent=0 \
    alog=flip-access.log extra="\"admin\": {\"socket\": \"$SOCK\"},
  \"detector\": {\"fast_rollback\": {\"consecutive_failures\": $FAILURES}}"
jq --arg ca "$PKI/other.pem" '.pools.green.tls = {"ca": $ca}' "$CONF2.base" >"$CONF2"
sy_proxy "$CONF2" "$PORT2" flip || sy_finish
sy_ctl weight 50 --reason "canary over TLS"
for ((i = 0; i < 100; i++)); do
    echo "url = \"http://127.0.0.1:$PORT2/f/$i\""
    echo 'output = "/dev/null"'
done | sy_curl -K - -w '%{http_code} %header{x-backend}\n' >"$SY_TMP/flip.out"
sy_eq "with green failing verification, every request is answered 200 by blue" \
    "$(grep -c '^200 blue-1$' "$SY_TMP/flip.out")" 100
sy_eq "... and the guard took green out" "$(sy_field .state.updated_by) $(sy_field .state.candidate_percent)" \
    "fast-flip 0"
sy_match "... naming the failed verification" "$(sy_field .state.reason)" \
    "failures in a row from candidate green \(last: green-1: upstream TLS: certificate verify failed"

sy_finish
