/* test_statefile.c - saving and loading the local state file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/log.h"
#include "control/statefile.h"

struct fixture {
    char dir[64];
    char path[128];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (!f)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/sy-statefile-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof(f->path), "%s/switchyard.state.json", f->dir);
    *state = f;
    return 0;
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

    chmod(f->dir, 0700);
    nftw(f->dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static struct state sample(uint64_t generation)
{
    struct state s;

    memset(&s, 0, sizeof(s));
    s.stable = CONF_GREEN;
    s.candidate_bp = 2500;
    s.phase = STATE_PROGRESSING;
    s.step = 4;
    s.generation = generation;
    snprintf(s.updated_by, sizeof(s.updated_by), "uid:1000");
    snprintf(s.reason, sizeof(s.reason), "step 4 of 6");
    s.updated_ms = 1795000000123LL;
    return s;
}

static void write_file(const char *path, const void *bytes, size_t len)
{
    FILE *fp = fopen(path, "wb");

    assert_non_null(fp);
    assert_int_equal(fwrite(bytes, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
}

/* Fails when a temporary file was left in dir. */
static void assert_no_temp(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;

    assert_non_null(d);
    while ((de = readdir(d)) != NULL)
        assert_null(strstr(de->d_name, ".tmp."));
    closedir(d);
}

/* Expects statefile_load to refuse path with needle in its reason. */
static void expect_load_fails(const char *path, const char *needle)
{
    struct state out = sample(99);
    struct state before = out;
    char why[512] = "";

    assert_int_equal(statefile_load(path, &out, why, sizeof(why)), -1);
    print_message("why: %s\n", why);
    assert_non_null(strstr(why, needle));
    assert_non_null(strstr(why, path));
    assert_memory_equal(&out, &before, sizeof(out));
}

static void test_round_trip(void **state)
{
    struct fixture *f = *state;
    struct state s = sample(41), out;
    struct stat st;
    char why[256] = "";

    assert_int_equal(statefile_save(f->path, &s, why, sizeof(why)), 0);
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    memset(&out, 0, sizeof(out));
    assert_int_equal(statefile_load(f->path, &out, why, sizeof(why)), 0);
    assert_memory_equal(&out, &s, sizeof(s));

    /* A second save replaces the first. */
    s = sample(42);
    s.phase = STATE_ROLLED_BACK;
    assert_int_equal(statefile_save(f->path, &s, why, sizeof(why)), 0);
    assert_int_equal(statefile_load(f->path, &out, why, sizeof(why)), 0);
    assert_int_equal(out.generation, 42);
    assert_int_equal(out.phase, STATE_ROLLED_BACK);
    assert_no_temp(f->dir);
}

static void test_missing_file(void **state)
{
    struct fixture *f = *state;
    struct state out = sample(5);
    char why[256] = "";

    assert_int_equal(statefile_load(f->path, &out, why, sizeof(why)), 1);
    assert_int_equal(out.generation, 5);
}

static void test_corrupt(void **state)
{
    struct fixture *f = *state;
    static const char junk[] = "\x00\xff\xfe garbage";
    static const char wrong[] = "{\"stable\":\"blue\",\"candidate_bp\":0,\"phase\":\"idle\","
                                "\"step\":0,\"generation\":\"3\",\"updated_by\":\"a\","
                                "\"reason\":\"\",\"updated_ms\":1}";

    write_file(f->path, junk, sizeof(junk) - 1);
    expect_load_fails(f->path, "invalid JSON at line 1");
    write_file(f->path, "", 0);
    expect_load_fails(f->path, "empty file");
    write_file(f->path, wrong, sizeof(wrong) - 1);
    expect_load_fails(f->path, "generation: expected an integer");
    write_file(f->path, "{\"stable\":\"blue\"} {}", 20);
    expect_load_fails(f->path, "invalid JSON");
    write_file(f->path, "{\"stable\":\"blue\",\"stable\":\"green\"}", 35);
    expect_load_fails(f->path, "invalid JSON");
}

static void test_torn_write(void **state)
{
    struct fixture *f = *state;
    struct state s = sample(7);
    struct stat st;
    char why[256] = "";

    assert_int_equal(statefile_save(f->path, &s, why, sizeof(why)), 0);
    assert_int_equal(stat(f->path, &st), 0);
    /* Every proper prefix of a saved file is refused. */
    for (off_t len = st.st_size - 2; len > 0; len -= 7) {
        assert_int_equal(truncate(f->path, len), 0);
        expect_load_fails(f->path, "invalid JSON");
    }
}

