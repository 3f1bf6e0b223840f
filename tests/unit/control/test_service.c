/* test_service.c - a service's audit log and the retries of a state that
 * could not be saved. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "conf/config.h"
#include "conf/log.h"
#include "control/service.h"
#include "control/statefile.h"

#define RETRY_FIRST_MS 5
#define RETRY_MAX_MS 20
#define OUTAGE_MS 200    /* how long the state folder stays unwritable */
#define RECOVERY_MS 2000 /* the most a retry may take once it is writable */

struct fixture {
    char dir[64];
    char state_dir[96]; /* holds the state file */
    char away[96];      /* where state_dir waits while a root test blocks it */
    char state_file[128];
    char audit[128];
    char rotated[128];
    bool blocked_by_file; /* state_dir is a regular file (root), not read-only */
    struct event_base *base;
    struct config *cfg;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/sy-service-XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    snprintf(f->state_dir, sizeof(f->state_dir), "%s/state", f->dir);
    snprintf(f->away, sizeof(f->away), "%s/state.away", f->dir);
    snprintf(f->state_file, sizeof(f->state_file), "%s/s.json", f->state_dir);
    snprintf(f->audit, sizeof(f->audit), "%s/audit.jsonl", f->dir);
    snprintf(f->rotated, sizeof(f->rotated), "%s/audit.jsonl.1", f->dir);
    f->base = event_base_new();
    *state = f;
    return mkdir(f->state_dir, 0700) == 0 && f->base != NULL ? 0 : -1;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    chmod(f->state_dir, 0700);
    nftw(f->dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
    config_free(f->cfg);
    event_base_free(f->base);
    free(f);
    return 0;
}

/* Returns a new service for a minimal config whose "state" section is
 * state_json (NULL: none), relative paths resolving against the fixture's
 * folder. The previous config is freed: a service must not need it. */
static struct service *new_service(struct fixture *f, const char *state_json)
{
    struct conf_errors errs = {0};
    char text[1024];

    config_free(f->cfg);

    snprintf(text, sizeof(text),
             "{\"listen\": [{\"addr\": \"127.0.0.1:8080\"}],\n"
             " \"pools\": {\"blue\": {\"servers\": [{\"name\": \"b1\", \"addr\": "
             "\"127.0.0.1:9001\"}]},\n"
             "           \"green\": {\"servers\": [{\"name\": \"g1\", \"addr\": "
             "\"127.0.0.1:9002\"}]}}%s%s}\n",
             state_json ? ",\n \"state\": " : "", state_json ? state_json : "");
    f->cfg = config_load_string(text, strlen(text), "t.json", f->dir, &errs);
    conf_errors_print(&errs, stderr);
    conf_errors_clear(&errs);
    assert_non_null(f->cfg);
    struct service *svc = service_new(f->cfg);
    assert_non_null(svc);
    return svc;
}

static void apply(struct service *svc, enum state_op op, uint32_t weight_bp)
{
    struct state_change c = {.op = op, .weight_bp = weight_bp, .who = "uid:1000", .why = "test"};
    struct state_error err = {0};

    if (service_apply(svc, &c, &err) < 0)
        fail_msg("%s refused: %s: %s", state_op_name(op), err.code, err.message);
}

struct audit_line {
    uint64_t generation;
    char op[16];
};

/* Reads the audit log back: every line one JSON object with an event's
 * fields. Returns how many lines, stored in out. */
static size_t read_audit(const char *path, struct audit_line *out, size_t max)
{
    static const char *const keys[] = {"time", "generation", "who", "op",
                                       "why",  "from",       "to",  "persisted"};
    FILE *fp = fopen(path, "r");
    char line[4096];
    size_t n = 0;

    assert_non_null(fp);
    while (fgets(line, sizeof(line), fp) != NULL) {
        json_error_t jerr;
        json_t *j = json_loads(line, 0, &jerr);

        assert_true(line[strlen(line) - 1] == '\n');
        if (j == NULL)
            fail_msg("%s: line %zu is not JSON: %s", path, n + 1, jerr.text);
        for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
            if (json_object_get(j, keys[k]) == NULL)
                fail_msg("%s: line %zu has no \"%s\"", path, n + 1, keys[k]);
        }
        assert_string_equal(json_string_value(json_object_get(j, "who")), "uid:1000");
        assert_true(n < max);
        out[n].generation = (uint64_t)json_integer_value(json_object_get(j, "generation"));
        snprintf(out[n].op, sizeof(out[n].op), "%s", json_string_value(json_object_get(j, "op")));
        n++;
        json_decref(j);
    }
    fclose(fp);
    return n;
}

