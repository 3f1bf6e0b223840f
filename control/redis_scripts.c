/* redis_scripts.c - the fleet's Lua scripts, their arguments and replies. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/redis_scripts.h"

/* Numbers reach the scripts as decimal text: "0" or no leading zero, at most
 * 15 digits (REDIS_GENERATION_MAX), so tonumber() is exact and the stored
 * text is the one canonical spelling that string comparison can rely on. */
const char redis_script_state_cas[] =
    "local function uint(s)\n"
    "  if s == '0' or (#s <= 15 and string.match(s, '^[1-9]%d*$')) then\n"
    "    return tonumber(s)\n"
    "  end\n"
    "  return nil\n"
    "end\n"
    "if #KEYS ~= 3 or #ARGV ~= 8 then\n"
    "  return redis.error_reply('ERR switchyard state_cas: expects 3 keys and 8 arguments')\n"
    "end\n"
    "local expect, gen = uint(ARGV[1]), uint(ARGV[2])\n"
    "local updated, maxlen = uint(ARGV[7]), uint(ARGV[8])\n"
    "if not (expect and gen and updated and maxlen) then\n"
    "  return redis.error_reply('ERR switchyard state_cas: expect, new_generation, updated_ms '\n"
    "    .. 'and events_maxlen must be decimal integers below 10^15')\n"
    "end\n"
    "local seed = ARGV[3]\n"
    "if (seed ~= '0' and seed ~= '1') or #ARGV[4] == 0 or #ARGV[5] == 0 or #ARGV[5] > 63 then\n"
    "  return redis.error_reply('ERR switchyard state_cas: seed must be 0 or 1, the state '\n"
    "    .. 'not empty, the instance 1 to 63 bytes')\n"
    "end\n"
    "local stored = redis.call('HGET', KEYS[1], 'generation')\n"
    "local ok\n"
    "if stored then\n"
    "  ok = seed == '0' and stored == ARGV[1] and gen > expect\n"
    "else\n"
    "  ok = seed == '1' or (expect == 0 and gen >= 1)\n"
    "end\n"
    "if not ok then\n"
    "  local h = redis.call('HMGET', KEYS[1], 'generation', 'state', 'instance')\n"
    "  return {0, h[1] or '0', h[2], h[3]}\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'generation', ARGV[2], 'state', ARGV[4],\n"
    "           'instance', ARGV[5], 'updated_ms', ARGV[7])\n"
    "redis.call('PUBLISH', KEYS[2], ARGV[2] .. ' ' .. ARGV[5])\n"
    "if #ARGV[6] > 0 then\n"
    "  if maxlen > 0 then\n"
    "    redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[8], '*',\n"
    "               'event', ARGV[6], 'instance', ARGV[5])\n"
    "  else\n"
    "    redis.call('XADD', KEYS[3], '*', 'event', ARGV[6], 'instance', ARGV[5])\n"
    "  end\n"
    "end\n"
    "return {1, ARGV[2]}\n";

const char redis_script_lease[] =
    "if #KEYS ~= 1 or #ARGV ~= 2 then\n"
    "  return redis.error_reply('ERR switchyard lease: expects 1 key and 2 arguments')\n"
    "end\n"
    "local me, ms = ARGV[1], ARGV[2]\n"
    "if #me == 0 or #me > 63 or #ms > 10 or not string.match(ms, '^[1-9]%d*$') then\n"
    "  return redis.error_reply('ERR switchyard lease: the instance must be 1 to 63 bytes, '\n"
    "    .. 'lease_ms a positive decimal integer of at most 10 digits')\n"
    "end\n"
    "local holder = redis.call('GET', KEYS[1])\n"
    "if holder == me then\n"
    "  redis.call('PEXPIRE', KEYS[1], ms)\n"
    "  return {1, me, tonumber(ms)}\n"
    "end\n"
    "if not holder then\n"
    "  redis.call('SET', KEYS[1], me, 'PX', ms)\n"
    "  return {1, me, tonumber(ms)}\n"
    "end\n"
    "return {0, holder, redis.call('PTTL', KEYS[1])}\n";

