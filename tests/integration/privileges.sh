#!/usr/bin/env bash
# privileges.sh - "user"/"group": switchyard binds as root, then serves as
# that user:
#   - the process and every one of its threads run as nobody:nogroup, with no
#     supplementary group left (/proc/PID/task/*/status);
#   - it serves, switchyardctl still steers through the root-owned control
#     socket, and a weight change is saved in a state folder nobody owns;
#   - what it creates gets its own mode whatever the umask: state file 0600,
#     audit and access logs 0640, the socket admin.socket_mode;
#   - a reload rereads the config as nobody; changing "user" is refused;
#   - a state folder nobody cannot write to stops the start-up, and so does
#     a process that is not root asked to become another user;
#   - an unknown user or group is a config error naming the key.
# Not root: the cases that need the drop are reported as skipped.
. "$(dirname "$0")/lib.sh"
sy_init "$@"
sy_need_ctl

DROP_USER=nobody
DROP_GROUP=nogroup
getent group "$DROP_GROUP" >/dev/null || DROP_GROUP=nobody
ME=$(id -un)

# skip DESC: a check that needs root.
skip()
{
    echo "ok - $1 # skip not root"
}

# ids_of STATUS_FILE: "Uid Gid Groups" lines of a /proc status file, one line.
ids_of()
{
    awk '$1 == "Uid:" || $1 == "Gid:" || $1 == "Groups:" { $1 = ""; printf "%s;", $0 }' "$1"
}

# config FILE PORT EXTRA: a config whose files live in $RUN.
config()
{
    sy_config "$1" port="$2" blue="blue-1@$BLUE" green="green-1@$GREEN" alog="access-$2.log" \
        extra="$3"
    chmod 0644 "$1"
}

# start_error CONF LOG [PREFIX...]: runs switchyard -c CONF in the
# foreground (at most 20 s), expecting it to refuse to start. Prints its
# exit status.
start_error()
{
    local conf=$1 log=$2
    shift 2
    timeout 20 "$@" "$SY_BUILD/switchyard" -c "$conf" >"$log" 2>&1
    echo $?
}

sy_backends

# --- config errors, root or not ---------------------------------------------------------
BAD="$SY_TMP/bad.json"
sy_config "$BAD" port="$PORT" blue="blue-1@$BLUE" green="green-1@$GREEN" \
    extra='"user": "no-such-user-sy"'
out=$("$SY_BUILD/switchyard" -t -c "$BAD" 2>&1)
sy_eq "an unknown user: switchyard -t exits 1" "$?" 1
sy_match "an unknown user: a config error naming the key and its position" "$out" \
    "^$BAD:[0-9]+:[0-9]+: user: no such user \"no-such-user-sy\"$"
sy_config "$BAD" port="$PORT" blue="blue-1@$BLUE" green="green-1@$GREEN" \
    extra="\"user\": \"$ME\", \"group\": \"no-such-group-sy\""
out=$("$SY_BUILD/switchyard" -t -c "$BAD" 2>&1)
sy_match "an unknown group: a config error naming the key and its position" "$out" \
    "^$BAD:[0-9]+:[0-9]+: group: no such group \"no-such-group-sy\"$"

if ((EUID != 0)); then
    # --- not root: only the ids already held ----------------------------------------------
    config "$SY_TMP/other.json" "$PORT" '"user": "root"'
    rc=$(start_error "$SY_TMP/other.json" "$SY_TMP/other.log")
    sy_eq "not root, user root: switchyard exits 1" "$rc" 1
    sy_match "not root, user root: the log says only root can change user" \
        "$(cat "$SY_TMP/other.log")" 'error: user root \(uid 0, gid 0\): .*only root can change user'
    for d in "runs as nobody, every thread too" "serves as nobody" \
        "switchyardctl steers as root through the root-owned socket" \
        "a weight change is saved in nobody's state folder" "file modes under umask 000" \
        "a reload rereads the config as nobody" "a change of user at reload is refused" \
        "a state folder nobody cannot write to stops the start-up" \
        "a TLS key nobody cannot read: a warning, reloads refused"; do
        skip "$d"
    done
    sy_finish
