/* The fixture itself: the other Redis tests trust it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <string.h>

#include "tests/unit/support/redis_fixture.h"

static void test_start_cmd_restart(void **state)
{
    struct redis_fixture f;
    char out[64];

    (void)state;
    assert_int_equal(redis_fixture_start(&f, NULL), 0);
    assert_true(f.pid > 0);
    assert_int_equal(redis_fixture_cmd(&f, out, sizeof(out), "SET k %s", "v"), 0);
    assert_string_equal(out, "OK");
    assert_int_equal(redis_fixture_cmd(&f, out, sizeof(out), "GET k"), 0);
    assert_string_equal(out, "v");
    assert_int_equal(redis_fixture_cmd(&f, out, sizeof(out), "GET nothing"), 0);
    assert_string_equal(out, "(nil)");

    redis_fixture_kill(&f);
    assert_int_equal(redis_fixture_cmd(&f, out, sizeof(out), "PING"), -1);
    assert_int_equal(redis_fixture_restart(&f), 0);
    assert_int_equal(redis_fixture_cmd(&f, out, sizeof(out), "GET k"), 0);
    assert_string_equal(out, "(nil)"); /* no persistence */
    redis_fixture_stop(&f);
    assert_int_equal(f.pid, 0);
}

static void test_password(void **state)
{
    struct redis_fixture f;
    char out[64];

    (void)state;
    assert_int_equal(redis_fixture_start(&f, "s3cret"), 0);
    assert_non_null(strstr(f.url, ":s3cret@127.0.0.1:"));
    assert_int_equal(redis_fixture_cmd(&f, out, sizeof(out), "PING"), 0);
    assert_string_equal(out, "PONG");
    redis_fixture_stop(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_start_cmd_restart),
        cmocka_unit_test(test_password),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
