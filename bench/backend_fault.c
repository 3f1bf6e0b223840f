/* backend_fault.c - the fault mode: validation, JSON in and out, sharing. */
#include "bench/backend_fault.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

struct backend_fault_state {
    pthread_mutex_t lock;       /* guards mode and start */
    struct backend_fault mode;  /* the current mode */
    struct backend_fault start; /* what DELETE /__fault restores */
    _Atomic uint64_t gen;       /* bumped after each change, read without the lock */
};

void backend_fault_default(struct backend_fault *m)
{
    memset(m, 0, sizeof(*m));
    m->fail_status = 500;
    m->health_status = 200;
}

static bool rate_ok(double r)
{
    return isfinite(r) && r >= 0.0 && r <= 1.0;
}

/* Statuses an answer with a body can carry: 1xx would change the framing. */
static bool status_ok(int s)
{
    return s >= 200 && s <= 599;
}

int backend_fault_check(const struct backend_fault *m, const char **why)
{
    if (!rate_ok(m->fail_rate)) {
        *why = "fail_rate must be a number from 0 to 1";
        return -1;
    }
    if (!rate_ok(m->reset_rate)) {
        *why = "reset_rate must be a number from 0 to 1";
        return -1;
    }
    if (!status_ok(m->fail_status)) {
        *why = "fail_status must be an integer from 200 to 599";
        return -1;
    }
    if (!status_ok(m->health_status)) {
        *why = "health_status must be an integer from 200 to 599";
        return -1;
    }
    if (m->latency_ms > BACKEND_FAULT_LATENCY_MAX_MS) {
        *why = "latency_ms must be an integer from 0 to 3600000";
        return -1;
    }
    return 0;
}

struct backend_fault_state *backend_fault_state_new(const struct backend_fault *initial)
{
    struct backend_fault_state *s = calloc(1, sizeof(*s));

    if (!s)
        return NULL;
    if (pthread_mutex_init(&s->lock, NULL) != 0) {
        free(s);
        return NULL;
    }
    s->mode = *initial;
    s->start = *initial;
    atomic_init(&s->gen, 1);
    return s;
}

void backend_fault_state_free(struct backend_fault_state *s)
{
    if (!s)
        return;
    pthread_mutex_destroy(&s->lock);
    free(s);
}

void backend_fault_state_sync(struct backend_fault_state *s, struct backend_fault *copy,
                              uint64_t *gen)
{
    if (atomic_load_explicit(&s->gen, memory_order_acquire) == *gen)
        return;
    pthread_mutex_lock(&s->lock);
    *copy = s->mode;
    *gen = atomic_load_explicit(&s->gen, memory_order_relaxed);
    pthread_mutex_unlock(&s->lock);
}

uint64_t backend_fault_state_gen(struct backend_fault_state *s)
{
    return atomic_load_explicit(&s->gen, memory_order_acquire);
}

/* Replaces the mode; *m is already checked. */
static void state_set(struct backend_fault_state *s, const struct backend_fault *m)
{
    pthread_mutex_lock(&s->lock);
    s->mode = *m;
    atomic_fetch_add_explicit(&s->gen, 1, memory_order_release);
    pthread_mutex_unlock(&s->lock);
}

void backend_fault_state_restore(struct backend_fault_state *s, struct backend_fault *out)
{
    pthread_mutex_lock(&s->lock);
    *out = s->start;
    pthread_mutex_unlock(&s->lock);
    state_set(s, out);
}

/* Reads an integer-valued JSON number (3 and 3.0 both count) into *out. */
static int json_int(const json_t *v, long long lo, long long hi, long long *out)
{
    double d;

    if (json_is_integer(v)) {
        *out = json_integer_value(v);
    } else if (json_is_real(v)) {
        d = json_real_value(v);
        if (d != floor(d) || d < (double)lo || d > (double)hi)
            return -1;
        *out = (long long)d;
    } else {
        return -1;
    }
    return *out >= lo && *out <= hi ? 0 : -1;
}

/* Applies one key of a /__fault body to *m. Returns 0, or -1 with err set. */
static int apply_key(struct backend_fault *m, const char *key, const json_t *v, char *err,
                     size_t errlen)
{
    bool is_fail = strcmp(key, "fail_rate") == 0 || strcmp(key, "fail_status") == 0;
    long long n;

    if (strcmp(key, "fail_rate") == 0 || strcmp(key, "reset_rate") == 0) {
        if (!json_is_number(v) || !rate_ok(json_number_value(v))) {
            snprintf(err, errlen, "%s must be a number from 0 to 1", key);
            return -1;
        }
        *(is_fail ? &m->fail_rate : &m->reset_rate) = json_number_value(v);
    } else if (strcmp(key, "fail_status") == 0 || strcmp(key, "health_status") == 0) {
        if (json_int(v, 200, 599, &n) < 0) {
            snprintf(err, errlen, "%s must be an integer from 200 to 599", key);
            return -1;
        }
        *(is_fail ? &m->fail_status : &m->health_status) = (int)n;
    } else if (strcmp(key, "latency_ms") == 0) {
        if (json_int(v, 0, BACKEND_FAULT_LATENCY_MAX_MS, &n) < 0) {
            snprintf(err, errlen, "latency_ms must be an integer from 0 to %u",
                     BACKEND_FAULT_LATENCY_MAX_MS);
            return -1;
        }
        m->latency_ms = (uint32_t)n;
    } else if (strcmp(key, "hang") == 0) {
        if (!json_is_boolean(v)) {
            snprintf(err, errlen, "hang must be true or false");
            return -1;
        }
        m->hang = json_is_true(v);
    } else {
        snprintf(err, errlen,
                 "unknown key \"%s\" (known: fail_rate, fail_status, latency_ms, reset_rate, "
                 "hang, health_status)",
                 key);
        return -1;
    }
    return 0;
}

int backend_fault_state_apply_json(struct backend_fault_state *s, const char *json, size_t len,
                                   struct backend_fault *out, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    struct backend_fault m;
    const char *key;
    json_t *v;

    err[0] = '\0';
    if (!root) {
        snprintf(err, errlen, "bad JSON at line %d column %d: %s", jerr.line, jerr.column,
                 jerr.text);
        return -1;
    }
    if (!json_is_object(root)) {
        snprintf(err, errlen, "the body must be a JSON object");
        json_decref(root);
        return -1;
    }
    pthread_mutex_lock(&s->lock);
    m = s->mode;
    pthread_mutex_unlock(&s->lock);
    json_object_foreach(root, key, v)
    {
        if (apply_key(&m, key, v, err, errlen) < 0) {
            json_decref(root);
            return -1;
        }
    }
    json_decref(root);
    /* Two concurrent writers each start from the mode they read: the later
     * one wins whole. Good enough for a test tool driven by one test. */
    state_set(s, &m);
    *out = m;
    return 0;
}

char *backend_fault_to_json(const struct backend_fault *m)
{
    json_t *o =
        json_pack("{s:f, s:i, s:I, s:f, s:b, s:i}", "fail_rate", m->fail_rate, "fail_status",
                  m->fail_status, "latency_ms", (json_int_t)m->latency_ms, "reset_rate",
                  m->reset_rate, "hang", (int)m->hang, "health_status", m->health_status);
    char *s;

    if (!o)
        return NULL;
    s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
    json_decref(o);
    return s;
}
