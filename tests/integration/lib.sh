# shellcheck shell=bash
# lib.sh - shared helpers for the integration tests (sourced, not run).
#
# Every test script:
#
#   . "$(dirname "$0")/lib.sh"
#   sy_init "$@"                   # $1 = the build folder (CTest passes it)
#   sy_port P; sy_backend blue-1 "$P"; ...; sy_proxy "$CONF" "$PORT"
#   sy_eq "what is checked" "$got" "$want"   # prints ok - / not ok - lines
#   sy_finish                      # "N passed, N failed", exit status
#
# Everything runs on 127.0.0.1. A trap stops every process started here and
# removes the temporary folder on any exit. Every wait is bounded.

set -u
set -o pipefail

SY_PASS=0
SY_FAIL=0
SY_PIDS=()  # every background process started through this file
SY_PORTS=() # ports handed out, so one script never gets the same one twice
SY_TMP=
SY_BUILD=
SY_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SY_PROXY_PID=
SY_RC=

# curl honours these and would send our loopback requests elsewhere.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY

# Sanitizer builds: leaks are checked when a process exits, and every report
# lands in that process's log, which sy_finish scans.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# ---------------------------------------------------------------------------
# Results

sy_ok()
{
    SY_PASS=$((SY_PASS + 1))
    echo "ok - $1"
}

# sy_not_ok DESC [DETAIL...]: a failed check; each detail becomes a "# " line.
sy_not_ok()
{
    local d
    SY_FAIL=$((SY_FAIL + 1))
    echo "not ok - $1"
    shift
    for d in "$@"; do
        printf '%s\n' "$d" | head -n 40 | sed 's/^/#   /'
    done
}

# sy_check DESC CMD...: ok when CMD exits 0.
sy_check()
{
    local desc=$1
    shift
    if "$@"; then
        sy_ok "$desc"
    else
        sy_not_ok "$desc" "command failed: $*"
    fi
}

# sy_eq DESC GOT WANT
sy_eq()
{
    if [[ "$2" == "$3" ]]; then
        sy_ok "$1"
    else
        sy_not_ok "$1" "got:  $2" "want: $3"
    fi
}

# sy_range DESC GOT LO HI: LO <= GOT <= HI, integers.
sy_range()
{
    if [[ "$2" =~ ^-?[0-9]+$ ]] && (($2 >= $3 && $2 <= $4)); then
        sy_ok "$1 ($2)"
    else
        sy_not_ok "$1" "got:  $2" "want: $3..$4"
    fi
}

# sy_match DESC TEXT REGEX: TEXT matches the extended regular expression.
sy_match()
{
    if printf '%s' "$2" | grep -Eq -- "$3"; then
        sy_ok "$1"
    else
        sy_not_ok "$1" "text: $2" "regex: $3"
    fi
}

# sy_nomatch DESC TEXT REGEX: no line of TEXT matches (case-insensitive).
sy_nomatch()
{
    if printf '%s' "$2" | grep -Eiq -- "$3"; then
        sy_not_ok "$1" "text: $2" "should not match: $3"
    else
        sy_ok "$1"
    fi
}

# ---------------------------------------------------------------------------
# Set-up and tear-down

sy_init()
{
    local build=${1:-}
    if [[ -z "$build" || ! -d "$build" ]]; then
        echo "usage: $0 BUILD_DIR" >&2
        exit 2
    fi
    SY_BUILD=$(cd "$build" && pwd)
    SY_TMP=$(mktemp -d "${TMPDIR:-/tmp}/sy-integ.XXXXXX") || exit 2
    trap sy_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    local bin
    for bin in switchyard sy-backend; do
        [[ -x "$SY_BUILD/$bin" ]] || sy_not_ok "$bin is built" "missing: $SY_BUILD/$bin"
    done
    if ((SY_FAIL > 0)); then
        echo "$SY_PASS passed, $SY_FAIL failed"
        exit 1
    fi
}