const char redis_script_release[] =
    "if #KEYS ~= 1 or #ARGV ~= 1 then\n"
    "  return redis.error_reply('ERR switchyard release: expects 1 key and 1 argument')\n"
    "end\n"
    "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
    "  return redis.call('DEL', KEYS[1])\n"
    "end\n"
    "return 0\n";

static int fail(char *why, size_t why_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *why, size_t why_len, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, why_len, fmt, ap);
    va_end(ap);
    return -1;
}

int redis_key(char *out, const char *ns, const char *suffix)
{
    int n;

    if (ns == NULL || ns[0] == '\0')
        return -1;
    n = snprintf(out, REDIS_KEY_MAX, "%s:%s", ns, suffix);
    return n < 0 || n >= REDIS_KEY_MAX ? -1 : 0;
}

static bool instance_ok(const char *instance)
{
    return instance != NULL && instance[0] != '\0' && strlen(instance) < REDIS_INSTANCE_MAX;
}

int redis_signals_key(char *out, const char *ns, const char *instance)
{
    char suffix[REDIS_KEY_MAX];

    if (!instance_ok(instance))
        return -1;
    snprintf(suffix, sizeof(suffix), "signals:%s", instance);
    return redis_key(out, ns, suffix);
}

/* --- argv building ------------------------------------------------------ */

static void argv_start(struct redis_argv *o, const char *script)
{
    o->argc = 0;
    o->used = 0;
    o->argv[o->argc] = "EVAL";
    o->len[o->argc++] = 4;
    o->argv[o->argc] = script;
    o->len[o->argc++] = strlen(script);
}

/* Appends a borrowed argument. */
static int argv_push(struct redis_argv *o, const char *s, size_t len)
{
    if (o->argc >= REDIS_ARGV_MAX)
        return -1;
    o->argv[o->argc] = s;
    o->len[o->argc++] = len;
    return 0;
}

