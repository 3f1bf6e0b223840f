#!/usr/bin/env bash
# tls.sh - TLS termination on a listener: the config check of certificates
# and keys, requests over TLS (GET, POST, kept-alive, large answers),
# X-Forwarded-Proto, ALPN, protocol versions, resumption, and the clients
# that never finish a handshake.
. "$(dirname "$0")/lib.sh"
sy_init "$@"

if ! command -v openssl >/dev/null || ! command -v jq >/dev/null; then
    sy_not_ok "openssl and jq are there" "openssl: $(command -v openssl); jq: $(command -v jq)"
    sy_finish
fi

HEADER_MS=1000

# --- certificates: a CA, a server certificate it signed, a stray key -------------
PKI=$SY_TMP/pki
mkdir -p "$PKI"
sy_pki()
{
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj '/CN=switchyard test CA' -keyout "$PKI/ca.key" -out "$PKI/ca.pem" &&
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
            -subj '/CN=localhost' -keyout "$PKI/server.key" -out "$PKI/server.csr" &&
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$PKI/san.ext" &&
        openssl x509 -req -in "$PKI/server.csr" -CA "$PKI/ca.pem" -CAkey "$PKI/ca.key" \
            -CAcreateserial -days 2 -extfile "$PKI/san.ext" -out "$PKI/server.pem" &&
        openssl genpkey -algorithm ec -pkeyopt ec_paramgen_curve:P-256 -out "$PKI/other.key"
}
if ! sy_pki >"$SY_TMP/pki.out" 2>&1; then
    sy_not_ok "test certificates are made" "$(cat "$SY_TMP/pki.out")"
    sy_finish
fi

sy_backends
sy_port PORT13

# tls_config FILE PORT TLS_JSON: the usual config, its listener with "tls".
tls_config()
{
    sy_config "$1.plain" port="$2" blue="blue-1@$BLUE" green="green-1@$GREEN" \
        extra="\"timeouts_ms\": {\"client_header\": $HEADER_MS}"
    jq --argjson tls "$3" '.listen[0].tls = $tls' "$1.plain" >"$1"
}

# --- the config check loads the files ---------------------------------------------
tls_config "$SY_TMP/mismatch.json" "$PORT" \
    "{\"cert\": \"$PKI/server.pem\", \"key\": \"$PKI/other.key\"}"
out=$("$SY_BUILD/switchyard" -t -c "$SY_TMP/mismatch.json" 2>&1)
sy_eq "switchyard -t refuses a key that does not match the certificate" "$?" 1
sy_match "... and says where and why" "$out" 'listen\[0\]\.tls\.key: not a PEM private key for the certificate: key values mismatch'

tls_config "$SY_TMP/tls.json" "$PORT" \
    "{\"cert\": \"$PKI/server.pem\", \"key\": \"$PKI/server.key\"}"
"$SY_BUILD/switchyard" -t -c "$SY_TMP/tls.json" >"$SY_TMP/check.out" 2>&1
sy_eq "switchyard -t accepts the matching pair" "$?" 0
sy_proxy "$SY_TMP/tls.json" "$PORT" || sy_finish
URL="https://127.0.0.1:$PORT"
tls_curl()
{
    sy_curl --cacert "$PKI/ca.pem" "$@"
}

# --- requests over TLS ---------------------------------------------------------
echo1=$(tls_curl "$URL/__echo?t=1" -H 'X-Forwarded-Proto: http' | tr -d '\r')
sy_match "GET over TLS reaches the backend" "$echo1" '^GET /__echo\?t=1 HTTP/1\.1$'
sy_eq "the backend sees X-Forwarded-Proto: https, once" \
    "$(grep -ci '^x-forwarded-proto:' <<<"$echo1"):$(grep -c '^X-Forwarded-Proto: https$' <<<"$echo1")" "1:1"

head -c 300000 /dev/urandom >"$SY_TMP/body.bin"
want=$(sha256sum <"$SY_TMP/body.bin" | cut -d' ' -f1)
sink=$(tls_curl --data-binary "@$SY_TMP/body.bin" "$URL/__sink")
sy_eq "POST of 300000 bytes arrives whole" "$(sy_json_num "$sink" bytes)" 300000
sy_eq "... and intact" "$(sy_json_str "$sink" sha256)" "$want"

got=$(tls_curl "$URL/__bytes?n=3000000" | sha256sum | cut -d' ' -f1)
sy_eq "a 3 MB answer comes back intact" "$got" "$(sy_pattern_sha 3000000)"