# sy_signal_tree SIGNAL PID: signals PID's descendants, then PID. A function
# run in the background (sy_curl ... &) is a subshell whose curl is a child:
# stopping only the subshell would leave the curl behind.
sy_signal_tree()
{
    local sig=$1 pid=$2 child
    for child in $(ps -o pid= --ppid "$pid" 2>/dev/null); do
        sy_signal_tree "$sig" "$child"
    done
    kill "-$sig" "$pid" 2>/dev/null || true
}

# sy_stop PID [SECONDS]: SIGTERM, wait at most SECONDS (default 5), then
# SIGKILL. Sets SY_RC to the exit status (137 after a SIGKILL).
sy_stop()
{
    local pid=$1 limit=$((${2:-5} * 20)) i
    SY_RC=
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < limit; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$pid" 2>/dev/null; then
        sy_signal_tree KILL "$pid"
    fi
    wait "$pid" 2>/dev/null
    SY_RC=$?
    sy_forget "$pid"
}

# sy_forget PID: drops PID from the processes the trap will stop.
sy_forget()
{
    local keep=() p
    for p in "${SY_PIDS[@]}"; do
        [[ "$p" == "$1" ]] || keep+=("$p")
    done
    SY_PIDS=("${keep[@]}")
}

sy_stop_all()
{
    local p
    for p in "${SY_PIDS[@]}"; do
        sy_signal_tree TERM "$p"
    done
    for p in "${SY_PIDS[@]}"; do
        sy_stop "$p" 5
    done
}

sy_cleanup()
{
    local rc=$?
    trap - EXIT INT TERM
    local p
    for p in "${SY_PIDS[@]}"; do
        sy_signal_tree KILL "$p"
    done
    wait 2>/dev/null
    if [[ -n "$SY_TMP" && -d "$SY_TMP" ]]; then
        if [[ -n "${SY_KEEP_TMP:-}" ]]; then
            echo "# kept $SY_TMP"
        else
            rm -rf "$SY_TMP"
        fi
    fi
    exit "$rc"
}

