/* test_redisurl.c - redis.url: every form it takes and every way it is wrong. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "conf/redisurl.h"

static struct redis_url parse_ok(const char *s)
{
    struct redis_url u;
    char why[160] = "unchanged";

    if (redis_url_parse(s, &u, why, sizeof(why)) != 0)
        fail_msg("%s: %s", s, why);
    return u;
}

static void expect_error(const char *s, const char *message)
{
    struct redis_url u;
    char why[160] = "";

    assert_int_equal(redis_url_parse(s, &u, why, sizeof(why)), -1);
    assert_string_equal(why, message);
}

static void expect_redacted(const char *s, const char *shown)
{
    struct redis_url u = parse_ok(s);
    char out[512];

    redis_url_redacted(&u, out, sizeof(out));
    assert_string_equal(out, shown);
}

/* A string of n copies of c (n < 600). */
static const char *repeat(char c, size_t n)
{
    static char buf[600];

    memset(buf, c, n);
    buf[n] = '\0';
    return buf;
}

static void test_tcp_defaults(void **state)
{
    (void)state;
    struct redis_url u = parse_ok("redis://127.0.0.1");

    assert_false(u.unix_socket);
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 6379);
    assert_int_equal(u.db, 0);
    assert_string_equal(u.password, "");
    assert_string_equal(u.user, "");
    assert_string_equal(u.path, "");
}

static void test_tcp_port_and_db(void **state)
{
    (void)state;
    struct redis_url u = parse_ok("redis://10.1.2.3:6380/3");

    assert_string_equal(u.host, "10.1.2.3");
    assert_int_equal(u.port, 6380);
    assert_int_equal(u.db, 3);
    u = parse_ok("redis://localhost:1/");
    assert_string_equal(u.host, "localhost");
    assert_int_equal(u.port, 1);
    assert_int_equal(u.db, 0);
    u = parse_ok("redis://127.0.0.1:65535/2147483647");
    assert_int_equal(u.port, 65535);
    assert_int_equal(u.db, 2147483647);
    u = parse_ok("redis://127.0.0.1/15");
    assert_int_equal(u.port, 6379);
    assert_int_equal(u.db, 15);
}

static void test_tcp_ipv6(void **state)
{
    (void)state;
    struct redis_url u = parse_ok("redis://[::1]:7000/1");

    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 7000);
    assert_int_equal(u.db, 1);
    u = parse_ok("redis://[2001:db8::5]");
    assert_string_equal(u.host, "2001:db8::5");
    assert_int_equal(u.port, 6379);
}

static void test_tcp_credentials(void **state)
{
    (void)state;
    struct redis_url u = parse_ok("redis://:s3cret@127.0.0.1:6379/0");

    assert_string_equal(u.password, "s3cret");
    assert_string_equal(u.user, "");
    u = parse_ok("redis://app:pw@127.0.0.1");
    assert_string_equal(u.user, "app");
    assert_string_equal(u.password, "pw");
    /* The last '@' ends the credentials: raw '@', '/' and ':' stay in the password. */
    u = parse_ok("redis://:a@b/c:d@127.0.0.1/4");
    assert_string_equal(u.password, "a@b/c:d");
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.db, 4);
}

static void test_percent_decoding(void **state)
{
    (void)state;
    struct redis_url u = parse_ok("redis://us%65r%3a1:p%40ss%25w%2Fd@127.0.0.1");

    assert_string_equal(u.user, "user:1");
    assert_string_equal(u.password, "p@ss%w/d");
    u = parse_ok("redis://:%c3%a9t%C3%A9@[::1]");
    assert_string_equal(u.password, "\xc3\xa9t\xc3\xa9");
    u = parse_ok("unix:///run/r.sock?password=a%26b&user=me");
    assert_string_equal(u.password, "a&b");
    assert_string_equal(u.user, "me");
}

static void test_unix(void **state)
{
    (void)state;
    struct redis_url u = parse_ok("unix:///run/redis/redis.sock");

    assert_true(u.unix_socket);
    assert_string_equal(u.path, "/run/redis/redis.sock");
    assert_int_equal(u.db, 0);
    assert_string_equal(u.host, "");
    u = parse_ok("unix:///tmp/r.sock?db=5");
    assert_string_equal(u.path, "/tmp/r.sock");
    assert_int_equal(u.db, 5);
    u = parse_ok("unix:///tmp/r.sock?password=pw&db=2");
    assert_string_equal(u.password, "pw");
    assert_int_equal(u.db, 2);
}

