/* test_events.c - the ring of recent events and the audit log. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/log.h"
#include "control/events.h"

static struct state_event make_event(uint64_t generation)
{
    struct state_event e;

    memset(&e, 0, sizeof(e));
    e.generation = generation;
    e.time_ms = 1795000000123LL + (int64_t)generation;
    e.op = STATE_OP_WEIGHT;
    snprintf(e.who, sizeof(e.who), "uid:1000");
    snprintf(e.why, sizeof(e.why), "change %llu", (unsigned long long)generation);
    e.from.stable = CONF_BLUE;
    e.from.candidate_bp = 1000;
    e.from.phase = STATE_IDLE;
    e.to = e.from;
    e.to.candidate_bp = 1250;
    e.to.generation = generation;
    e.persisted = true;
    return e;
}

struct collected {
    uint64_t gens[64];
    size_t n;
    size_t stop_after; /* 0 = never */
};

static int collect(const struct state_event *e, void *arg)
{
    struct collected *c = arg;

    c->gens[c->n++] = e->generation;
    return c->stop_after && c->n >= c->stop_after;
}

static void test_ring_wraps(void **unused)
{
    struct events *ev = events_new(4);
    struct collected c = {0};
    (void)unused;

    assert_non_null(ev);
    assert_int_equal(events_count(ev), 0);
    assert_int_equal(events_foreach(ev, 0, collect, &c), 0);
    for (uint64_t g = 1; g <= 3; g++) {
        struct state_event e = make_event(g);
        events_push(ev, &e);
    }
    assert_int_equal(events_count(ev), 3);
    assert_int_equal(events_foreach(ev, 0, collect, &c), 3);
    assert_int_equal(c.gens[0], 1);
    assert_int_equal(c.gens[2], 3);
    for (uint64_t g = 4; g <= 10; g++) {
        struct state_event e = make_event(g);
        events_push(ev, &e);
    }
    assert_int_equal(events_count(ev), 4);
    memset(&c, 0, sizeof(c));
    assert_int_equal(events_foreach(ev, 0, collect, &c), 4);
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(c.gens[i], 7 + i);
    events_free(ev);
    assert_null(events_new(0));
    events_free(NULL);
}

static void test_foreach_since(void **unused)
{
    struct events *ev = events_new(16);
    struct collected c = {0};
    (void)unused;

    for (uint64_t g = 1; g <= 10; g++) {
        struct state_event e = make_event(g);
        events_push(ev, &e);
    }
    assert_int_equal(events_foreach(ev, 7, collect, &c), 3);
    assert_int_equal(c.gens[0], 8);
    assert_int_equal(c.gens[2], 10);
    memset(&c, 0, sizeof(c));
    assert_int_equal(events_foreach(ev, 10, collect, &c), 0);
    /* The callback can stop the walk. */
    c.stop_after = 2;
    assert_int_equal(events_foreach(ev, 0, collect, &c), 2);
    assert_int_equal(c.gens[1], 2);
    events_free(ev);
}

static void test_to_json(void **unused)
{
    struct state_event e = make_event(42);
    json_t *j, *to;
    (void)unused;

    e.time_ms = 1795457103123LL; /* 2026-11-23T18:05:03.123Z */
    e.to.phase = STATE_ROLLED_BACK;
    e.to.candidate_bp = 1;
    e.op = STATE_OP_ROLLBACK;
    j = events_to_json(&e);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "time")), "2026-11-23T18:05:03.123Z");
    assert_int_equal(json_integer_value(json_object_get(j, "generation")), 42);
    assert_string_equal(json_string_value(json_object_get(j, "op")), "rollback");
    assert_string_equal(json_string_value(json_object_get(j, "who")), "uid:1000");
    assert_string_equal(json_string_value(json_object_get(j, "why")), "change 42");
    assert_true(json_is_true(json_object_get(j, "persisted")));
    assert_null(json_object_get(j, "note"));
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(j, "from"), "candidate_percent")), 10);
    to = json_object_get(j, "to");
    assert_string_equal(json_string_value(json_object_get(to, "phase")), "rolled_back");
    assert_string_equal(json_string_value(json_object_get(to, "stable")), "blue");
    assert_true(json_is_real(json_object_get(to, "candidate_percent")));
    assert_true(json_real_value(json_object_get(to, "candidate_percent")) == 0.01);
    json_decref(j);

    e.persisted = false;
    snprintf(e.note, sizeof(e.note), "not persisted: disk full");
    j = events_to_json(&e);
    assert_true(json_is_false(json_object_get(j, "persisted")));
    assert_string_equal(json_string_value(json_object_get(j, "note")), "not persisted: disk full");
    json_decref(j);
}