# Sanitizer reports in any process log fail the script: the tests double as
# the ASan/UBSan run of the real binaries.
sy_check_logs()
{
    local f bad=()
    for f in "$SY_TMP"/*.log; do
        [[ -f "$f" ]] || continue
        if grep -Eq 'ERROR: (Address|Leak)Sanitizer|runtime error:|UndefinedBehaviorSanitizer' "$f"; then
            bad+=("$f")
        fi
    done
    if ((${#bad[@]} == 0)); then
        sy_ok "no sanitizer report in any process log"
    else
        for f in "${bad[@]}"; do
            sy_not_ok "sanitizer report in $(basename "$f")" "$(grep -E -A12 \
                'ERROR: (Address|Leak)Sanitizer|runtime error:' "$f" | head -n 30)"
        done
    fi
}

# Stops everything gracefully (so leak checks run), checks the logs, prints
# the summary and exits non-zero when any check failed.
sy_finish()
{
    sy_stop_all
    if [[ -n "$SY_TMP" ]]; then
        sy_check_logs
    fi
    echo "$SY_PASS passed, $SY_FAIL failed"
    if ((SY_FAIL > 0)) && [[ -n "$SY_TMP" ]]; then
        local f
        for f in "$SY_TMP"/*.log; do
            [[ -f "$f" ]] || continue
            echo "# --- last lines of $(basename "$f")"
            tail -n 15 "$f" | sed 's/^/# /'
        done
    fi
    ((SY_FAIL == 0)) && exit 0
    exit 1
}

# ---------------------------------------------------------------------------
# Ports and processes

# True when something uses PORT on this host, in any TCP state: a port a
# client holds or one in TIME_WAIT is no good for a listener either, and a
# SO_REUSEPORT listener of someone else would silently share traffic.
sy_port_in_use()
{
    local hex
    hex=$(printf '%04X' "$1")
    if awk -v h=":$hex" 'NR > 1 && substr($2, length($2) - 4) == h { found = 1 }
                         END { exit !found }' /proc/net/tcp /proc/net/tcp6 2>/dev/null; then
        return 0
    fi
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# sy_port VAR: a free random port from 20000 up to the kernel's ephemeral
# range, stored in VAR.
sy_port()
{
    local p i low=32768 high
    # Below the kernel's range for outgoing connections: a port picked from
    # it could be taken by some connect() between our check and the bind.
    read -r low high </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null
    ((low > 20100)) || low=32768
    for ((i = 0; i < 200; i++)); do
        p=$((20000 + (RANDOM * 32768 + RANDOM) % (low - 20000)))
        [[ " ${SY_PORTS[*]} " == *" $p "* ]] && continue
        sy_port_in_use "$p" && continue
        SY_PORTS+=("$p")
        printf -v "$1" '%s' "$p"
        return 0
    done
    echo "no free port found in 200 tries" >&2
    exit 2
}

# sy_clients PORT: how many client sockets on this host are connected to
# PORT (ESTABLISHED, remote port PORT).
sy_clients()
{
    local hex
    hex=$(printf '%04X' "$1")
    awk -v h=":$hex" 'NR > 1 && $4 == "01" && substr($3, length($3) - 4) == h { n++ }
                      END { print n + 0 }' /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# sy_wait_port PORT PID [SECONDS]: until PORT accepts connections (default
# 10 s: sanitizer builds start slowly). Fails early when PID died.
sy_wait_port()
{
    local port=$1 pid=$2 limit=$((${3:-10} * 20)) i
    for ((i = 0; i < limit; i++)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

# sy_backend NAME PORT [ARGS...]: starts sy-backend on 127.0.0.1:PORT, logging
# to $SY_TMP/NAME.log, and waits until it accepts connections. Sets SY_LAST_PID.
sy_backend()
{
    local name=$1 port=$2
    shift 2
    "$SY_BUILD/sy-backend" --listen "127.0.0.1:$port" --name "$name" "$@" \
        >"$SY_TMP/$name.log" 2>&1 &
    SY_LAST_PID=$!
    SY_PIDS+=("$SY_LAST_PID")
    if ! sy_wait_port "$port" "$SY_LAST_PID"; then
        sy_not_ok "sy-backend $name listens on 127.0.0.1:$port" "$(tail -n 20 "$SY_TMP/$name.log")"
        sy_finish
    fi
}

# sy_proxy CONF PORT [LOGNAME]: starts switchyard -c CONF and waits for PORT.
# Sets SY_PROXY_PID. Returns 1 (after a not ok line) when it did not come up.
sy_proxy()
{
    local conf=$1 port=$2 log="$SY_TMP/${3:-proxy}.log"
    "$SY_BUILD/switchyard" -c "$conf" >>"$log" 2>&1 &
    SY_PROXY_PID=$!
    SY_PIDS+=("$SY_PROXY_PID")
    if ! sy_wait_port "$port" "$SY_PROXY_PID"; then
        sy_not_ok "switchyard -c $(basename "$conf") listens on 127.0.0.1:$port" \
            "$(tail -n 20 "$log")"
        return 1
    fi
    # With tests running side by side, the port may be answered by another
    # test's process for a moment after a restart: the control socket, made
    # before the listeners, says this one is up.
    local sock i
    sock=$(jq -r '.admin.socket // empty' "$conf" 2>/dev/null)
    for ((i = 0; i < 200 && ${#sock} > 0; i++)); do
        [[ -S "$sock" ]] && break
        sleep 0.05
    done
    return 0
}

# sy_redis PORT [ARGS...]: starts redis-server on 127.0.0.1:PORT with its
# files in $SY_TMP/redis-PORT (no snapshots; ARGS may add e.g. appendonly),
# DEBUG allowed from loopback, and waits until it answers PING. Sets
# SY_REDIS_PID.
sy_redis()
{
    local port=$1 dir="$SY_TMP/redis-$1" i
    shift
    mkdir -p "$dir"
    redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save '' \
        --enable-debug-command local "$@" >>"$dir/redis.log" 2>&1 &
    SY_REDIS_PID=$!
    SY_PIDS+=("$SY_REDIS_PID")
    for ((i = 0; i < 200; i++)); do
        [[ $(redis-cli -p "$port" ping 2>/dev/null) == PONG ]] && return 0
        kill -0 "$SY_REDIS_PID" 2>/dev/null || break
        sleep 0.05
    done
    sy_not_ok "redis-server listens on 127.0.0.1:$port" "$(tail -n 20 "$dir/redis.log")"
    sy_finish
}

# sy_config FILE KEY=VALUE...: writes a small proxy config.
#   port=P                 the listener, 127.0.0.1:P (required)
#   blue=NAME@PORT,...     the blue pool's servers (required)
#   green=NAME@PORT,...    the green pool's servers (required)
#   percent=N              routing.candidate_percent (default 0)
#   routing='"k": v, ...'  more members of "routing"
#   extra='"k": v, ...'    more top-level members (timeouts_ms, limits, ...)
# sy_backends: the usual pair: sy-backends blue-1 on $BLUE and green-1 on
# $GREEN, and a free port for the proxy in $PORT.
sy_backends()
{
    sy_port BLUE
    sy_port GREEN
    sy_port PORT
    sy_backend blue-1 "$BLUE"
    sy_backend green-1 "$GREEN"
}

# The access log goes to FILE's folder, access.log unless alog=NAME.
sy_config()
{
    local file=$1 port='' blue='' green='' percent=0 routing='' extra='' alog=access.log kv
    shift
    for kv in "$@"; do
        case $kv in
        port=*) port=${kv#port=} ;;
        blue=*) blue=${kv#blue=} ;;
        green=*) green=${kv#green=} ;;
        percent=*) percent=${kv#percent=} ;;
        routing=*) routing=${kv#routing=} ;;
        extra=*) extra=${kv#extra=} ;;
        alog=*) alog=${kv#alog=} ;;
        *)
            echo "sy_config: unknown argument $kv" >&2
            exit 2
            ;;
        esac
    done
    {
        echo '{'
        echo '  "workers": 2,'
        echo "  \"listen\": [{\"addr\": \"127.0.0.1:$port\"}],"
        echo '  "pools": {'
        echo "    \"blue\": $(sy_pool_json "$blue"),"
        echo "    \"green\": $(sy_pool_json "$green")"
        echo '  },'
        echo "  \"routing\": {\"stable\": \"blue\", \"candidate_percent\": $percent${routing:+, $routing}},"
        [[ -n "$extra" ]] && echo "  $extra,"
        echo "  \"access_log\": {\"path\": \"$(dirname "$file")/$alog\"}"
        echo '}'
    } >"$file"
}

# sy_pool_json NAME@PORT,...: the JSON of a pool.
sy_pool_json()
{
    local IFS=, s out='' sep=''
    for s in $1; do
        out+="$sep{\"name\": \"${s%@*}\", \"addr\": \"127.0.0.1:${s#*@}\"}"
        sep=', '
    done
    echo "{\"servers\": [$out]}"
}

# ---------------------------------------------------------------------------
# Clients

# curl that ignores ~/.curlrc and proxies and never waits without bound.
sy_curl()
{
    curl -q -sS --noproxy '*' --max-time "${SY_CURL_MAX_TIME:-30}" "$@"
}

# sy_fault PORT JSON: sets a sy-backend's fault mode (POST /__fault).
sy_fault()
{
    sy_curl -o /dev/null -X POST --data "$2" "http://127.0.0.1:$1/__fault"
}

# sy_need_ctl: sets CTL to switchyardctl; stops the script (not ok) unless
# it and jq (the replies are checked with it) are there.
sy_need_ctl()
{
    CTL=$SY_BUILD/switchyardctl
    if ! command -v jq >/dev/null || [[ ! -x "$CTL" ]]; then
        sy_not_ok "jq and switchyardctl are there" "jq: $(command -v jq); ctl: $CTL"
        sy_finish
    fi
}

# sy_ctl ARGS...: switchyardctl on the control socket $SOCK, with a timeout
# generous enough for a loaded CI machine. OUT and RC hold its output and
# exit status; a failed command is shown in the log.
sy_ctl()
{
    OUT=$("$CTL" -s "$SOCK" --timeout 20000 "$@" 2>&1)
    RC=$?
    ((RC == 0)) || echo "# switchyardctl $*: exit $RC: $OUT"
}

# sy_field JQ: one value of `switchyardctl --json status` on $SOCK.
sy_field()
{
    "$CTL" -s "$SOCK" --timeout 20000 --json status | jq -r "$1"
}

# sy_wait_field JQ VALUE SECONDS: until sy_field JQ says VALUE (polled 20
# times a second); says what it saw last when it gives up.
sy_wait_field()
{
    local i
    for ((i = 0; i < $3 * 20; i++)); do
        [[ "$(sy_field "$1")" == "$2" ]] && return 0
        sleep 0.05
    done
    echo "# $1 = $(sy_field "$1"), wanted $2"
    return 1
}

# sy_reload: SIGHUP to $PROXY, then waits (at most 5 s) for its log $LOG to
# tell the outcome. Prints "applied", "refused" or "no answer".
sy_reload()
{
    local applied refused i
    applied=$(grep -c 'applied$' "$LOG")
    refused=$(grep -c 'reload refused' "$LOG")
    kill -HUP "$PROXY"
    for ((i = 0; i < 100; i++)); do
        (($(grep -c 'applied$' "$LOG") > applied)) && echo applied && return
        (($(grep -c 'reload refused' "$LOG") > refused)) && echo refused && return
        sleep 0.05
    done
    echo "no answer"
}

# sy_wait_alog TEXT: until the access log $ALOG holds TEXT (it is written in
# batches); at most 3 s.
sy_wait_alog()
{
    local i
    for ((i = 0; i < 60; i++)); do
        grep -qF -- "$1" "$ALOG" 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

# sy_now_ms: monotonic enough for durations of a test.
sy_now_ms()
{
    echo $(($(date +%s%N) / 1000000))
}

# sy_json_num JSON KEY: the number after "KEY": in a flat JSON object.
sy_json_num()
{
    printf '%s' "$1" | grep -Eo "\"$2\"[[:space:]]*:[[:space:]]*-?[0-9]+" | grep -Eo -- '-?[0-9]+$' |
        head -n 1
}

# sy_json_str JSON KEY: the string value of "KEY" in a flat JSON object.
sy_json_str()
{
    printf '%s' "$1" | grep -Eo "\"$2\"[[:space:]]*:[[:space:]]*\"[^\"]*\"" |
        sed -E 's/.*:[[:space:]]*"([^"]*)"$/\1/' | head -n 1
}

# sy_raw PORT FILE SECONDS: sends stdin on one connection to 127.0.0.1:PORT,
# then reads what comes back into FILE until the server closes or SECONDS
# pass. Returns 0 when the server closed the connection, 1 on the timeout.
sy_raw()
{
    local port=$1 out=$2 secs=$3 rc fd
    exec {fd}<>"/dev/tcp/127.0.0.1/$port" || return 2
    cat >&"$fd"
    timeout "$secs" cat <&"$fd" >"$out"
    rc=$?
    exec {fd}>&-
    ((rc == 0)) && return 0
    return 1
}

# sy_pattern_sha N: sha256 of the first N bytes of sy-backend's pattern.
sy_pattern_sha()
{
    yes switchyard | head -c "$1" | sha256sum | cut -d' ' -f1
}
