#!/usr/bin/env bash
# control_load.sh - steering under load:
#   - 8000 requests flow (4 keep-alive clients) while the weight moves and a
#     rollback lands: every request is answered 200, none is lost;
#   - at the same time 20 control clients send garbage, oversized lines and
#     half requests: each gets its error, the proxy keeps answering both its
#     clients and its operators.
. "$(dirname "$0")/lib.sh"
sy_init "$@"

RAW=$SY_BUILD/sy-rawclient
CTL=$SY_BUILD/switchyardctl
for bin in "$RAW" "$CTL"; do
    [[ -x "$bin" ]] || {
        sy_not_ok "$(basename "$bin") is built" "missing: $bin"
        sy_finish
    }
done

sy_backends
SOCK="$SY_TMP/ctl.sock"
CONF="$SY_TMP/load.json"
sy_config "$CONF" port="$PORT" blue="blue-1@$BLUE" green="green-1@$GREEN" percent=0 \
    extra="\"admin\": {\"socket\": \"$SOCK\"}"
sy_proxy "$CONF" "$PORT" || sy_finish
for ((i = 0; i < 100; i++)); do [[ -S "$SOCK" ]] && break; sleep 0.05; done

# load N TAG: N requests on one keep-alive connection; "STATUS BACKEND" a line.
load()
{
    for ((i = 0; i < $1; i++)); do
        echo "url = \"http://127.0.0.1:$PORT/$2/$i\""
        echo 'output = "/dev/null"'
    done | SY_CURL_MAX_TIME=60 sy_curl -K - -w '%{http_code} %header{x-backend}\n' \
        >"$SY_TMP/load-$2.out"
}

# garbage K: one control client's worth of bad input.
garbage()
{
    case $(($1 % 4)) in
    0) printf 'this is not json\n{"cmd":\n' ;;
    1) printf '{"cmd":"weight","percent":"lots"}\n{"cmd":"fly"}\n' ;;
    2) head -c 70000 /dev/zero | tr '\0' 'x' ;;
    3) printf '{"cmd":"status"' ;; # no newline: half a request, then our FIN
    esac | "$RAW" --unix "$SOCK" --half-close --timeout-ms 10000 >"$SY_TMP/garbage-$1.out"
}

pids=()
for t in a b c d; do
    load 2000 "$t" &
    pids+=($!)
done
for ((k = 0; k < 20; k++)); do
    garbage "$k" &
    pids+=($!)
done
steps_ok=0
for w in 10 25 50 75; do
    "$CTL" -s "$SOCK" weight "$w" --reason "load test" >/dev/null && steps_ok=$((steps_ok + 1))
    sleep 0.05
done
"$CTL" -s "$SOCK" rollback --reason "load test" >"$SY_TMP/rollback.out"
rollback_rc=$?
for pid in "${pids[@]}"; do wait "$pid"; done

codes=$(cat "$SY_TMP"/load-*.out)
sy_eq "under load: 8000 requests answered" "$(grep -c . <<<"$codes")" 8000
sy_eq "under load: every one of them 200" "$(grep -c '^200 ' <<<"$codes")" 8000
# The changes landed while the load ran: some requests reached green.
sy_range "under load: the weight changes steered live traffic (green answers)" \
    "$(grep -c ' green-1$' <<<"$codes")" 1 7999
sy_eq "four weight changes applied under load" "$steps_ok" 4
sy_eq "the rollback under load applied" "$rollback_rc" 0
answered=0
for ((k = 0; k < 20; k++)); do
    grep -q '"ok":false' "$SY_TMP/garbage-$k.out" && answered=$((answered + 1))
done
# Half a request (no newline) gets no reply: the other 15 get their errors.
sy_eq "garbage clients: each complete bad line got an error reply" "$answered" 15
out=$("$CTL" -s "$SOCK" --json status)
sy_match "after it all: status answers, rolled back" "$out" '"phase": ?"rolled_back"'
sy_eq "after it all: requests still served" \
    "$(sy_curl -o /dev/null -w '%{http_code} %header{x-backend}' "http://127.0.0.1:$PORT/")" \
    "200 blue-1"
# The descriptors are the data plane's too: at most 64 control clients.
idle_pids=()
for ((k = 0; k < 64; k++)); do
    "$RAW" --unix "$SOCK" --timeout-ms 4000 </dev/null >/dev/null &
    idle_pids+=($!)
done
sleep 0.5
r=$(printf '{"cmd":"status"}\n' | "$RAW" --unix "$SOCK" --half-close --timeout-ms 3000)
sy_match "a 65th control client: busy" "$r" '"code": ?"busy"'
for pid in "${idle_pids[@]}"; do kill "$pid" 2>/dev/null; done
for pid in "${idle_pids[@]}"; do wait "$pid" 2>/dev/null; done
sleep 0.2
sy_match "once they are gone: answered again" "$("$CTL" -s "$SOCK" --json status)" '"ok": ?true'

# A long history: 300 changes with 200-byte reasons make more events than
# one 64 KiB reply line holds. The reply keeps the newest and says so.
reason=$(head -c 200 /dev/zero | tr '\0' 'r')
for ((k = 0; k < 300; k++)); do
    printf '{"cmd":"weight","percent":%d,"reason":"%s"}\n' $((k % 2 + 1)) "$reason"
done | "$RAW" --unix "$SOCK" --half-close --timeout-ms 20000 >"$SY_TMP/many.out"
sy_eq "300 changes on one connection: 300 ok replies" "$(grep -c '"ok":true' "$SY_TMP/many.out")" 300
"$CTL" -s "$SOCK" events >"$SY_TMP/events.out"
sy_eq "switchyardctl events after a long history: exit 0" "$?" 0
sy_range "switchyardctl events after a long history: the newest events (lines)" \
    "$(grep -c . "$SY_TMP/events.out")" 100 256
sy_match "the reply says it was truncated" "$("$CTL" -s "$SOCK" --json events)" '"truncated": ?true'

sy_stop "$SY_PROXY_PID" 10
sy_eq "proxy exits 0 on SIGTERM" "$SY_RC" 0
sy_finish
