#!/usr/bin/env bash
# sticky.sh - sticky routing and the override header.
#   - 50 % with a sticky cookie: each cookie always lands on the same colour,
#     and the cookies spread over both colours.
#   - no cookie: the client address is the key, so one client stays put.
#   - the override header forces a pool, from trusted addresses only.
#   - without the cookie the proxy sets one that keeps the pool: replayed
#     from a cookie jar it always lands on the same backend, and through a
#     rollout raised with switchyardctl (10, 25, 50, 100 %) a client that
#     reached green stays on green while green's share follows the weight.
. "$(dirname "$0")/lib.sh"
sy_init "$@"

NCOOKIES=100
ROUNDS=5

sy_port BLUE
sy_port GREEN
sy_port P_STICKY
sy_port P_TRUST
sy_port P_UNTRUST
sy_port P_ROLL
sy_backend blue-1 "$BLUE"
sy_backend green-1 "$GREEN"

POOLS=(blue="blue-1@$BLUE" green="green-1@$GREEN")
sy_config "$SY_TMP/sticky.json" port="$P_STICKY" "${POOLS[@]}" percent=50 \
    routing='"sticky": {"cookie": "session"}' alog=access-sticky.log
sy_config "$SY_TMP/trust.json" port="$P_TRUST" "${POOLS[@]}" percent=0 \
    routing='"sticky": {"cookie": "session"},
             "override": {"header": "X-Switchyard-Pool", "allow_from": ["127.0.0.1/32"]}' \
    alog=access-trust.log
sy_config "$SY_TMP/untrust.json" port="$P_UNTRUST" "${POOLS[@]}" percent=0 \
    routing='"override": {"header": "X-Switchyard-Pool", "allow_from": ["10.0.0.0/8", "::1/128"]}' \
    alog=access-untrust.log

CTL=$SY_BUILD/switchyardctl
SOCK="$SY_TMP/ctl.sock"
sy_config "$SY_TMP/roll.json" port="$P_ROLL" "${POOLS[@]}" percent=0 \
    routing='"sticky": {"cookie": "sy", "client_addr": false}' \
    extra="\"admin\": {\"socket\": \"$SOCK\"}" alog=access-roll.log

sy_proxy "$SY_TMP/sticky.json" "$P_STICKY" proxy-sticky || sy_finish
sy_proxy "$SY_TMP/roll.json" "$P_ROLL" proxy-roll || sy_finish
sy_proxy "$SY_TMP/trust.json" "$P_TRUST" proxy-trust || sy_finish
sy_proxy "$SY_TMP/untrust.json" "$P_UNTRUST" proxy-untrust || sy_finish

# --- sticky cookie at 50 % ----------------------------------------------------
# Rounds interleave the cookies, so a cookie's requests are spread over the
# run rather than back to back. One curl process sends all of them.
for ((r = 0; r < ROUNDS; r++)); do
    for ((c = 0; c < NCOOKIES; c++)); do
        echo 'next'
        echo "url = \"http://127.0.0.1:$P_STICKY/sticky/$r/$c\""
        echo "header = \"Cookie: theme=dark; session=user-$c-$((c * 7919 % 1000)); lang=en\""
        echo 'output = "/dev/null"'
        echo "write-out = \"c$c %{http_code} %header{x-backend}\\n\""
    done
done | tail -n +2 >"$SY_TMP/cookies.curl"
out=$(SY_CURL_MAX_TIME=90 sy_curl -K "$SY_TMP/cookies.curl")

sy_eq "sticky: all $((NCOOKIES * ROUNDS)) requests answered 200" \
    "$(grep -c '^c[0-9]* 200 ' <<<"$out")" "$((NCOOKIES * ROUNDS))"
