/* test_addr.c - addresses and CIDR ranges as written in the config. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <string.h>

#include "conf/addr.h"

static void expect_addr(const char *s, int family, const char *text, unsigned port)
{
    struct conf_addr a;
    const char *why = NULL;

    assert_int_equal(conf_addr_parse(s, &a, &why), 0);
    assert_int_equal(a.ss.ss_family, family);
    assert_string_equal(a.text, text);
    if (family == AF_INET) {
        assert_int_equal(a.len, sizeof(struct sockaddr_in));
        assert_int_equal(ntohs(((struct sockaddr_in *)&a.ss)->sin_port), port);
    } else {
        assert_int_equal(a.len, sizeof(struct sockaddr_in6));
        assert_int_equal(ntohs(((struct sockaddr_in6 *)&a.ss)->sin6_port), port);
    }
}

static void expect_addr_error(const char *s, const char *message)
{
    struct conf_addr a;
    const char *why = NULL;

    assert_int_equal(conf_addr_parse(s, &a, &why), -1);
    assert_non_null(why);
    assert_string_equal(why, message);
}

static void test_addr_ipv4(void **state)
{
    (void)state;
    expect_addr("127.0.0.1:8080", AF_INET, "127.0.0.1:8080", 8080);
    expect_addr("0.0.0.0:1", AF_INET, "0.0.0.0:1", 1);
    expect_addr("10.20.30.40:65535", AF_INET, "10.20.30.40:65535", 65535);

    struct conf_addr a;
    const char *why;
    assert_int_equal(conf_addr_parse("192.168.1.2:80", &a, &why), 0);
    struct sockaddr_in *sin = (struct sockaddr_in *)&a.ss;
    assert_int_equal(ntohl(sin->sin_addr.s_addr), 0xC0A80102u);
}

static void test_addr_ipv6(void **state)
{
    (void)state;
    expect_addr("[::1]:8080", AF_INET6, "[::1]:8080", 8080);
    expect_addr("[2001:db8::1]:443", AF_INET6, "[2001:db8::1]:443", 443);
    expect_addr("[::]:9000", AF_INET6, "[::]:9000", 9000);
    /* Written long, shown in the canonical short form. */
    expect_addr("[2001:0db8:0000:0000:0000:0000:0000:0001]:80", AF_INET6, "[2001:db8::1]:80", 80);

    struct conf_addr a;
    const char *why;
    assert_int_equal(conf_addr_parse("[::1]:1", &a, &why), 0);
    struct in6_addr lo = IN6ADDR_LOOPBACK_INIT;
    assert_memory_equal(&((struct sockaddr_in6 *)&a.ss)->sin6_addr, &lo, sizeof(lo));
}

static void test_addr_localhost(void **state)
{
    (void)state;
    expect_addr("localhost:8080", AF_INET, "127.0.0.1:8080", 8080);
    expect_addr_error("LOCALHOST:80",
                      "host must be an IPv4 address, a bracketed IPv6 address or localhost");
}

static void test_addr_bad_ports(void **state)
{
    (void)state;
    expect_addr_error("127.0.0.1:99999", "port out of range 1..65535");
    expect_addr_error("127.0.0.1:65536", "port out of range 1..65535");
    expect_addr_error("127.0.0.1:0", "port out of range 1..65535");
    expect_addr_error("127.0.0.1:99999999999999999999999", "port out of range 1..65535");
    expect_addr_error("127.0.0.1:", "missing port after ':'");
    expect_addr_error("127.0.0.1", "missing port (expected HOST:PORT)");
    expect_addr_error("127.0.0.1:80a", "port must be a decimal number");
    expect_addr_error("127.0.0.1:-1", "port must be a decimal number");
    expect_addr_error("127.0.0.1: 80", "port must be a decimal number");
    expect_addr_error("[::1]:0", "port out of range 1..65535");
    expect_addr_error("[::1]:70000", "port out of range 1..65535");
    expect_addr_error("[::1]", "missing port (expected [IPV6]:PORT)");
    expect_addr_error("[::1]80", "expected ':' and a port after ']'");
}

