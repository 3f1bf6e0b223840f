#!/usr/bin/env bash
# reuse.sh - upstream keep-alive: client connections come and go, but the
# proxy keeps its upstream connections and reuses them, so the backend sees
# a handful of connections for hundreds of requests.
. "$(dirname "$0")/lib.sh"
sy_init "$@"

CLIENTS=10
PER_CLIENT=50
TOTAL=$((CLIENTS * PER_CLIENT))

sy_backends
sy_config "$SY_TMP/reuse.json" port="$PORT" blue="blue-1@$BLUE" green="green-1@$GREEN" percent=0
sy_proxy "$SY_TMP/reuse.json" "$PORT" || sy_finish

stats()
{
    sy_curl "http://127.0.0.1:$BLUE/__stats"
}

before=$(stats)
c0=$(sy_json_num "$before" connections)
r0=$(sy_json_num "$before" requests)
if [[ -z "$c0" || -z "$r0" ]]; then
    sy_not_ok "blue's /__stats has connections and requests" "$before"
    sy_finish
fi

for ((i = 0; i < PER_CLIENT; i++)); do
    echo "url = \"http://127.0.0.1:$PORT/reuse/$i\""
    echo 'output = "/dev/null"'
done >"$SY_TMP/urls.curl"

# Sequential curl processes: each one is a new client connection.
ok=0
for ((c = 0; c < CLIENTS; c++)); do
    n=$(sy_curl -K "$SY_TMP/urls.curl" -w '%{http_code} %{num_connects}\n' | grep -c '^200 ')
    ok=$((ok + n))
done
sy_eq "all $TOTAL requests through the proxy answered 200" "$ok" "$TOTAL"

after=$(stats)
c1=$(sy_json_num "$after" connections)
r1=$(sy_json_num "$after" requests)
# The second /__stats request is one connection and one request of its own.
up_conns=$((c1 - c0 - 1))
up_reqs=$((r1 - r0 - 1))
sy_range "blue served at least $TOTAL requests" "$up_reqs" "$TOTAL" $((TOTAL + 10))
sy_range "blue saw at most $CLIENTS upstream connections for them" "$up_conns" 1 "$CLIENTS"

# The green backend is not the candidate at 0 %: nothing must reach it.
green=$(sy_curl "http://127.0.0.1:$GREEN/__stats")
sy_range "green served nothing at 0 % (at most this /__stats request)" \
    "$(sy_json_num "$green" requests)" 0 1

# Reused connections stay correct: a request right after a server-side close
# (here: the backend's close-delimited /__close) gets a fresh connection.
body=$(sy_curl "http://127.0.0.1:$PORT/__close")
sy_eq "a close-delimited answer arrives whole" "$body" "bye"
codes=$(for ((i = 0; i < 20; i++)); do
    echo "url = \"http://127.0.0.1:$PORT/after-close/$i\""
    echo 'output = "/dev/null"'
done | sy_curl -K - -w '%{http_code}\n' | grep -c '^200$')
sy_eq "20 requests after an upstream close all answered 200" "$codes" 20

sy_finish