static void test_scheme_errors(void **state)
{
    (void)state;
    expect_error("http://127.0.0.1", "must start with \"redis://\" or \"unix://\"");
    expect_error("", "must start with \"redis://\" or \"unix://\"");
    expect_error("rediss://127.0.0.1", "must start with \"redis://\" or \"unix://\"");
    expect_error("redis://127.0.0.1 /0", "must not contain spaces or control characters");
    expect_error("redis://127.0.0.1\t", "must not contain spaces or control characters");
    expect_error("redis://127.0.0.1/\x7f", "must not contain spaces or control characters");
}

static void test_host_errors(void **state)
{
    (void)state;
    expect_error("redis://", "missing host after \"redis://\"");
    expect_error("redis:///0", "missing host after \"redis://\"");
    expect_error("redis://:6379", "missing host after \"redis://\"");
    expect_error("redis://:pw@", "missing host after \"redis://\"");
    expect_error("redis://redis.internal:6379",
                 "host must be an IPv4 address, [IPv6] or localhost (got \"redis.internal\")");
    expect_error("redis://256.1.1.1",
                 "host must be an IPv4 address, [IPv6] or localhost (got \"256.1.1.1\")");
    expect_error("redis://::1", "write an IPv6 address in brackets, as in redis://[::1]:6379");
    expect_error("redis://[::1", "missing ']' after the IPv6 address");
    expect_error("redis://[::1]x", "unexpected text after ']'");
    expect_error("redis://[1.2.3.4]", "\"[1.2.3.4]\" is not an IPv6 address");
    expect_error("redis://[]", "missing host after \"redis://\"");
}

static void test_port_and_db_errors(void **state)
{
    (void)state;
    expect_error("redis://127.0.0.1:", "missing port after ':'");
    expect_error("redis://127.0.0.1:/0", "missing port after ':'");
    expect_error("redis://127.0.0.1:0", "port must be 1..65535");
    expect_error("redis://127.0.0.1:65536", "port must be 1..65535");
    expect_error("redis://127.0.0.1:99999999999999999999", "port must be 1..65535");
    expect_error("redis://127.0.0.1:12ab", "port must be 1..65535");
    expect_error("redis://127.0.0.1:-1", "port must be 1..65535");
    expect_error("redis://[::1]:6379:1", "port must be 1..65535");
    expect_error("redis://127.0.0.1/x", "database must be a number 0..2147483647, as in /3");
    expect_error("redis://127.0.0.1/-1", "database must be a number 0..2147483647, as in /3");
    expect_error("redis://127.0.0.1/2147483648",
                 "database must be a number 0..2147483647, as in /3");
    expect_error("redis://127.0.0.1/1/2", "database must be a number 0..2147483647, as in /3");
    expect_error("redis://127.0.0.1/1?x=1", "database must be a number 0..2147483647, as in /3");
}

static void test_credential_errors(void **state)
{
    (void)state;
    expect_error("redis://pw@127.0.0.1",
                 "credentials must be written \":PASSWORD@\" or \"USER:PASSWORD@\"");
    expect_error("redis://@127.0.0.1",
                 "credentials must be written \":PASSWORD@\" or \"USER:PASSWORD@\"");
    expect_error("redis://:@127.0.0.1", "empty password (leave out the \"@\" part for no AUTH)");
    expect_error("redis://user:@127.0.0.1",
                 "empty password (leave out the \"@\" part for no AUTH)");
    expect_error("redis://:a%2@127.0.0.1", "password has a bad percent-escape (write %25 for '%')");
    expect_error("redis://:a%zz@127.0.0.1",
                 "password has a bad percent-escape (write %25 for '%')");
    expect_error("redis://:abc%@127.0.0.1",
                 "password has a bad percent-escape (write %25 for '%')");
    expect_error("redis://u%g1:pw@127.0.0.1", "user has a bad percent-escape (write %25 for '%')");
    expect_error("redis://:a%00b@127.0.0.1", "password must not contain %00");
}