/* Formats an argument into scratch and appends it. */
static int argv_printf(struct redis_argv *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int argv_printf(struct redis_argv *o, const char *fmt, ...)
{
    size_t room = sizeof(o->scratch) - o->used;
    char *at = o->scratch + o->used;
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(at, room, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= room || argv_push(o, at, (size_t)n) < 0)
        return -1;
    o->used += (size_t)n + 1;
    return 0;
}

static int argv_key(struct redis_argv *o, const char *ns, const char *suffix)
{
    char key[REDIS_KEY_MAX];

    if (redis_key(key, ns, suffix) < 0)
        return -1;
    return argv_printf(o, "%s", key);
}

static bool cas_args_ok(const struct redis_cas_args *a)
{
    return a->state_json != NULL && a->state_json[0] != '\0' && instance_ok(a->instance) &&
           a->expect <= REDIS_GENERATION_MAX && a->new_generation <= REDIS_GENERATION_MAX &&
           a->updated_ms >= 0 && (uint64_t)a->updated_ms <= REDIS_GENERATION_MAX;
}

int redis_cas_argv(struct redis_argv *out, const struct redis_cas_args *a)
{
    const char *event = a->event_json != NULL ? a->event_json : "";
    int rc = 0;

    if (!cas_args_ok(a))
        return -1;
    argv_start(out, redis_script_state_cas);
    rc |= argv_printf(out, "3");
    rc |= argv_key(out, a->ns, "state");
    rc |= argv_key(out, a->ns, "changes");
    rc |= argv_key(out, a->ns, "events");
    rc |= argv_printf(out, "%" PRIu64, a->expect);
    rc |= argv_printf(out, "%" PRIu64, a->new_generation);
    rc |= argv_printf(out, "%d", a->seed ? 1 : 0);
    rc |= argv_push(out, a->state_json, strlen(a->state_json));
    rc |= argv_push(out, a->instance, strlen(a->instance));
    rc |= argv_push(out, event, strlen(event));
    rc |= argv_printf(out, "%" PRId64, a->updated_ms);
    rc |= argv_printf(out, "%" PRIu32, a->events_maxlen);
    return rc < 0 ? -1 : out->argc;
}

int redis_lease_argv(struct redis_argv *out, const char *ns, const char *instance,
                     uint32_t lease_ms)
{
    int rc = 0;

    if (!instance_ok(instance) || lease_ms == 0)
        return -1;
    argv_start(out, redis_script_lease);
    rc |= argv_printf(out, "1");
    rc |= argv_key(out, ns, "leader");
    rc |= argv_push(out, instance, strlen(instance));
    rc |= argv_printf(out, "%" PRIu32, lease_ms);
    return rc < 0 ? -1 : out->argc;
}

int redis_release_argv(struct redis_argv *out, const char *ns, const char *instance)
{
    int rc = 0;

    if (!instance_ok(instance))
        return -1;
    argv_start(out, redis_script_release);
    rc |= argv_printf(out, "1");
    rc |= argv_key(out, ns, "leader");
    rc |= argv_push(out, instance, strlen(instance));
    return rc < 0 ? -1 : out->argc;
}

/* --- reply reading ------------------------------------------------------ */

/* 0 when r is a usable reply; else -1 with why (no reply, an error reply). */
static int reply_check(const redisReply *r, const char *what, char *why, size_t why_len)
{
    if (r == NULL)
        return fail(why, why_len, "%s: no reply", what);
    if (r->type == REDIS_REPLY_ERROR)
        return fail(why, why_len, "%s: redis error: %.*s", what, (int)r->len, r->str);
    return 0;
}

static bool is_array(const redisReply *r, size_t elements)
{
    return r->type == REDIS_REPLY_ARRAY && r->elements == elements;
}

static bool is_string(const redisReply *r)
{
    return r->type == REDIS_REPLY_STRING;
}

/* Reads canonical decimal text ("0" or no leading zero) not above max. */
static int parse_decimal(const char *s, size_t len, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;

    if (len == 0 || (len > 1 && s[0] == '0'))
        return -1;
    for (size_t i = 0; i < len; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (d > 9 || d > max || v > (max - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

static int reply_generation(const redisReply *r, uint64_t *out)
{
    if (!is_string(r))
        return -1;
    return parse_decimal(r->str, r->len, REDIS_GENERATION_MAX, out);
}

/* Copies a string or nil reply into dst ("" for nil); -1 when it is neither
 * or does not fit. */
static int reply_copy(const redisReply *r, char *dst, size_t size)
{
    if (r->type == REDIS_REPLY_NIL) {
        dst[0] = '\0';
        return 0;
    }
    if (!is_string(r) || r->len >= size || memchr(r->str, '\0', r->len) != NULL)
        return -1;
    memcpy(dst, r->str, r->len);
    dst[r->len] = '\0';
    return 0;
}

/* Reads a refusal, {0, generation, state or nil, instance or nil}. */
static int cas_refused(const redisReply *r, struct redis_cas_result *out, char *why, size_t why_len)
{
    const redisReply *state = r->element[2];

    if (reply_generation(r->element[1], &out->stored_generation) < 0)
        return fail(why, why_len, "state_cas: refused, but the stored generation is unreadable");
    if (reply_copy(r->element[3], out->stored_instance, sizeof(out->stored_instance)) < 0)
        return fail(why, why_len, "state_cas: refused, but the stored instance is unreadable");
    if (state->type == REDIS_REPLY_NIL)
        return 0;
    if (!is_string(state))
        return fail(why, why_len, "state_cas: refused, but the stored state is not a string");
    out->stored_state = strndup(state->str, state->len);
    if (out->stored_state == NULL)
        return fail(why, why_len, "state_cas: out of memory");
    return 0;
}

int redis_cas_parse(const redisReply *r, struct redis_cas_result *out, char *why, size_t why_len)
{
    memset(out, 0, sizeof(*out));
    if (reply_check(r, "state_cas", why, why_len) < 0)
        return -1;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
        r->element[0]->type != REDIS_REPLY_INTEGER)
        return fail(why, why_len, "state_cas: unexpected reply (type %d)", r->type);
    if (r->element[0]->integer == 0) {
        if (r->elements != 4)
            return fail(why, why_len, "state_cas: a refusal of %zu elements", r->elements);
        if (cas_refused(r, out, why, why_len) < 0) {
            redis_cas_result_clear(out);
            return -1;
        }
        return 0;
    }
    if (r->element[0]->integer != 1 || !is_array(r, 2) ||
        reply_generation(r->element[1], &out->stored_generation) < 0)
        return fail(why, why_len, "state_cas: unexpected reply to an applied change");
    out->applied = true;
    return 0;
}

void redis_cas_result_clear(struct redis_cas_result *r)
{
    if (r == NULL)
        return;
    free(r->stored_state);
    memset(r, 0, sizeof(*r));
}

int redis_lease_parse(const redisReply *r, struct redis_lease_result *out, char *why,
                      size_t why_len)
{
    const redisReply *held, *pttl;

    memset(out, 0, sizeof(*out));
    if (reply_check(r, "lease", why, why_len) < 0)
        return -1;
    if (!is_array(r, 3))
        return fail(why, why_len, "lease: unexpected reply (type %d)", r->type);
    held = r->element[0];
    pttl = r->element[2];
    if (held->type != REDIS_REPLY_INTEGER || (held->integer != 0 && held->integer != 1) ||
        pttl->type != REDIS_REPLY_INTEGER || !is_string(r->element[1]) ||
        reply_copy(r->element[1], out->holder, sizeof(out->holder)) < 0)
        return fail(why, why_len, "lease: unexpected reply elements");
    out->held = held->integer == 1;
    out->pttl_ms = pttl->integer;
    return 0;
}

int redis_release_parse(const redisReply *r, bool *released, char *why, size_t why_len)
{
    if (reply_check(r, "release", why, why_len) < 0)
        return -1;
    if (r->type != REDIS_REPLY_INTEGER || (r->integer != 0 && r->integer != 1))
        return fail(why, why_len, "release: unexpected reply (type %d)", r->type);
    *released = r->integer == 1;
    return 0;
}

/* --- the state hash ----------------------------------------------------- */

/* The value of field name in an HGETALL reply (pairs of strings), or NULL. */
static const redisReply *hash_field(const redisReply *h, const char *name)
{
    size_t n = strlen(name);

    for (size_t i = 0; i + 1 < h->elements; i += 2) {
        const redisReply *k = h->element[i];
        if (is_string(k) && k->len == n && memcmp(k->str, name, n) == 0)
            return is_string(h->element[i + 1]) ? h->element[i + 1] : NULL;
    }
    return NULL;
}

/* Parses the state field's JSON into *out; -1 with why. */
static int state_field_parse(const redisReply *field, struct state *out, char *why, size_t why_len)
{
    char err[200];
    json_error_t jerr;
    json_t *j = json_loadb(field->str, field->len, JSON_REJECT_DUPLICATES, &jerr);
    int rc;

    if (j == NULL)
        return fail(why, why_len, "state hash: the state field is not JSON: %s", jerr.text);
    rc = state_from_shared_json(j, out, err, sizeof(err));
    json_decref(j);
    if (rc < 0)
        return fail(why, why_len, "state hash: the state field: %s", err);
    return 0;
}

int redis_state_parse(const redisReply *hgetall, struct state *out, uint64_t *generation,
                      char *instance, size_t instance_len, char *why, size_t why_len)
{
    const redisReply *gen_field, *state_field, *who;
    struct state s;
    uint64_t gen;

    if (reply_check(hgetall, "state hash", why, why_len) < 0)
        return -1;
    if (hgetall->type != REDIS_REPLY_ARRAY || hgetall->elements % 2 != 0)
        return fail(why, why_len, "state hash: unexpected reply (type %d)", hgetall->type);
    if (hgetall->elements == 0)
        return 0;
    gen_field = hash_field(hgetall, "generation");
    state_field = hash_field(hgetall, "state");
    who = hash_field(hgetall, "instance");
    if (gen_field == NULL || reply_generation(gen_field, &gen) < 0)
        return fail(why, why_len, "state hash: no readable generation field");
    if (state_field == NULL)
        return fail(why, why_len, "state hash: no state field");
    if (state_field_parse(state_field, &s, why, why_len) < 0)
        return -1;
    if (s.generation != gen)
        return fail(why, why_len,
                    "state hash: the state says generation %" PRIu64 " but the hash %" PRIu64,
                    s.generation, gen);
    if (instance != NULL && (who == NULL || reply_copy(who, instance, instance_len) < 0))
        return fail(why, why_len, "state hash: no readable instance field");
    *out = s;
    *generation = gen;
    return 1;
}