static void test_huge_file(void **state)
{
    struct fixture *f = *state;
    size_t len = STATEFILE_MAX_BYTES + 100;
    char *big = malloc(len);

    assert_non_null(big);
    memset(big, ' ', len);
    big[len - 2] = '{';
    big[len - 1] = '}';
    write_file(f->path, big, len);
    free(big);
    expect_load_fails(f->path, "larger than 65536 bytes");
}

static void test_not_a_file(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(mkdir(f->path, 0700), 0);
    expect_load_fails(f->path, "not a regular file");
}

static void test_random_bytes(void **state)
{
    struct fixture *f = *state;
    unsigned char buf[512];
    uint64_t x = 88172645463325252ULL;

    for (int round = 0; round < 300; round++) {
        struct state out;
        char why[256];
        size_t len = (size_t)round % sizeof(buf);
        for (size_t i = 0; i < len; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buf[i] = (unsigned char)x;
        }
        write_file(f->path, buf, len);
        assert_int_equal(statefile_load(f->path, &out, why, sizeof(why)), -1);
    }
}

static void test_save_missing_folder(void **state)
{
    struct fixture *f = *state;
    struct state s = sample(3);
    char path[192], why[256] = "";

    snprintf(path, sizeof(path), "%s/nope/switchyard.state.json", f->dir);
    assert_int_equal(statefile_save(path, &s, why, sizeof(why)), -1);
    print_message("why: %s\n", why);
    assert_non_null(strstr(why, "cannot create"));
    assert_no_temp(f->dir);
}

/* The rename fails after the temporary file was written: the target is a
 * folder. It must survive and the temporary file must go. */
static void test_save_rename_fails(void **state)
{
    struct fixture *f = *state;
    struct state s = sample(3);
    struct stat st;
    char why[256] = "";

    assert_int_equal(mkdir(f->path, 0700), 0);
    assert_int_equal(statefile_save(f->path, &s, why, sizeof(why)), -1);
    print_message("why: %s\n", why);
    assert_non_null(strstr(why, "cannot rename"));
    assert_int_equal(stat(f->path, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_no_temp(f->dir);
}

static void test_save_read_only_folder(void **state)
{
    struct fixture *f = *state;
    struct state s = sample(10), out;
    char why[256] = "";

    assert_int_equal(statefile_save(f->path, &s, why, sizeof(why)), 0);
    if (geteuid() == 0) /* root writes anyway: nothing to test */
        skip();
    assert_int_equal(chmod(f->dir, 0500), 0);
    s = sample(11);
    assert_int_equal(statefile_save(f->path, &s, why, sizeof(why)), -1);
    assert_int_equal(chmod(f->dir, 0700), 0);
    assert_int_equal(statefile_load(f->path, &out, why, sizeof(why)), 0);
    assert_int_equal(out.generation, 10);
    assert_no_temp(f->dir);
}

/* A rollout's plan survives a restart; a file from before plans were kept
 * (no "plan" key) still loads, with no plan. */
static void test_plan_kept(void **state)
{
    static const char old[] =
        "{\"stable\": \"blue\", \"candidate_bp\": 500, \"phase\": \"progressing\", "
        "\"step\": 2, \"generation\": 7, \"updated_by\": \"rollout\", \"reason\": \"r\", "
        "\"updated_ms\": 1795000000123}";
    struct fixture *f = *state;
    struct state s = sample(43), out;
    char why[256] = "";

    s.plan = (struct state_plan){3, {200, 3000, 10000}, 45};
    assert_int_equal(statefile_save(f->path, &s, why, sizeof(why)), 0);
    memset(&out, 0, sizeof(out));
    assert_int_equal(statefile_load(f->path, &out, why, sizeof(why)), 0);
    assert_memory_equal(&out.plan, &s.plan, sizeof(s.plan));

    write_file(f->path, old, sizeof(old) - 1);
    out.plan = s.plan;
    assert_int_equal(statefile_load(f->path, &out, why, sizeof(why)), 0);
    assert_int_equal(out.phase, STATE_PROGRESSING);
    assert_int_equal(out.plan.nsteps, 0);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_round_trip),        T(test_missing_file),
        T(test_corrupt),           T(test_torn_write),
        T(test_huge_file),         T(test_not_a_file),
        T(test_random_bytes),      T(test_save_missing_folder),
        T(test_save_rename_fails), T(test_save_read_only_folder),
        T(test_plan_kept),
    };
#undef T

    log_setup("test_statefile", LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
