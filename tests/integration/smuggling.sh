#!/usr/bin/env bash
# smuggling.sh - request smuggling through the real proxy: a table of
# ambiguous or malformed requests, each sent raw on a fresh connection to a
# proxy whose backend records every request it reads (sy-backend --record).
#
# Every case says which status lines the client must get and exactly which
# requests the backend must have read ("METHOD TARGET BODY_BYTES", in order).
# A refused request gets ONE answer, the proxy's own (no X-Backend), and the
# connection closes. Most attempts carry a hidden second request for the
# target /smuggled: it must never reach the backend, whatever the case.
. "$(dirname "$0")/lib.sh"
sy_init "$@"

sy_port BLUE
sy_port GREEN
sy_port PORT
REC="$SY_TMP/blue-1.record"
sy_backend blue-1 "$BLUE" --record "$REC"
sy_backend green-1 "$GREEN"
# Small limits, so that the size cases stay small.
sy_config "$SY_TMP/smuggling.json" port="$PORT" blue="blue-1@$BLUE" green="green-1@$GREEN" \
    extra='"limits": {"max_header_bytes": 2048, "max_headers": 20}'
sy_proxy "$SY_TMP/smuggling.json" "$PORT" || sy_finish
: >>"$REC"

# Pieces of the raw requests (printf formats).
S='GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n' # the hidden request, 35 bytes
P='POST /a HTTP/1.1\r\nHost: x\r\n'            # a request line and its Host
C='Connection: close\r\n'                      # ends the normalised cases at once
CHUNKS='5\r\nhello\r\n0\r\n\r\n'               # a well-formed 5-byte chunked body
LONG=$(printf 'a%.0s' {1..2100})               # over limits.max_header_bytes
MANY=$(for ((i = 0; i < 21; i++)); do printf 'X-H%d: v\\r\\n' "$i"; done)

