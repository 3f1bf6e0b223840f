#!/usr/bin/env bash
# sticky.sh - sticky routing and the override header.
#   - 50 % with a sticky cookie: each cookie always lands on the same colour,
#     and the cookies spread over both colours.
#   - no cookie: the client address is the key, so one client stays put.
#   - the override header forces a pool, from trusted addresses only.
. "$(dirname "$0")/lib.sh"
sy_init "$@"

NCOOKIES=100
ROUNDS=5

sy_port BLUE
sy_port GREEN
sy_port P_STICKY
sy_port P_TRUST
sy_port P_UNTRUST
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

sy_proxy "$SY_TMP/sticky.json" "$P_STICKY" proxy-sticky || sy_finish
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

sy_finish