fi

# --- root: drop to nobody ---------------------------------------------------------------------
# nobody must reach the config (reloads reread it) and own the state folder.
chmod 0711 "$SY_TMP"
RUN="$SY_TMP/run"
mkdir -m 0700 "$RUN"
chown "$DROP_USER:$DROP_GROUP" "$RUN"
SOCK="$SY_TMP/ctl.sock"
CONF="$SY_TMP/drop.json"
config "$CONF" "$PORT" "\"user\": \"$DROP_USER\", \"group\": \"$DROP_GROUP\",
  \"admin\": {\"socket\": \"$SOCK\"},
  \"state\": {\"file\": \"$RUN/state.json\", \"audit_log\": \"$RUN/audit.jsonl\"}"
want_uid=$(id -u "$DROP_USER")
want_gid=$(getent group "$DROP_GROUP" | cut -d: -f3)

# umask 000: every mode checked below is the one switchyard asks for.
old_umask=$(umask)
umask 000
sy_proxy "$CONF" "$PORT" || sy_finish
umask "$old_umask"
LOG="$SY_TMP/proxy.log"
sy_match "the drop is logged" "$(cat "$LOG")" \
    "info: privileges dropped: now user $DROP_USER \\(uid $want_uid\\), gid $want_gid \\(group $DROP_GROUP\\)"