# run_case NAME STATUSES RECORD RAW: sends printf RAW on a fresh connection.
# STATUSES: the status codes the client must get, in order, space separated;
# when the last is 4xx the connection must close after it and the answer
# must be the proxy's own. RECORD: the lines the backend must have written
# for this case, joined with ";" ("" for none).
run_case()
{
    local name=$1 want_status=$2 want_rec=$3 raw=$4 out="$SY_TMP/case.out" before rc
    before=$(wc -l <"$REC")
    # shellcheck disable=SC2059 # RAW is a printf format by design
    printf -- "$raw" | sy_raw "$PORT" "$out" 3
    rc=$?
    # A request forwarded by mistake would be recorded a moment after the
    # proxy's answer, not before: give it that moment.
    sleep 0.05
    local got_status got_rec
    got_status=$(grep -ao '^HTTP/1\.[01] [0-9][0-9][0-9]' "$out" | cut -c10-12 | xargs)
    got_rec=$(tail -n +$((before + 1)) "$REC" | paste -sd ';' -)
    local bad=()
    [[ "$got_status" == "$want_status" ]] || bad+=("status: got '$got_status', want '$want_status'")
    [[ "$got_rec" == "$want_rec" ]] || bad+=("backend read: got '$got_rec', want '$want_rec'")
    if [[ "$want_status" =~ 4[0-9][0-9]$ ]]; then
        ((rc == 0)) || bad+=("the connection stayed open after the ${want_status##* }")
        if [[ "$want_rec" == "" ]] && grep -aqi '^x-backend:' "$out"; then
            bad+=("the ${want_status##* } came from the backend, not from the proxy")
        fi
    fi
    if ((${#bad[@]} == 0)); then
        sy_ok "$name"
    else
        sy_not_ok "$name" "${bad[@]}" "answer: $(head -c 600 "$out" | tr -d '\r')"
    fi
}

# --- framing: Content-Length and Transfer-Encoding -----------------------------------
run_case "CL and TE" 400 '' "${P}Content-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n$S"
run_case "TE and CL" 400 '' "${P}Transfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n$S"
run_case "two differing CLs" 400 '' "${P}Content-Length: 5\r\nContent-Length: 40\r\n\r\nhello$S"
run_case "two equal CLs: one request" 200 'POST /a 5' \
    "${P}Content-Length: 5\r\nContent-Length: 5\r\n$C\r\nhello$S"
run_case "CL list 5, 5: one request" 200 'POST /a 5' "${P}Content-Length: 5, 5\r\n$C\r\nhello$S"
run_case "CL list 5, 40" 400 '' "${P}Content-Length: 5, 40\r\n\r\nhello$S"
run_case "CL with a plus sign" 400 '' "${P}Content-Length: +5\r\n\r\nhello$S"
run_case "CL negative" 400 '' "${P}Content-Length: -5\r\n\r\nhello$S"
run_case "CL with leading zeros: one request" 200 'POST /a 5' "${P}Content-Length: 005\r\n$C\r\nhello$S"
run_case "CL in hex" 400 '' "${P}Content-Length: 0x5\r\n\r\nhello$S"
run_case "CL with an inner space" 400 '' "${P}Content-Length: 5 0\r\n\r\nhello$S"
run_case "CL empty" 400 '' "${P}Content-Length:\r\n\r\n$S"
run_case "CL over 2^63" 400 '' "${P}Content-Length: 99999999999999999999\r\n\r\n$S"
run_case "CL with a space before the colon" 400 '' "${P}Content-Length : 5\r\n\r\nhello$S"
run_case "CL named in Connection: kept" 200 'POST /a 35' \
    "${P}Content-Length: 35\r\nConnection: close, content-length\r\n\r\n$S"
run_case "TE: chunked, identity" 400 '' "${P}Transfer-Encoding: chunked, identity\r\n\r\n$CHUNKS$S"
run_case "TE: identity, chunked" 400 '' "${P}Transfer-Encoding: identity, chunked\r\n\r\n$CHUNKS$S"
run_case "TE: xchunked" 400 '' "${P}Transfer-Encoding: xchunked\r\n\r\n$CHUNKS$S"
run_case "TE: quoted chunked" 400 '' "${P}Transfer-Encoding: \"chunked\"\r\n\r\n$CHUNKS$S"
run_case "TE: ,chunked" 400 '' "${P}Transfer-Encoding: ,chunked\r\n\r\n$CHUNKS$S"
run_case "TE twice" 400 '' "${P}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n$CHUNKS$S"
run_case "TE: chunked + trailing space: one request" 200 'POST /a 5' \
    "${P}Transfer-Encoding: chunked \r\n$C\r\n$CHUNKS$S"
run_case "TE: chunked + trailing tab: one request" 200 'POST /a 5' \
    "${P}Transfer-Encoding: chunked\t\r\n$C\r\n$CHUNKS$S"
run_case "TE:<tab>chunked: one request" 200 'POST /a 5' "${P}Transfer-Encoding:\tchunked\r\n$C\r\n$CHUNKS$S"
run_case "TE with a vertical tab" 400 '' "${P}Transfer-Encoding: \vchunked\r\n\r\n$CHUNKS$S"
run_case "TE with a space before the colon" 400 '' "${P}Transfer-Encoding : chunked\r\n\r\n$CHUNKS$S"
run_case "TE with a tab before the colon" 400 '' "${P}Transfer-Encoding\t: chunked\r\n\r\n$CHUNKS$S"
run_case "header name with a tab" 400 '' "${P}Transfer\tEncoding: chunked\r\n\r\n$CHUNKS$S"
run_case "TE on HTTP/1.0" 400 '' "POST /a HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n$CHUNKS$S"
run_case "TE named in Connection: kept" 200 'POST /a 5' \
    "${P}Transfer-Encoding: chunked\r\nConnection: close, transfer-encoding\r\n\r\n$CHUNKS$S"

# --- line endings and folding ----------------------------------------------------------
run_case "bare LF line endings" 400 '' 'GET /a HTTP/1.1\nHost: x\n\n'"$S"
run_case "bare LF ends the head" 400 '' 'GET /a HTTP/1.1\r\nHost: x\r\n\n'"$S"
run_case "bare CR inside a field" 400 '' "GET /a HTTP/1.1\r\nHost: x\r\nX-A: a\rContent-Length: 35\r\n\r\n$S"
run_case "obs-fold continues TE" 400 '' "${P}Transfer-Encoding:\r\n chunked\r\n\r\n$CHUNKS$S"
run_case "obs-fold continues CL" 400 '' "${P}Content-Length: 3\r\n\t5\r\n\r\n$S"
run_case "whitespace before the first field" 400 '' "POST /a HTTP/1.1\r\n Host: x\r\n\r\n$S"
run_case "leading empty lines are skipped" 200 'GET /a 0' "\r\n\r\nGET /a HTTP/1.1\r\nHost: x\r\n$C\r\n"
run_case "a leading bare LF" 400 '' "\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n"

# --- the chunked body (the head was sound and went up: the body is checked as it
#     passes, and the backend never reads a request cut short) ---------------------
TE="${P}Transfer-Encoding: chunked\r\n"
run_case "chunk size overflow" 400 '' "$TE\r\nffffffffffffffff1\r\nhello\r\n0\r\n\r\n$S"
run_case "chunk size 2^64-1" 400 '' "$TE\r\nffffffffffffffff\r\nhello\r\n0\r\n\r\n$S"
run_case "chunk size 0x5" 400 '' "$TE\r\n0x5\r\nhello\r\n0\r\n\r\n$S"
run_case "chunk size negative" 400 '' "$TE\r\n-5\r\nhello\r\n0\r\n\r\n$S"
run_case "chunk size with a leading space" 400 '' "$TE\r\n 5\r\nhello\r\n0\r\n\r\n$S"
run_case "chunk size with a trailing space" 400 '' "$TE\r\n5 \r\nhello\r\n0\r\n\r\n$S"
run_case "chunk extension, quoted: one request" 200 'POST /a 5' \
    "$TE$C\r\n5;a=\"b;c=d\"\r\nhello\r\n0;e=f\r\n\r\n$S"
run_case "chunk extension, CRLF inside quotes" 400 '' "$TE\r\n5;a=\"b\r\n0\r\n\r\n$S\"\r\nhello\r\n0\r\n\r\n"
run_case "chunk extension, unterminated quote" 400 '' "$TE\r\n5;a=\"b\r\nhello\r\n0\r\n\r\n$S"
run_case "chunk data longer than its size" 400 '' "$TE\r\n3\r\nhello\r\n0\r\n\r\n$S"
run_case "bare LF in chunked framing" 400 '' "$TE\r\n5\nhello\n0\n\n$S"
run_case "last chunk without its CRLF" 400 '' "$TE\r\n5\r\nhello\r\n0\r\n$S"
run_case "trailer with CL: one request" 200 'POST /a 5' \
    "$TE$C\r\n5\r\nhello\r\n0\r\nContent-Length: 35\r\n\r\n$S"
run_case "trailer with obs-fold" 400 '' "$TE\r\n5\r\nhello\r\n0\r\nX-T: a\r\n b\r\n\r\n$S"

# --- NUL bytes -----------------------------------------------------------------------------
run_case "NUL in a header value" 400 '' "GET /a HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n$S"
run_case "NUL in a header name" 400 '' "GET /a HTTP/1.1\r\nHost: x\r\nX-\0A: b\r\n\r\n$S"
run_case "NUL in the target" 400 '' "GET /a\0/smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
run_case "NUL before the method" 400 '' "\0GET /a HTTP/1.1\r\nHost: x\r\n\r\n"

# --- request targets and versions -------------------------------------------------------------
run_case "absolute-form: becomes origin-form" 200 'GET /p?q=1 0' \
    "GET http://abs.example/p?q=1 HTTP/1.1\r\nHost: other.example\r\n$C\r\n"
run_case "absolute-form without a path: /" 200 'GET / 0' \
    "GET http://abs.example HTTP/1.1\r\nHost: abs.example\r\n$C\r\n"
run_case "absolute-form with userinfo" 400 '' "GET http://u@abs.example/ HTTP/1.1\r\nHost: x\r\n\r\n"
run_case "absolute-form, unknown scheme" 400 '' "GET ftp://abs.example/ HTTP/1.1\r\nHost: x\r\n\r\n"
run_case "* on GET" 400 '' "GET * HTTP/1.1\r\nHost: x\r\n\r\n"
run_case "OPTIONS *: one request" 200 'OPTIONS * 0' "OPTIONS * HTTP/1.1\r\nHost: x\r\n$C\r\n"
run_case "authority-form on GET" 400 '' "GET x:80 HTTP/1.1\r\nHost: x\r\n\r\n"
run_case "CONNECT" 405 '' "CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n$S"
run_case "a space in the target" 400 '' "GET /a /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
run_case "a tab in the target" 400 '' "GET /a\t/smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
run_case "a fragment in the target" 400 '' "GET /a#/smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
run_case "raw non-ASCII in the target" 400 '' "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n"
run_case "a tab between method and target" 400 '' "GET\t/a HTTP/1.1\r\nHost: x\r\n\r\n"
run_case "HTTP/0.9 request line" 400 '' "GET /a\r\n\r\n"
run_case "HTTP/2 preface" 400 '' 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'
run_case "HTTP/1.2" 400 '' "GET /a HTTP/1.2\r\nHost: x\r\n\r\n"
run_case "lower-case http/1.1" 400 '' "GET /a http/1.1\r\nHost: x\r\n\r\n"

# --- Expect -----------------------------------------------------------------------------------
run_case "Expect: 100-continue on a GET without body: no 100" 200 'GET /a 0' \
    "GET /a HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n$C\r\n"
run_case "Expect: 100-continue, body sent at once" '100 200' 'POST /a 5' \
    "${P}Expect: 100-continue\r\nContent-Length: 5\r\n$C\r\nhello$S"
run_case "Expect: 100-continue on HTTP/1.0: ignored" 200 'POST /a 5' \
    "POST /a HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello$S"
run_case "Expect: foo" 400 '' "${P}Expect: foo\r\nContent-Length: 5\r\n\r\nhello$S"
run_case "Expect: 100-continue, foo" 400 '' "${P}Expect: 100-continue, foo\r\n\r\n$S"

# --- limits -----------------------------------------------------------------------------------
run_case "request line over max_header_bytes" 431 '' "GET /$LONG HTTP/1.1\r\nHost: x\r\n\r\n"
run_case "header over max_header_bytes" 431 '' "GET /a HTTP/1.1\r\nHost: x\r\nX-Long: $LONG\r\n\r\n"
run_case "more fields than max_headers" 431 '' "GET /a HTTP/1.1\r\nHost: x\r\n$MANY\r\n"

# --- Host -------------------------------------------------------------------------------------
run_case "two Host fields" 400 '' "GET /a HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n"
run_case "no Host on HTTP/1.1" 400 '' "GET /a HTTP/1.1\r\n\r\n"
run_case "Host with userinfo" 400 '' "GET /a HTTP/1.1\r\nHost: user@x\r\n\r\n"
run_case "Host with a path" 400 '' "GET /a HTTP/1.1\r\nHost: x/smuggled\r\n\r\n"
run_case "Host with a space" 400 '' "GET /a HTTP/1.1\r\nHost: x y\r\n\r\n"
run_case "no Host on HTTP/1.0: one request" 200 'GET /a 0' "GET /a HTTP/1.0\r\n\r\n"

# --- pipelining -------------------------------------------------------------------------------
run_case "valid then invalid: one answer each, then close" '200 400' 'GET /first 0' \
    "GET /first HTTP/1.1\r\nHost: x\r\n\r\nGET /bad HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n$S"
run_case "a request as a CL body stays a body" 200 'POST /a 35' "${P}Content-Length: 35\r\n$C\r\n$S"
run_case "nothing is read after Connection: close" 200 'GET /a 0' \
    "GET /a HTTP/1.1\r\nHost: x\r\n$C\r\n$S"

# --- what the backend saw of the normalised ones ------------------------------------------------
# /__echo answers the head as the backend received it.
printf 'GET http://abs.example/__echo?q HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n' |
    sy_raw "$PORT" "$SY_TMP/abs.out" 3
abs=$(tr -d '\r' <"$SY_TMP/abs.out")
sy_match "absolute-form: the backend gets the origin-form target" "$abs" '^GET /__echo\?q HTTP/1\.1$'
sy_eq "absolute-form: the backend gets Host from the target, once" \
    "$(grep -i '^host:' <<<"$abs" | paste -sd ';' -)" 'Host: abs.example'
printf 'POST /__echo HTTP/1.1\r\nHost: x\r\nContent-Length: 005\r\nContent-Length: 5, 5\r\nConnection: close\r\n\r\nhello' |
    sy_raw "$PORT" "$SY_TMP/cl.out" 3
sy_eq "equal Content-Lengths: the backend gets a single, plain one" \
    "$(tr -d '\r' <"$SY_TMP/cl.out" | grep -i '^content-length:' | sed -n '2,$p' | paste -sd ';' -)" \
    'Content-Length: 5'

sy_eq "the hidden request never reached the backend" "$(grep -c smuggled "$REC")" 0
sy_eq "the backend refused nothing: every refusal was the proxy's" "$(grep -c '^!' "$REC")" 0

sy_stop "$SY_PROXY_PID" 10
sy_eq "proxy exits 0 on SIGTERM" "$SY_RC" 0

sy_finish