static void test_addr_bad_hosts(void **state)
{
    (void)state;
    const char *host = "host must be an IPv4 address, a bracketed IPv6 address or localhost";
    expect_addr_error(NULL, "empty address");
    expect_addr_error("", "empty address");
    expect_addr_error(":80", "missing host before ':'");
    expect_addr_error("example.com:80", host);
    expect_addr_error("256.1.1.1:80", host);
    expect_addr_error("1.2.3:80", host);
    expect_addr_error("01.2.3.4:80", host);
    expect_addr_error("::1:80", "an IPv6 address must be in brackets, as in [::1]:8080");
    expect_addr_error("[::1:80", "missing ']' after IPv6 address");
    expect_addr_error("[zz::1]:80", "bad IPv6 address");
    expect_addr_error("[127.0.0.1]:80", "bad IPv6 address");
    expect_addr_error("[]:80", "bad IPv6 address");
    expect_addr_error("[fe80::1%eth0]:80", "bad IPv6 address");
    expect_addr_error(
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:80", host);
}

static struct sockaddr_storage v4(const char *ip)
{
    struct sockaddr_storage ss;
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

    memset(&ss, 0, sizeof(ss));
    sin->sin_family = AF_INET;
    assert_int_equal(inet_pton(AF_INET, ip, &sin->sin_addr), 1);
    return ss;
}

static struct sockaddr_storage v6(const char *ip)
{
    struct sockaddr_storage ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

    memset(&ss, 0, sizeof(ss));
    sin6->sin6_family = AF_INET6;
    assert_int_equal(inet_pton(AF_INET6, ip, &sin6->sin6_addr), 1);
    return ss;
}

static bool match(const char *cidr, struct sockaddr_storage ss)
{
    struct conf_cidr c;
    const char *why = NULL;

    assert_int_equal(conf_cidr_parse(cidr, &c, &why), 0);
    return conf_cidr_match(&c, (struct sockaddr *)&ss);
}

static void test_cidr_parse(void **state)
{
    struct conf_cidr c;
    const char *why;
    (void)state;

    assert_int_equal(conf_cidr_parse("10.1.2.3/8", &c, &why), 0);
    assert_int_equal(c.family, AF_INET);
    assert_int_equal(c.prefix, 8);
    const uint8_t net[4] = {10, 0, 0, 0}; /* host bits cleared */
    assert_memory_equal(c.addr, net, 4);

    assert_int_equal(conf_cidr_parse("127.0.0.1", &c, &why), 0);
    assert_int_equal(c.prefix, 32);

    assert_int_equal(conf_cidr_parse("::1", &c, &why), 0);
    assert_int_equal(c.family, AF_INET6);
    assert_int_equal(c.prefix, 128);

    assert_int_equal(conf_cidr_parse("2001:db8:ffff::/33", &c, &why), 0);
    const uint8_t net6[6] = {0x20, 0x01, 0x0d, 0xb8, 0x80, 0x00};
    assert_memory_equal(c.addr, net6, sizeof(net6));
    assert_int_equal(c.prefix, 33);

    assert_int_equal(conf_cidr_parse("0.0.0.0/0", &c, &why), 0);
    assert_int_equal(c.prefix, 0);
}

static void expect_cidr_error(const char *s, const char *message)
{
    struct conf_cidr c;
    const char *why = NULL;

    assert_int_equal(conf_cidr_parse(s, &c, &why), -1);
    assert_string_equal(why, message);
}

static void test_cidr_bad(void **state)
{
    (void)state;
    expect_cidr_error("", "empty address range");
    expect_cidr_error(NULL, "empty address range");
    expect_cidr_error("10.0.0.0/33", "prefix length out of range 0..32");
    expect_cidr_error("10.0.0.0/99999999999", "prefix length out of range 0..32");
    expect_cidr_error("::/129", "prefix length out of range 0..128");
    expect_cidr_error("10.0.0.0/", "missing prefix length after '/'");
    expect_cidr_error("10.0.0.0/x", "prefix length must be a decimal number");
    expect_cidr_error("10.0.0.0/-1", "prefix length must be a decimal number");
    expect_cidr_error("10.0.0/8", "bad IPv4 address");
    expect_cidr_error("10.0.0.0.0/8", "bad IPv4 address");
    expect_cidr_error("zz::/8", "bad IPv6 address");
    expect_cidr_error("[::1]/128", "bad IPv6 address");
    expect_cidr_error("localhost", "bad IPv4 address");
}

static void test_cidr_match_v4(void **state)
{
    (void)state;
    assert_true(match("10.0.0.0/8", v4("10.1.2.3")));
    assert_false(match("10.0.0.0/8", v4("11.0.0.1")));
    assert_true(match("192.168.1.128/25", v4("192.168.1.200")));
    assert_false(match("192.168.1.128/25", v4("192.168.1.100")));
    assert_true(match("127.0.0.1", v4("127.0.0.1")));
    assert_false(match("127.0.0.1", v4("127.0.0.2")));
    assert_true(match("0.0.0.0/0", v4("203.0.113.9")));
    /* A v4 range never matches a real IPv6 client. */
    assert_false(match("0.0.0.0/0", v6("2001:db8::1")));
}

static void test_cidr_match_v6(void **state)
{
    (void)state;
    assert_true(match("::1/128", v6("::1")));
    assert_false(match("::1/128", v6("::2")));
    assert_true(match("2001:db8::/32", v6("2001:db8:1::1")));
    assert_false(match("2001:db8::/32", v6("2001:db9::1")));
    assert_true(match("2001:db8:8000::/33", v6("2001:db8:ffff::1")));
    assert_false(match("2001:db8:8000::/33", v6("2001:db8:7fff::1")));
    assert_true(match("::/0", v6("fe80::1")));
}

static void test_cidr_match_v4_mapped(void **state)
{
    (void)state;
    /* A v4 client accepted on a dual-stack socket shows up as ::ffff:a.b.c.d. */
    assert_true(match("127.0.0.1/32", v6("::ffff:127.0.0.1")));
    assert_true(match("10.0.0.0/8", v6("::ffff:10.9.8.7")));
    assert_false(match("10.0.0.0/8", v6("::ffff:11.9.8.7")));
    /* And a range written in the mapped form matches a plain v4 client. */
    assert_true(match("::ffff:10.0.0.0/104", v4("10.1.1.1")));
    assert_false(match("::ffff:10.0.0.0/104", v4("11.1.1.1")));
    /* Not every v6 address with a v4 tail is mapped. */
    assert_false(match("127.0.0.1/32", v6("::127.0.0.1")));
}

static void test_cidr_match_other_family(void **state)
{
    struct conf_cidr c;
    const char *why;
    struct sockaddr sa;
    (void)state;

    assert_int_equal(conf_cidr_parse("0.0.0.0/0", &c, &why), 0);
    memset(&sa, 0, sizeof(sa));
    sa.sa_family = AF_UNIX;
    assert_false(conf_cidr_match(&c, &sa));
    assert_false(conf_cidr_match(NULL, &sa));
    assert_false(conf_cidr_match(&c, NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addr_ipv4),
        cmocka_unit_test(test_addr_ipv6),
        cmocka_unit_test(test_addr_localhost),
        cmocka_unit_test(test_addr_bad_ports),
        cmocka_unit_test(test_addr_bad_hosts),
        cmocka_unit_test(test_cidr_parse),
        cmocka_unit_test(test_cidr_bad),
        cmocka_unit_test(test_cidr_match_v4),
        cmocka_unit_test(test_cidr_match_v6),
        cmocka_unit_test(test_cidr_match_v4_mapped),
        cmocka_unit_test(test_cidr_match_other_family),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
