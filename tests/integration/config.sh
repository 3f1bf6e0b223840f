#!/usr/bin/env bash
# config.sh - the command line: `switchyard -t -c FILE` checks a config and
# names FILE:LINE:COL: key.path for each problem; --help prints the usage.
. "$(dirname "$0")/lib.sh"
sy_init "$@"

SY=$SY_BUILD/switchyard

# --- a good config ----------------------------------------------------------------
"$SY" -t -c "$SY_SRC/conf/examples/demo.json" >"$SY_TMP/demo.out" 2>"$SY_TMP/demo.err"
sy_eq "-t on conf/examples/demo.json exits 0" "$?" 0
sy_eq "-t on demo.json reports no error" "$(grep -c ':[0-9]*:[0-9]*: ' "$SY_TMP/demo.err")" 0

# The long options say the same.
"$SY" --test --config "$SY_SRC/conf/examples/demo.json" >/dev/null 2>&1
sy_eq "--test --config on demo.json exits 0" "$?" 0

# --- a config with two mistakes --------------------------------------------------------
BAD="$SY_TMP/bad.json"
cat >"$BAD" <<'JSON'
{
  "workers": 2,
  "listen": [{"addr": "127.0.0.1:99999"}],
  "pools": {
    "blue":  {"servers": [{"name": "blue-1", "addr": "127.0.0.1:9001"}]},
    "green": {"servers": [{"name": "green-1", "addr": "127.0.0.1:9002"}]}
  },
  "routing": {"stable": "blue", "candidate_percnt": 10}
}
JSON

# where TEXT: "LINE:COL" of the first occurrence of TEXT in the bad file
# (1-based; a column counts bytes).
where()
{
    awk -v t="$1" 'i = index($0, t) { print NR ":" i; exit }' "$BAD"
}

"$SY" -t -c "$BAD" >"$SY_TMP/bad.out" 2>"$SY_TMP/bad.err"
sy_eq "-t on a config with an unknown key and a bad port exits 1" "$?" 1
err=$(cat "$SY_TMP/bad.err")
# An unknown key is reported where the key is, a bad value where the value is.
key_at=$(where '"candidate_percnt"')
port_at=$(where '"127.0.0.1:99999"')
sy_match "unknown key: $BAD:$key_at: routing.candidate_percnt: ..." "$err" \
    "^$BAD:$key_at: routing\\.candidate_percnt: .*unknown key"
sy_match "bad port: $BAD:$port_at: listen[0].addr: ..." "$err" \
    "^$BAD:$port_at: listen\\[0\\]\\.addr: .*port"
sy_eq "both problems are reported, nothing else" "$(grep -c "^$BAD:[0-9]*:[0-9]*: " <<<"$err")" 2
sy_eq "a bad config prints nothing on stdout" "$(cat "$SY_TMP/bad.out")" ""

# A file that is no JSON: still FILE:LINE:COL.
printf '{\n  "workers": 2,\n  "listen": [\n' >"$SY_TMP/broken.json"
"$SY" -t -c "$SY_TMP/broken.json" >/dev/null 2>"$SY_TMP/broken.err"
sy_eq "-t on truncated JSON exits 1" "$?" 1
sy_match "truncated JSON: the error names the file, line and column" \
    "$(cat "$SY_TMP/broken.err")" "^$SY_TMP/broken\\.json:[0-9]+:[0-9]+: "

"$SY" -t -c "$SY_TMP/does-not-exist.json" >/dev/null 2>"$SY_TMP/missing.err"
sy_eq "-t on a missing file exits 1" "$?" 1
sy_match "missing file: the error names the file" "$(cat "$SY_TMP/missing.err")" \
    "does-not-exist\\.json"

# The proxy refuses to start on a bad config, and says why.
"$SY" -c "$BAD" >/dev/null 2>"$SY_TMP/start.err" &
pid=$!
SY_PIDS+=("$pid")
for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
done
if kill -0 "$pid" 2>/dev/null; then
    sy_not_ok "switchyard -c on a bad config exits" "still running after 5 s"
    sy_stop "$pid" 1
else
    wait "$pid"
    sy_eq "switchyard -c on a bad config exits 1" "$?" 1
    sy_forget "$pid"
fi
sy_match "switchyard -c on a bad config names the problems" "$(cat "$SY_TMP/start.err")" \
    "routing\\.candidate_percnt"

# A second switchyard on an address already served refuses to start, rather
# than silently sharing the port (SO_REUSEPORT) and half its traffic.
sy_port P1
sy_port P2
sy_port P3
sy_config "$SY_TMP/first.json" port="$P1" blue="blue-1@$P2" green="green-1@$P3"
sy_proxy "$SY_TMP/first.json" "$P1" first || sy_finish
timeout 10 "$SY" -c "$SY_TMP/first.json" >/dev/null 2>"$SY_TMP/second.err"
sy_eq "a second switchyard on the same address exits 1" "$?" 1
sy_match "... and says the address is in use" "$(cat "$SY_TMP/second.err")" \
    "listen 127\\.0\\.0\\.1:$P1: Address already in use"
sy_stop "$SY_PROXY_PID" 10

# Several listen entries: every address serves (and ::1 too when the
# machine has IPv6 loopback).
sy_port P4
sy_port P5
sy_backend blue-1 "$P2"
sy_backend green-1 "$P3"
sy_config "$SY_TMP/two.json" port="$P4" blue="blue-1@$P2" green="green-1@$P3"
six=""
if grep -qs '^0\{31\}1 ' /proc/net/if_inet6; then
    six=", {\"addr\": \"[::1]:$P5\"}"
fi
sed -i "s|\"listen\": \[{\"addr\": \"127.0.0.1:$P4\"}\]|\"listen\": [{\"addr\": \"127.0.0.1:$P4\"}, {\"addr\": \"127.0.0.2:$P5\"}$six]|" \
    "$SY_TMP/two.json"
sy_proxy "$SY_TMP/two.json" "$P4" two || sy_finish
sy_eq "two listen entries: the first serves" \
    "$(sy_curl -o /dev/null -w '%{http_code}' "http://127.0.0.1:$P4/")" 200
sy_eq "two listen entries: the second serves" \
    "$(sy_curl -o /dev/null -w '%{http_code}' "http://127.0.0.2:$P5/")" 200
if [[ -n "$six" ]]; then
    sy_eq "an IPv6 listen entry serves" \
        "$(sy_curl -g -o /dev/null -w '%{http_code}' "http://[::1]:$P5/")" 200
fi
sy_stop "$SY_PROXY_PID" 10

# --- usage ---------------------------------------------------------------------------
help=$("$SY" --help 2>&1)
sy_eq "--help exits 0" "$?" 0
sy_match "--help prints the usage" "$help" '^usage: switchyard'
sy_match "--help mentions -t" "$help" '-t, --test'
"$SY" -h >/dev/null 2>&1
sy_eq "-h exits 0" "$?" 0
"$SY" --no-such-option >/dev/null 2>"$SY_TMP/badopt.err"
rc=$?
if ((rc != 0)); then
    sy_ok "an unknown option exits non-zero ($rc)"
else
    sy_not_ok "an unknown option exits non-zero"
fi
sy_match "an unknown option prints the usage on stderr" "$(cat "$SY_TMP/badopt.err")" \
    'usage: switchyard'

sy_finish