static void test_too_long_parts(void **state)
{
    (void)state;
    char url[1200];

    snprintf(url, sizeof(url), "redis://:%s@127.0.0.1", repeat('p', 255));
    assert_int_equal(strlen(parse_ok(url).password), 255);
    snprintf(url, sizeof(url), "redis://:%s@127.0.0.1", repeat('p', 256));
    expect_error(url, "password is longer than 255 bytes");
    /* The limit counts decoded bytes: 255 escapes are 255 bytes. */
    size_t n = (size_t)snprintf(url, sizeof(url), "redis://:");
    for (int i = 0; i < 255; i++)
        n += (size_t)snprintf(url + n, sizeof(url) - n, "%%41");
    snprintf(url + n, sizeof(url) - n, "@127.0.0.1");
    assert_int_equal(strlen(parse_ok(url).password), 255);

    snprintf(url, sizeof(url), "redis://%s:pw@127.0.0.1", repeat('u', 127));
    assert_int_equal(strlen(parse_ok(url).user), 127);
    snprintf(url, sizeof(url), "redis://%s:pw@127.0.0.1", repeat('u', 128));
    expect_error(url, "user is longer than 127 bytes");

    snprintf(url, sizeof(url), "redis://%s:6379", repeat('h', 256));
    expect_error(url, "host is longer than 255 bytes");

    snprintf(url, sizeof(url), "unix:///%s", repeat('s', 106));
    assert_int_equal(strlen(parse_ok(url).path), 107);
    snprintf(url, sizeof(url), "unix:///%s", repeat('s', 107));
    expect_error(url, "socket path is longer than 107 bytes");
}

static void test_unix_errors(void **state)
{
    (void)state;
    expect_error("unix://", "needs an absolute socket path, as in unix:///run/redis.sock");
    expect_error("unix:///", "needs an absolute socket path, as in unix:///run/redis.sock");
    expect_error("unix://run/redis.sock",
                 "needs an absolute socket path, as in unix:///run/redis.sock");
    expect_error("unix:///?db=1", "needs an absolute socket path, as in unix:///run/redis.sock");
    expect_error("unix:///r.sock?db=x", "database must be a number 0..2147483647, as in /3");
    expect_error("unix:///r.sock?db=", "database must be a number 0..2147483647, as in /3");
    expect_error("unix:///r.sock?db", "database must be a number 0..2147483647, as in /3");
    expect_error("unix:///r.sock?timeout=1",
                 "unknown parameter \"timeout\" (expected db, user or password)");
    expect_error("unix:///r.sock?", "unknown parameter \"\" (expected db, user or password)");
    expect_error("unix:///r.sock?password=", "empty password (leave out password= for no AUTH)");
    expect_error("unix:///r.sock?user=me", "user given without a password");
}

static void test_why_is_bounded(void **state)
{
    (void)state;
    struct redis_url u;
    char why[8];

    assert_int_equal(redis_url_parse("http://x", &u, why, sizeof(why)), -1);
    assert_string_equal(why, "must st");
    assert_int_equal(redis_url_parse("http://x", &u, NULL, 0), -1);
}

static void test_redacted(void **state)
{
    (void)state;
    expect_redacted("redis://127.0.0.1", "redis://127.0.0.1:6379/0");
    expect_redacted("redis://:s3cret@127.0.0.1:6380/2", "redis://:***@127.0.0.1:6380/2");
    expect_redacted("redis://app:s3cret@[::1]/1", "redis://app:***@[::1]:6379/1");
    expect_redacted("unix:///run/r.sock", "unix:///run/r.sock");
    expect_redacted("unix:///run/r.sock?db=3", "unix:///run/r.sock?db=3");
    expect_redacted("unix:///run/r.sock?password=pw", "unix:///run/r.sock?password=***");
    expect_redacted("unix:///run/r.sock?password=pw&user=u&db=4",
                    "unix:///run/r.sock?db=4&user=u&password=***");

    struct redis_url u = parse_ok("redis://:s3cret@127.0.0.1");
    char small[12];
    redis_url_redacted(&u, small, sizeof(small));
    assert_string_equal(small, "redis://:**");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tcp_defaults),       cmocka_unit_test(test_tcp_port_and_db),
        cmocka_unit_test(test_tcp_ipv6),           cmocka_unit_test(test_tcp_credentials),
        cmocka_unit_test(test_percent_decoding),   cmocka_unit_test(test_unix),
        cmocka_unit_test(test_scheme_errors),      cmocka_unit_test(test_host_errors),
        cmocka_unit_test(test_port_and_db_errors), cmocka_unit_test(test_credential_errors),
        cmocka_unit_test(test_too_long_parts),     cmocka_unit_test(test_unix_errors),
        cmocka_unit_test(test_why_is_bounded),     cmocka_unit_test(test_redacted),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
