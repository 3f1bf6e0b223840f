#!/usr/bin/env bash
# bodies.sh - large bodies stream through the proxy intact and in bounded
# memory: a 100 MiB chunked upload, 100 MiB downloads framed by
# Content-Length and by chunked encoding (one of them read slowly, so the
# proxy must apply backpressure instead of buffering), and the proxy's peak
# resident memory stays under 64 MiB.
. "$(dirname "$0")/lib.sh"
sy_init "$@"

N=$((100 * 1024 * 1024))
SMALL=$((3 * 1024 * 1024 + 17))
HWM_LIMIT_KB=$((64 * 1024))
export SY_CURL_MAX_TIME=100

sy_backends
sy_config "$SY_TMP/bodies.json" port="$PORT" blue="blue-1@$BLUE" green="green-1@$GREEN" percent=0
sy_proxy "$SY_TMP/bodies.json" "$PORT" || sy_finish
URL="http://127.0.0.1:$PORT"

want=$(sy_pattern_sha "$N")

# --- uploads -------------------------------------------------------------------
# curl -T - cannot know the size of a pipe, so it sends the body chunked.
reply=$(yes switchyard | head -c "$N" |
    sy_curl -X POST -T - -H 'Content-Type: application/octet-stream' "$URL/__sink")
sy_eq "chunked 100 MiB upload: the backend received every byte" \
    "$(sy_json_num "$reply" bytes)" "$N"
sy_eq "chunked 100 MiB upload: sha256 matches" "$(sy_json_str "$reply" sha256)" "$want"

# A body framed by Content-Length (from a file, so curl knows the size).
yes switchyard | head -c "$SMALL" >"$SY_TMP/small.bin"
reply=$(sy_curl -X POST --data-binary "@$SY_TMP/small.bin" -H 'Expect:' "$URL/__sink")
sy_eq "Content-Length upload of $SMALL bytes: byte count matches" \
    "$(sy_json_num "$reply" bytes)" "$SMALL"
sy_eq "Content-Length upload: sha256 matches" "$(sy_json_str "$reply" sha256)" \
    "$(sha256sum <"$SY_TMP/small.bin" | cut -d' ' -f1)"
rm -f "$SY_TMP/small.bin"

# --- downloads -------------------------------------------------------------------
got=$(sy_curl -D "$SY_TMP/cl.head" "$URL/__bytes?n=$N" | sha256sum | cut -d' ' -f1)
sy_eq "100 MiB Content-Length download: sha256 matches" "$got" "$want"
sy_match "Content-Length download: the head says Content-Length: $N" \
    "$(tr -d '\r' <"$SY_TMP/cl.head")" "^[Cc]ontent-[Ll]ength: $N\$"

# Read at 40 MB/s while the backend could send much faster: whatever the
# proxy does not hold back, it would have to buffer.
got=$(sy_curl --limit-rate 40M -D "$SY_TMP/chunked.head" "$URL/__bytes?n=$N&chunked=1" |
    sha256sum | cut -d' ' -f1)
sy_eq "100 MiB chunked download (slow reader): sha256 matches" "$got" "$want"
sy_match "chunked download: the head says Transfer-Encoding: chunked" \
    "$(tr -d '\r' <"$SY_TMP/chunked.head")" '^[Tt]ransfer-[Ee]ncoding: chunked$'

# Both directions at once on two connections.
yes switchyard | head -c "$N" |
    sy_curl -X POST -T - "$URL/__sink" >"$SY_TMP/both.up" &
up_pid=$!
SY_PIDS+=("$up_pid")
got=$(sy_curl "$URL/__bytes?n=$N&chunked=1" | sha256sum | cut -d' ' -f1)
wait "$up_pid"
sy_forget "$up_pid"
sy_eq "concurrent download: sha256 matches" "$got" "$want"
sy_eq "concurrent upload: sha256 matches" "$(sy_json_str "$(cat "$SY_TMP/both.up")" sha256)" \
    "$want"

# --- memory ------------------------------------------------------------------------
hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$SY_PROXY_PID/status" 2>/dev/null)
if [[ "${SY_SANITIZE:-OFF}" == "ON" ]]; then
    sy_ok "# SKIP peak memory check: sanitizer build (VmHWM ${hwm:-?} kB)"
else
    sy_range "proxy peak resident memory (VmHWM, kB) under 64 MiB" "${hwm:-}" 1 "$HWM_LIMIT_KB"
fi

sy_stop "$SY_PROXY_PID" 10
sy_eq "proxy exits 0 on SIGTERM" "$SY_RC" 0

sy_finish