conns=$(tls_curl -w '%{num_connects} %{http_code}\n' -o /dev/null "$URL/healthz" \
    -o /dev/null "$URL/__echo" -o /dev/null "$URL/healthz" | tr '\n' ' ')
sy_eq "three requests on one kept-alive TLS connection" "$conns" "1 200 0 200 0 200 "

verbose=$(tls_curl -v -o /dev/null "$URL/healthz" 2>&1)
sy_match "ALPN: the server picks http/1.1" "$verbose" 'ALPN.*accepted.*http/1\.1'

# --- protocol versions -------------------------------------------------------------
sy_check "TLS 1.2 is accepted by default" tls_curl -o /dev/null --tlsv1.2 --tls-max 1.2 "$URL/healthz"
# The client's own security level would refuse TLS 1.1 before asking: level
# 0 lets it ask, so that the refusal seen is the server's.
old=$(openssl s_client -connect "127.0.0.1:$PORT" -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0' \
    </dev/null 2>&1)
sy_match "TLS 1.1 is refused by the server" "$old" 'alert protocol version|unsupported protocol'

# Resumption: the TLS 1.2 session of the first connection, kept in the
# server's session cache (no tickets), is taken up by the second.
openssl s_client -connect "127.0.0.1:$PORT" -tls1_2 -CAfile "$PKI/ca.pem" \
    -sess_out "$SY_TMP/sess.pem" </dev/null >"$SY_TMP/sess1.out" 2>&1
reuse=$(openssl s_client -connect "127.0.0.1:$PORT" -tls1_2 -CAfile "$PKI/ca.pem" \
    -sess_in "$SY_TMP/sess.pem" </dev/null 2>&1)
sy_match "a TLS 1.2 session is resumed" "$reuse" '^Reused, TLSv1\.2'

# --- clients that do not speak TLS -------------------------------------------------
if printf 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n' | sy_raw "$PORT" "$SY_TMP/plain.out" 5; then
    sy_ok "plain HTTP to the TLS port: the connection is closed"
else
    sy_not_ok "plain HTTP to the TLS port: the connection is closed" "still open after 5 s"
fi
sy_nomatch "... with no HTTP answer" "$(head -c 64 "$SY_TMP/plain.out" | tr -d '\0')" '^HTTP/'

t0=$(sy_now_ms)
if sy_raw "$PORT" "$SY_TMP/silent.out" 5 </dev/null; then
    sy_range "no ClientHello: closed after client_header ($HEADER_MS ms)" \
        $(($(sy_now_ms) - t0)) $((HEADER_MS - 100)) $((HEADER_MS + 2500))
else
    sy_not_ok "no ClientHello: closed after client_header ($HEADER_MS ms)" "still open after 5 s"
fi
# A record header and the first bytes of its body, then silence: OpenSSL
# holds an incomplete record, which must not make the worker spin.
proxy_cpu_ticks()
{
    awk '{ print $14 + $15 }' "/proc/$SY_PROXY_PID/stat"
}
cpu0=$(proxy_cpu_ticks)
if printf '\x16\x03\x01\x02\x00\x01\x00' | sy_raw "$PORT" "$SY_TMP/partial.out" 5; then
    sy_ok "half a ClientHello: closed after client_header"
else
    sy_not_ok "half a ClientHello: closed after client_header" "still open after 5 s"
fi
sy_range "... with the proxy idle meanwhile (CPU ticks)" $(($(proxy_cpu_ticks) - cpu0)) 0 30
sy_check "the proxy still serves after those" tls_curl -o /dev/null "$URL/healthz"

# A client that reads slowly: the proxy's TLS writes block and resume.
got=$(tls_curl --limit-rate 1500K "$URL/__bytes?n=3000000" | sha256sum | cut -d' ' -f1)
sy_eq "a 3 MB answer read slowly comes back intact" "$got" "$(sy_pattern_sha 3000000)"

# --- min_version 1.3 ----------------------------------------------------------------
tls_config "$SY_TMP/tls13.json" "$PORT13" \
    "{\"cert\": \"$PKI/server.pem\", \"key\": \"$PKI/server.key\", \"min_version\": \"1.3\"}"
sy_proxy "$SY_TMP/tls13.json" "$PORT13" proxy13 || sy_finish
URL13="https://127.0.0.1:$PORT13"
v13=$(tls_curl -v -o /dev/null "$URL13/healthz" 2>&1)
sy_match "min_version 1.3: TLS 1.3 is used" "$v13" 'SSL connection using TLSv1\.3'
if tls_curl -o /dev/null --tls-max 1.2 "$URL13/healthz" 2>/dev/null; then
    sy_not_ok "min_version 1.3: a TLS 1.2 client is refused" "the request succeeded"
else
    sy_ok "min_version 1.3: a TLS 1.2 client is refused"
fi


# --- certificates reloaded -----------------------------------------------------------
# A proxy of its own, on copies of the files that a renewal overwrites.
# new_cert NAME: a fresh key and certificate for 127.0.0.1, signed by the CA.
new_cert()
{
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$1" \
        -keyout "$PKI/$1.key" -out "$PKI/$1.csr" &&
        openssl x509 -req -in "$PKI/$1.csr" -CA "$PKI/ca.pem" -CAkey "$PKI/ca.key" \
            -CAcreateserial -days 2 -extfile "$PKI/san.ext" -out "$PKI/$1.pem"
}
# served_cn PORT [s_client options]: the CN of the certificate a new
# connection gets.
served_cn()
{
    local port=$1
    shift
    openssl s_client -connect "127.0.0.1:$port" "$@" </dev/null 2>/dev/null |
        openssl x509 -noout -subject 2>/dev/null | sed -E 's/.*CN ?= ?//'
}
# keep_get: one request on the kept-alive TLS connection of the coprocess
# KEPT; prints the status line.
keep_get()
{
    local line status=''
    printf 'GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n' >&"${KEPT[1]}"
    while IFS= read -r -t 5 line <&"${KEPT[0]}"; do
        line=${line%$'\r'}
        [[ -z "$status" ]] && status=$line
        [[ -z "$line" ]] && break
    done
    # /healthz answers "ok\n": read it so the next answer starts clean.
    read -r -t 5 line <&"${KEPT[0]}"
    echo "$status"
}

if ! { new_cert first && new_cert second && new_cert third; } >"$SY_TMP/reload-pki.out" 2>&1; then
    sy_not_ok "reload test certificates are made" "$(cat "$SY_TMP/reload-pki.out")"
    sy_finish
fi
cp "$PKI/first.pem" "$PKI/live.pem"
cp "$PKI/first.key" "$PKI/live.key"
sy_need_ctl
sy_port PORTRL
SOCK=$SY_TMP/ctl-reload.sock
RLCONF=$SY_TMP/reload.json
tls_config "$RLCONF.base" "$PORTRL" "{\"cert\": \"$PKI/live.pem\", \"key\": \"$PKI/live.key\"}"
jq --arg s "$SOCK" '.admin = {socket: $s}' "$RLCONF.base" >"$RLCONF"
sy_proxy "$RLCONF" "$PORTRL" proxyrl || sy_finish
sy_eq "before any reload: the first certificate is served" "$(served_cn "$PORTRL")" first

coproc KEPT { openssl s_client -quiet -connect "127.0.0.1:$PORTRL" -CAfile "$PKI/ca.pem" 2>/dev/null; }
SY_PIDS+=("$KEPT_PID")
sy_match "a kept-alive connection is served before the reload" "$(keep_get)" '^HTTP/1\.1 200'

# A reload that leaves the certificate alone keeps the session cache.
openssl s_client -connect "127.0.0.1:$PORTRL" -tls1_2 -CAfile "$PKI/ca.pem" \
    -sess_out "$SY_TMP/rl-sess.pem" </dev/null >"$SY_TMP/rl-sess.out" 2>&1
sy_ctl reload
sy_eq "a reload that changes no certificate: accepted" "$RC" 0
sy_match "... and a session from before it is resumed" \
    "$(openssl s_client -connect "127.0.0.1:$PORTRL" -tls1_2 -CAfile "$PKI/ca.pem" \
        -sess_in "$SY_TMP/rl-sess.pem" </dev/null 2>&1)" '^Reused, TLSv1\.2'

# A renewal: new files over the old paths, then a reload.
cp "$PKI/second.key" "$PKI/live.key.new" && mv "$PKI/live.key.new" "$PKI/live.key"
cp "$PKI/second.pem" "$PKI/live.pem.new" && mv "$PKI/live.pem.new" "$PKI/live.pem"
sy_ctl reload
sy_eq "reload after a renewal: accepted" "$RC" 0
sy_eq "new connections get the renewed certificate" "$(served_cn "$PORTRL")" second
sy_match "the connection opened before the reload is still served" "$(keep_get)" '^HTTP/1\.1 200'
sy_match "a session of the old certificate is not resumed" \
    "$(openssl s_client -connect "127.0.0.1:$PORTRL" -tls1_2 -CAfile "$PKI/ca.pem" \
        -sess_in "$SY_TMP/rl-sess.pem" </dev/null 2>&1)" '^New, TLSv1\.2'

# A key that does not match the certificate: the reload is refused and the
# certificate already loaded stays.
cp "$PKI/third.pem" "$PKI/live.pem"
sy_ctl reload
sy_eq "reload with a certificate that does not match its key: refused" "$RC" 1
sy_match "... saying which file and why" "$OUT" 'listen\[0\]\.tls\.key: not a PEM private key for the certificate'
sy_eq "... and the renewed certificate is still served" "$(served_cn "$PORTRL")" second
cp "$PKI/second.pem" "$PKI/live.pem"

# Settings reload too: min_version 1.3 refuses TLS 1.2 from now on.
jq '.listen[0].tls.min_version = "1.3"' "$RLCONF" >"$RLCONF.new" && mv "$RLCONF.new" "$RLCONF"
sy_ctl reload
sy_eq "reload to min_version 1.3: accepted" "$RC" 0
if tls_curl -o /dev/null --tls-max 1.2 "https://127.0.0.1:$PORTRL/healthz" 2>/dev/null; then
    sy_not_ok "after it, a TLS 1.2 client is refused" "the request succeeded"
else
    sy_ok "after it, a TLS 1.2 client is refused"
fi
sy_match "the connection opened before both reloads is still served" "$(keep_get)" '^HTTP/1\.1 200'
exec {KEPT[1]}>&-

# --- certificates chosen by SNI -----------------------------------------------------
# sni_cert NAME SAN: a key and a certificate for SAN, signed by the test CA.
sni_cert()
{
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$2" \
        -keyout "$PKI/$1.key" -out "$PKI/$1.csr" &&
        printf 'subjectAltName=DNS:%s\n' "$2" >"$PKI/$1.ext" &&
        openssl x509 -req -in "$PKI/$1.csr" -CA "$PKI/ca.pem" -CAkey "$PKI/ca.key" \
            -CAcreateserial -days 2 -extfile "$PKI/$1.ext" -out "$PKI/$1.pem"
}
if ! { sni_cert a a.test && sni_cert b '*.b.test'; } >"$SY_TMP/sni-pki.out" 2>&1; then
    sy_not_ok "SNI test certificates are made" "$(cat "$SY_TMP/sni-pki.out")"
    sy_finish
fi
sy_port PORTSNI
tls_config "$SY_TMP/sni.json" "$PORTSNI" \
    "{\"cert\": \"$PKI/server.pem\", \"key\": \"$PKI/server.key\", \"certificates\": [
      {\"cert\": \"$PKI/a.pem\", \"key\": \"$PKI/a.key\"},
      {\"cert\": \"$PKI/b.pem\", \"key\": \"$PKI/b.key\"}]}"
sy_proxy "$SY_TMP/sni.json" "$PORTSNI" proxysni || sy_finish
sy_check "SNI a.test: its own certificate verifies" tls_curl -o /dev/null \
    --resolve "a.test:$PORTSNI:127.0.0.1" "https://a.test:$PORTSNI/healthz"
sy_check "SNI x.b.test: the *.b.test certificate verifies" tls_curl -o /dev/null \
    --resolve "x.b.test:$PORTSNI:127.0.0.1" "https://x.b.test:$PORTSNI/healthz"
if tls_curl -o /dev/null --resolve "y.x.b.test:$PORTSNI:127.0.0.1" \
    "https://y.x.b.test:$PORTSNI/healthz" 2>/dev/null; then
    sy_not_ok "SNI y.x.b.test: the wildcard covers one label only" "the certificate verified"
else
    sy_ok "SNI y.x.b.test: the wildcard covers one label only"
fi
# s_summary OPTIONS...: the lines of an s_client session that say which
# certificate came and how the session went (so that a failure shows them).
s_summary()
{
    openssl s_client -connect "127.0.0.1:$PORTSNI" "$@" </dev/null 2>&1 |
        grep -E '^(CONNECTED|subject=|New, |Verify return|.*(error|errno|alert))'
}
sy_match "an unknown SNI gets the default certificate" "$(s_summary -servername other.test)" \
    '^subject=.*CN ?= ?localhost'
sy_match "no SNI gets the default certificate" "$(s_summary -noservername)" \
    '^subject=.*CN ?= ?localhost'

sy_finish