static void test_audit_log_lines(void **state)
{
    struct fixture *f = *state;
    struct service *svc = new_service(f, "{\"audit_log\": \"audit.jsonl\"}");
    struct audit_line lines[8];

    apply(svc, STATE_OP_WEIGHT, 2500);
    apply(svc, STATE_OP_WEIGHT, 5000);
    apply(svc, STATE_OP_ROLLBACK, 0);
    assert_int_equal(read_audit(f->audit, lines, 8), 3);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(lines[i].generation, i + 1);
    assert_string_equal(lines[1].op, "weight");
    assert_string_equal(lines[2].op, "rollback");
    assert_int_equal(events_count(service_events(svc)), 3);
    service_free(svc);
}

/* Rotation: the old file is renamed, lines go to it until the reopen, then
 * to a new file at the configured path. */
static void test_audit_log_reopen(void **state)
{
    struct fixture *f = *state;
    struct service *svc = new_service(f, "{\"audit_log\": \"audit.jsonl\"}");
    struct audit_line lines[8];

    apply(svc, STATE_OP_WEIGHT, 2500);
    assert_int_equal(rename(f->audit, f->rotated), 0);
    apply(svc, STATE_OP_WEIGHT, 5000);
    assert_int_equal(access(f->audit, F_OK), -1);
    assert_int_equal(service_reopen_audit_log(svc), 0);
    apply(svc, STATE_OP_ROLLBACK, 0);
    assert_int_equal(read_audit(f->rotated, lines, 8), 2);
    assert_int_equal(lines[1].generation, 2);
    assert_int_equal(read_audit(f->audit, lines, 8), 1);
    assert_int_equal(lines[0].generation, 3);
    service_free(svc);
}

/* An audit log that cannot be opened costs the file, not the service. */
static void test_audit_log_cannot_open(void **state)
{
    struct fixture *f = *state;
    struct service *svc = new_service(f, "{\"audit_log\": \"nope/audit.jsonl\"}");

    apply(svc, STATE_OP_ROLLBACK, 0);
    assert_int_equal(events_count(service_events(svc)), 1);
    assert_int_equal(service_reopen_audit_log(svc), -1);
    service_free(svc);

    svc = new_service(f, NULL);
    assert_int_equal(service_reopen_audit_log(svc), 0); /* none configured */
    service_free(svc);
}

/* Makes every save into state_dir fail. chmod does not stop root, but a
 * regular file where the folder should be stops everyone. */