want_ids=" $want_uid $want_uid $want_uid $want_uid; $want_gid $want_gid $want_gid $want_gid; $want_gid;"
ntasks=0
bad_tasks=()
for st in /proc/"$SY_PROXY_PID"/task/*/status; do
    ntasks=$((ntasks + 1))
    [[ "$(ids_of "$st")" == "$want_ids" ]] || bad_tasks+=("$st: $(ids_of "$st")")
done
sy_eq "the process runs as $DROP_USER:$DROP_GROUP (real, effective, saved, fs; groups)" \
    "$(ids_of /proc/"$SY_PROXY_PID"/status)" "$want_ids"
sy_range "it has the control thread and 2 workers" "$ntasks" 3 64
sy_eq "every thread runs as $DROP_USER:$DROP_GROUP" "${bad_tasks[*]:-}" ""

codes=$(for ((i = 0; i < 20; i++)); do
    echo "url = \"http://127.0.0.1:$PORT/p/$i\""
    echo 'output = "/dev/null"'
done | sy_curl -K - -w '%{http_code}\n' | sort | uniq -c | awk '{print $1 "x" $2}')
sy_eq "serves as $DROP_USER: 20 requests, 20 answers 200" "$codes" "20x200"

out=$("$CTL" -s "$SOCK" weight 30 2>&1)
sy_eq "switchyardctl steers as root through the root-owned socket (weight 30)" "$?" 0
sy_eq "the weight change is saved in $DROP_USER's state folder" \
    "$(jq -r .candidate_bp "$RUN/state.json" 2>/dev/null)" 3000
sy_eq "switchyardctl status still works" "$("$CTL" -s "$SOCK" --json status | jq -r .state.candidate_percent)" \
    30

sy_eq "the state file: $DROP_USER's, mode 0600" "$(stat -c '%U %a' "$RUN/state.json")" \
    "$DROP_USER 600"
sy_eq "the audit log: mode 0640" "$(stat -c '%a' "$RUN/audit.jsonl")" 640
sy_eq "the access log: mode 0640" "$(stat -c '%a' "$SY_TMP/access-$PORT.log")" 640
sy_eq "the control socket: root's, mode admin.socket_mode (0660)" "$(stat -c '%U %a' "$SOCK")" \
    "root 660"
sy_match "an access log $DROP_USER cannot reopen is a start-up warning" "$(cat "$LOG")" \
    "warn: access_log.path $SY_TMP/access-$PORT.log: user $DROP_USER cannot write to it"

out=$("$CTL" -s "$SOCK" reload 2>&1)
sy_eq "a reload rereads the config as $DROP_USER" "$?" 0
sed -i "s/\"user\": \"$DROP_USER\"/\"user\": \"root\"/" "$CONF"
out=$("$CTL" -s "$SOCK" reload 2>&1)
sy_match "a change of user at reload is refused, naming the key" "$out" \
    "user: changed from $DROP_USER to root: needs a restart"
sy_stop "$SY_PROXY_PID" 10
sy_eq "switchyard exits 0 on SIGTERM" "$SY_RC" 0

# --- a state folder nobody cannot write to --------------------------------------------
sy_port PORT2
mkdir -m 0755 "$SY_TMP/rootonly"
config "$SY_TMP/rootonly.json" "$PORT2" "\"user\": \"$DROP_USER\", \"group\": \"$DROP_GROUP\",
  \"state\": {\"file\": \"$SY_TMP/rootonly/state.json\"}"
rc=$(start_error "$SY_TMP/rootonly.json" "$SY_TMP/rootonly.log")
sy_eq "a state folder $DROP_USER cannot write to: switchyard exits 1" "$rc" 1
sy_match "a state folder $DROP_USER cannot write to: the log names it" \
    "$(cat "$SY_TMP/rootonly.log")" \
    "error: state.file $SY_TMP/rootonly/state.json: user $DROP_USER cannot write to its folder"

# --- a TLS key only root can read ------------------------------------------------------
# Read at start (as root), read again by every reload (as nobody): a
# warning at start, each reload refused, the certificate loaded stays.
sy_port PORT3
if openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj '/CN=localhost' -keyout "$RUN/key.pem" -out "$RUN/cert.pem" >"$SY_TMP/pki.out" 2>&1; then
    chmod 0600 "$RUN/key.pem"
    chmod 0644 "$RUN/cert.pem"
    SOCK="$SY_TMP/ctl-tls.sock"
    config "$SY_TMP/tls.json.plain" "$PORT3" "\"user\": \"$DROP_USER\", \"group\": \"$DROP_GROUP\",
  \"admin\": {\"socket\": \"$SOCK\"}"
    jq --arg c "$RUN/cert.pem" --arg k "$RUN/key.pem" '.listen[0].tls = {cert: $c, key: $k}' \
        "$SY_TMP/tls.json.plain" >"$SY_TMP/tls.json"
    chmod 0644 "$SY_TMP/tls.json"
    sy_proxy "$SY_TMP/tls.json" "$PORT3" proxytls || sy_finish
    sy_match "a TLS key $DROP_USER cannot read: a start-up warning" \
        "$(cat "$SY_TMP/proxytls.log")" \
        "warn: listen tls.key $RUN/key.pem: user $DROP_USER cannot read it .*reloads will fail"
    out=$("$CTL" -s "$SOCK" reload 2>&1)
    sy_eq "... and a reload is refused" "$?" 1
    sy_match "... naming the key" "$out" "listen\[0\]\.tls\.key: cannot read $RUN/key.pem"
    sy_eq "... while TLS is still served" \
        "$(sy_curl -k -o /dev/null -w '%{http_code}' "https://127.0.0.1:$PORT3/tls")" 200
    chgrp "$DROP_GROUP" "$RUN/key.pem"
    chmod 0640 "$RUN/key.pem"
    out=$("$CTL" -s "$SOCK" reload 2>&1)
    sy_eq "the key given to $DROP_USER's group: a reload works" "$?" 0
else
    sy_not_ok "a test certificate is made" "$(cat "$SY_TMP/pki.out")"
fi

# --- not root, asked to become root -----------------------------------------------------
# In $RUN: nobody reads the config and creates the access log there.
config "$RUN/other.json" "$PORT2" '"user": "root"'
rc=$(start_error "$RUN/other.json" "$SY_TMP/other.log" \
    setpriv --reuid="$want_uid" --regid="$want_gid" --clear-groups)
sy_eq "run as $DROP_USER with user root: switchyard exits 1" "$rc" 1
sy_match "run as $DROP_USER with user root: the log says only root can change user" \
    "$(cat "$SY_TMP/other.log")" 'error: user root \(uid 0, gid 0\): .*only root can change user'

sy_finish