/* Reads the audit log back: each line must be one JSON object. Returns how
 * many lines; gens gets their generations. */
static size_t read_log(const char *path, uint64_t *gens, size_t max)
{
    FILE *fp = fopen(path, "r");
    char line[4096];
    size_t n = 0;

    assert_non_null(fp);
    while (fgets(line, sizeof(line), fp)) {
        json_error_t jerr;
        size_t len = strlen(line);
        json_t *j;

        assert_true(len > 0 && line[len - 1] == '\n');
        j = json_loads(line, 0, &jerr);
        if (!j)
            fail_msg("line %zu is not JSON: %s", n + 1, jerr.text);
        assert_true(json_is_object(j));
        assert_true(n < max);
        gens[n++] = (uint64_t)json_integer_value(json_object_get(j, "generation"));
        json_decref(j);
    }
    fclose(fp);
    return n;
}

static void test_audit_log(void **unused)
{
    char dir[] = "/tmp/sy-events-XXXXXX";
    char path[64], other[64];
    uint64_t gens[16];
    struct stat st;
    struct events *ev;
    (void)unused;

    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/audit.log", dir);
    snprintf(other, sizeof(other), "%s/nope/audit.log", dir);
    ev = events_new(2);
    assert_int_equal(events_open_log(ev, path), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640 & ~(unsigned)umask(022));
    for (uint64_t g = 1; g <= 3; g++) {
        struct state_event e = make_event(g);
        events_push(ev, &e);
    }
    events_free(ev);

    /* A second process start appends to the same file. */
    ev = events_new(2);
    assert_int_equal(events_open_log(ev, path), 0);
    assert_int_equal(events_open_log(ev, other), -1); /* keeps the open log */
    for (uint64_t g = 4; g <= 5; g++) {
        struct state_event e = make_event(g);
        snprintf(e.why, sizeof(e.why), "quote \" newline \n tab \t caf\xc3\xa9");
        events_push(ev, &e);
    }
    events_free(ev);
    assert_int_equal(read_log(path, gens, 16), 5);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(gens[i], i + 1);
    unlink(path);
    rmdir(dir);
}

/* A log that cannot be written (full disk) does not stop the ring. */
static void test_failing_log(void **unused)
{
    struct events *ev = events_new(8);
    struct collected c = {0};
    char errlog[] = "/tmp/sy-events-stderr-XXXXXX";
    int fd = mkstemp(errlog);
    int saved = dup(STDERR_FILENO);
    char text[4096] = "";
    FILE *fp;
    (void)unused;

    if (access("/dev/full", W_OK) != 0)
        skip();
    assert_true(fd >= 0 && saved >= 0);
    assert_int_equal(events_open_log(ev, "/dev/full"), 0);
    /* Catch what log_error writes, to count the reports. */
    assert_true(dup2(fd, STDERR_FILENO) >= 0);
    for (uint64_t g = 1; g <= 3; g++) {
        struct state_event e = make_event(g);
        events_push(ev, &e);
    }
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    close(fd);
    assert_int_equal(events_foreach(ev, 0, collect, &c), 3);
    events_free(ev);

    fp = fopen(errlog, "r");
    assert_non_null(fp);
    assert_true(fread(text, 1, sizeof(text) - 1, fp) > 0);
    fclose(fp);
    unlink(errlog);
    assert_non_null(strstr(text, "cannot append generation 1"));
    assert_null(strstr(text, "generation 2"));
    assert_null(strstr(text, "generation 3"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ring_wraps),  cmocka_unit_test(test_foreach_since),
        cmocka_unit_test(test_to_json),     cmocka_unit_test(test_audit_log),
        cmocka_unit_test(test_failing_log),
    };

    log_setup("test_events", LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