static void block_state_dir(struct fixture *f)
{
    if (geteuid() != 0) {
        assert_int_equal(chmod(f->state_dir, 0500), 0);
        return;
    }
    assert_int_equal(rename(f->state_dir, f->away), 0);
    int fd = open(f->state_dir, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    close(fd);
    f->blocked_by_file = true;
}

static void unblock_state_dir(struct fixture *f)
{
    if (!f->blocked_by_file) {
        assert_int_equal(chmod(f->state_dir, 0700), 0);
        return;
    }
    assert_int_equal(unlink(f->state_dir), 0);
    assert_int_equal(rename(f->away, f->state_dir), 0);
    f->blocked_by_file = false;
}

static void assert_saved(const char *path, uint64_t generation, enum state_phase phase)
{
    struct state s;
    char why[512] = "";

    if (statefile_load(path, &s, why, sizeof(why)) != 0)
        fail_msg("%s: %s", path, why);
    assert_int_equal(s.generation, generation);
    assert_int_equal(s.phase, phase);
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs the base for ms milliseconds. */
static void run_for(struct event_base *base, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    assert_int_equal(event_base_loopexit(base, &tv), 0);
    assert_true(event_base_dispatch(base) >= 0);
}

/* Runs the base until svc is persisted or RECOVERY_MS pass. */
static void run_until_persisted(struct event_base *base, struct service *svc)
{
    int64_t deadline = now_ms() + RECOVERY_MS;

    for (int i = 0; i < 1000 && !service_persisted(svc) && now_ms() < deadline; i++)
        assert_true(event_base_loop(base, EVLOOP_ONCE) >= 0);
}

/* Sends stderr to a temporary file until stderr_end(), which returns what
 * was written there as a new string. */
struct capture {
    char path[64];
    int saved;
};

static void stderr_begin(struct capture *c)
{
    snprintf(c->path, sizeof(c->path), "/tmp/sy-service-stderr-XXXXXX");
    int fd = mkstemp(c->path);

    assert_true(fd >= 0);
    c->saved = dup(STDERR_FILENO);
    assert_true(c->saved >= 0 && dup2(fd, STDERR_FILENO) >= 0);
    close(fd);
}

static char *stderr_end(struct capture *c)
{
    char *text = calloc(1, 65536);
    FILE *fp;

    assert_true(dup2(c->saved, STDERR_FILENO) >= 0);
    close(c->saved);
    fp = fopen(c->path, "r");
    assert_true(text != NULL && fp != NULL);
    size_t n = fread(text, 1, 65535, fp);
    text[n] = '\0';
    fclose(fp);
    unlink(c->path);
    return text;
}

static size_t count_of(const char *text, const char *needle)
{
    size_t n = 0;

    for (const char *p = strstr(text, needle); p != NULL; p = strstr(p + 1, needle))
        n++;
    return n;
}

static void test_unsaved_rollback_is_retried(void **state)
{
    struct fixture *f = *state;
    struct service *svc = new_service(f, "{\"file\": \"state/s.json\"}");
    struct state_change weight = {.op = STATE_OP_WEIGHT, .weight_bp = 5000, .who = "uid:1000"};
    struct state_error err = {0};
    struct capture cap;
    unsigned retries = 0;

    assert_int_equal(service_attach(svc, f->base), 0);
    service_set_retry_ms(svc, RETRY_FIRST_MS, RETRY_MAX_MS);
    apply(svc, STATE_OP_WEIGHT, 2500);
    assert_true(service_persisted(svc));
    block_state_dir(f);
    /* Refused: the disk still holds the current state. */
    assert_int_equal(service_apply(svc, &weight, &err), -1);
    assert_string_equal(err.code, "persist_failed");
    assert_true(service_persisted(svc));

    stderr_begin(&cap);
    int64_t start = now_ms();
    apply(svc, STATE_OP_ROLLBACK, 0);
    assert_false(service_persisted(svc));
    run_for(f->base, OUTAGE_MS);
    assert_false(service_persisted(svc));
    int64_t outage = now_ms() - start;
    unblock_state_dir(f);
    assert_saved(f->state_file, 1, STATE_IDLE); /* nothing saves without the loop */
    run_until_persisted(f->base, svc);
    char *log = stderr_end(&cap);

    assert_true(service_persisted(svc));
    assert_saved(f->state_file, 2, STATE_ROLLED_BACK);
    /* One report for the outage and one for its end, whatever the retries. */
    assert_int_equal(count_of(log, "is not saved"), 1);
    assert_int_equal(count_of(log, "saved again"), 1);
    assert_int_equal(
        sscanf(strstr(log, "saved again"), "saved again at generation 2 (%u", &retries), 1);
    print_message("%u failed retries in %lld ms\n", retries, (long long)outage);
    /* Retried during the outage, with waits that doubled up to the cap:
     * 5 + 10 + 20 + 20 + ... ms, never more often. */
    assert_true(retries >= 2);
    assert_true(retries <= 4 + (unsigned)(outage / RETRY_MAX_MS));
    free(log);
    service_free(svc);
}

/* Without an event base, the next change that saves ends the outage. */
static void test_later_change_saves(void **state)
{
    struct fixture *f = *state;
    struct service *svc = new_service(f, "{\"file\": \"state/s.json\"}");

    block_state_dir(f);
    apply(svc, STATE_OP_ROLLBACK, 0);
    assert_false(service_persisted(svc));
    unblock_state_dir(f);
    apply(svc, STATE_OP_WEIGHT, 1000);
    assert_true(service_persisted(svc));
    assert_saved(f->state_file, 2, STATE_IDLE);
    service_free(svc);
}

/* A rollback still unsaved at exit gets one last try. */
static void test_free_saves_unsaved(void **state)
{
    struct fixture *f = *state;
    struct service *svc = new_service(f, "{\"file\": \"state/s.json\"}");

    block_state_dir(f);
    apply(svc, STATE_OP_ROLLBACK, 0);
    unblock_state_dir(f);
    assert_int_equal(access(f->state_file, F_OK), -1);
    service_free(svc);
    assert_saved(f->state_file, 1, STATE_ROLLED_BACK);
}

static void test_memory_only_is_persisted(void **state)
{
    struct fixture *f = *state;
    struct service *svc = new_service(f, NULL);

    assert_int_equal(service_attach(svc, f->base), 0);
    apply(svc, STATE_OP_ROLLBACK, 0);
    assert_true(service_persisted(svc));
    service_free(svc);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_audit_log_lines),          T(test_audit_log_reopen),
        T(test_audit_log_cannot_open),    T(test_unsaved_rollback_is_retried),
        T(test_later_change_saves),       T(test_free_saves_unsaved),
        T(test_memory_only_is_persisted),
    };
#undef T

    log_setup("test_service", LOG_INFO);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