# Per cookie: how many requests, and how many distinct backends.
summary=$(awk '$2 == 200 { n[$1]++; if (!seen[$1 SUBSEP $3]++) k[$1]++; last[$1] = $3 }
               END {
                   for (c in n) {
                       if (n[c] != '"$ROUNDS"') short++
                       if (k[c] > 1) moved++
                       if (k[c] == 1 && last[c] == "green-1") green++
                   }
                   printf "%d %d %d\n", short, moved, green
               }' <<<"$out")
read -r short moved green <<<"$summary"
sy_eq "sticky: every cookie got $ROUNDS answers" "$short" 0
sy_eq "sticky: no cookie moved between backends" "$moved" 0
# Binomial(100, 0.5): 35..65 is +-3 sigma.
sy_range "sticky: cookies on green within 35..65 of $NCOOKIES" "$green" 35 65

# --- no cookie: the client address decides --------------------------------------
out=$(for ((i = 0; i < 40; i++)); do
    echo "url = \"http://127.0.0.1:$P_STICKY/nocookie/$i\""
    echo 'output = "/dev/null"'
done | sy_curl -K - -w '%{http_code} %header{x-backend}\n')
sy_eq "no cookie: all 40 requests answered 200" "$(grep -c '^200 ' <<<"$out")" 40
sy_eq "no cookie: one client address always reaches one backend" \
    "$(awk '$1 == 200 { print $2 }' <<<"$out" | sort -u | wc -l)" 1
# A cookie of another name is no sticky key either.
other=$(for ((i = 0; i < 20; i++)); do
    echo "url = \"http://127.0.0.1:$P_STICKY/othercookie/$i\""
    echo 'output = "/dev/null"'
done | sy_curl -K - -H 'Cookie: sessionid=abc; xsession=def' -w '%header{x-backend}\n' | sort -u)
sy_eq "no cookie: a look-alike cookie name falls back to the client address" \
    "$other" "$(awk '$1 == 200 { print $2 }' <<<"$out" | sort -u)"

# --- override header at 0 % --------------------------------------------------------
# count_backend PORT NAME CURL-ARGS...: 20 requests, prints how many reached NAME.
count_backend()
{
    local port=$1 name=$2
    shift 2
    for ((i = 0; i < 20; i++)); do
        echo "url = \"http://127.0.0.1:$port/override/$i\""
        echo 'output = "/dev/null"'
    done | sy_curl -K - "$@" -w '%{http_code} %header{x-backend}\n' | grep -c "^200 $name\$"
}

sy_eq "override: at 0 % no header reaches blue" "$(count_backend "$P_TRUST" blue-1)" 20
sy_eq "override: at 0 % a sticky cookie alone stays on blue" \
    "$(count_backend "$P_TRUST" blue-1 -H 'Cookie: session=qa-user')" 20
sy_eq "override: 'X-Switchyard-Pool: green' from 127.0.0.1 reaches green" \
    "$(count_backend "$P_TRUST" green-1 -H 'X-Switchyard-Pool: green')" 20
sy_eq "override: 'x-switchyard-pool: candidate' (any case) reaches green" \
    "$(count_backend "$P_TRUST" green-1 -H 'x-switchyard-pool: candidate')" 20
sy_eq "override: 'X-Switchyard-Pool: blue' reaches blue" \
    "$(count_backend "$P_TRUST" blue-1 -H 'X-Switchyard-Pool: blue')" 20
sy_eq "override: an unknown pool name is ignored" \
    "$(count_backend "$P_TRUST" blue-1 -H 'X-Switchyard-Pool: purple')" 20
sy_eq "override: ignored when allow_from does not include 127.0.0.1" \
    "$(count_backend "$P_UNTRUST" blue-1 -H 'X-Switchyard-Pool: green')" 20

# --- the proxy sets the cookie -----------------------------------------------------
COOKIE_RE='^Set-Cookie: session=[A-Za-z0-9_-]{16}; Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax'
heads()
{
    sy_curl -sS -o /dev/null -D - "$@" | tr -d '\r'
}
sy_match "set-cookie: a request without the cookie gets one" \
    "$(heads "http://127.0.0.1:$P_STICKY/setcookie/1")" "$COOKIE_RE\$"
sy_nomatch "set-cookie: not when the request has the cookie" \
    "$(heads -H 'Cookie: session=mine' "http://127.0.0.1:$P_STICKY/setcookie/2")" '^set-cookie:'
sy_nomatch "set-cookie: not when the override header forced the pool" \
    "$(heads -H 'X-Switchyard-Pool: green' "http://127.0.0.1:$P_TRUST/setcookie/3")" '^set-cookie:'

# With client_addr (the default) the address places the first request and
# the cookie set with it leads to the same pool. 20 fresh clients: their
# first answer is the address's backend, and so is their replay.
addr_backend=$(awk '$1 == 200 { print $2 }' <<<"$out" | sort -u)
first=$(for ((i = 0; i < 20; i++)); do
    echo "url = \"http://127.0.0.1:$P_STICKY/fresh/$i\""
    echo 'output = "/dev/null"'
done | sy_curl -K - -w '%header{x-backend} %header{set-cookie}\n')
sy_eq "client_addr: 20 fresh clients all reach the address's backend" \
    "$(awk '{ print $1 }' <<<"$first" | sort -u)" "$addr_backend"
tokens=$(grep -Eo 'session=[A-Za-z0-9_-]{16}' <<<"$first")
sy_eq "client_addr: each of them got a cookie" "$(wc -l <<<"$tokens")" 20
replay=$(while read -r t; do
    echo 'next'
    echo "url = \"http://127.0.0.1:$P_STICKY/fresh-replay\""
    echo "header = \"Cookie: $t\""
    echo 'output = "/dev/null"'
done <<<"$tokens" | tail -n +2 | sy_curl -K - -w '%header{x-backend}\n' | sort -u)
sy_eq "client_addr: with their cookie they stay on that backend" "$replay" "$addr_backend"

# --- a cookie jar keeps its pool -----------------------------------------------------
ctl()
{
    OUT=$("$CTL" -s "$SOCK" "$@" 2>&1)
    RC=$?
}
if [[ ! -x "$CTL" ]]; then
    sy_not_ok "switchyardctl is there" "$CTL"
    sy_finish
fi
ctl weight 50 --reason "sticky.sh: jar"
sy_eq "rollout: weight 50 accepted" "$RC" 0
jar="$SY_TMP/jar.txt"
out=$(for ((i = 0; i < 50; i++)); do
    echo "url = \"http://127.0.0.1:$P_ROLL/jar/$i\""
    echo 'output = "/dev/null"'
done | sy_curl -K - -b "$jar" -c "$jar" -w '%{http_code} %header{x-backend} [%header{set-cookie}]\n')
sy_eq "jar: all 50 requests answered 200" "$(grep -c '^200 ' <<<"$out")" 50
sy_eq "jar: one Set-Cookie, on the first answer only" \
    "$(grep -n 'sy=' <<<"$out" | cut -d: -f1 | tr '\n' ' ')" "1 "
sy_eq "jar: all 50 requests reached one backend" \
    "$(awk '{ print $2 }' <<<"$out" | sort -u | wc -l)" 1

# --- through a rollout ---------------------------------------------------------------
# Clients are placed at 10 %: each takes the cookie its first answer sets,
# then sends it at every later step. 2000 clients so that +-5 points is more
# than 4 sigma of the binomial spread (200 would be 1.4 sigma at 50 %).
NCLIENTS=2000
# step_requests FILE: one request per client, with its cookie when FILE has
# one ("-" lines send none); prints "CLIENT BACKEND SETCOOKIE" per answer.
step_requests()
{
    awk -v port="$P_ROLL" '{
            if (NR > 1) print "next"
            printf "url = \"http://127.0.0.1:%d/roll/%d\"\n", port, NR
            if ($1 != "-") printf "header = \"Cookie: %s\"\n", $1
            print "output = \"/dev/null\""
            printf "write-out = \"%d %%{http_code} %%header{x-backend} [%%header{set-cookie}]\\n\"\n", NR
        }' "$1" >"$SY_TMP/step.curl"
    SY_CURL_MAX_TIME=120 sy_curl -K "$SY_TMP/step.curl"
}
yes - | head -n "$NCLIENTS" >"$SY_TMP/cookies.txt"
bad=0
for pct in 10 25 50 100; do
    ctl weight "$pct" --reason "sticky.sh: step $pct"
    [[ $RC -eq 0 ]] || sy_not_ok "rollout: weight $pct accepted" "$OUT"
    step=$(step_requests "$SY_TMP/cookies.txt")
    sy_eq "rollout $pct %: all $NCLIENTS answered 200" "$(grep -c '^[0-9]* 200 ' <<<"$step")" \
        "$NCLIENTS"
    if [[ $pct == 10 ]]; then
        grep -Eo 'sy=[A-Za-z0-9_-]{16}' <<<"$step" >"$SY_TMP/cookies.txt"
        sy_eq "rollout: every client got a cookie at the first step" \
            "$(sort -u "$SY_TMP/cookies.txt" | wc -l)" "$NCLIENTS"
    else
        sy_eq "rollout $pct %: no cookie set again" "$(grep -c 'sy=' <<<"$step")" 0
        # Clients on green at the previous step that answered from blue now.
        back=$(awk 'NR == FNR { if ($3 == "green-1") g[$1] = 1; next }
                    g[$1] && $3 != "green-1" { n++ } END { print n + 0 }' \
            "$SY_TMP/prev.txt" - <<<"$step")
        sy_eq "rollout $pct %: no client went back from green" "$back" 0
    fi
    green=$(grep -c ' green-1 ' <<<"$step")
    sy_range "rollout $pct %: green's share in percent" $((green * 100 / NCLIENTS)) \
        $((pct - 5)) $((pct + 5 > 100 ? 100 : pct + 5))
    printf '%s\n' "$step" >"$SY_TMP/prev.txt"
done

sy_finish
