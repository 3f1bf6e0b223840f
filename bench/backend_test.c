/* backend_test.c - sy-backend end to end: starts the real binary on a free
 * loopback port and talks raw HTTP/1.1 to it over sockets.
 *
 * Usage: backend_test PATH-TO-SY-BACKEND
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "bench/backend_client.h"

#define IO_TIMEOUT_MS 5000

static const char *backend_path;

struct server {
    pid_t pid;
    int port;
    int err_fd; /* the child's stderr */
};

static struct server main_srv; /* the one most tests share */

/* ---- the server process ---- */

/* Reads the child's stderr until the ready line; returns the port or -1. */
static int wait_ready(int fd, char *line, size_t cap)
{
    size_t n = 0;
    struct pollfd p = {.fd = fd, .events = POLLIN};

    while (n + 1 < cap && poll(&p, 1, IO_TIMEOUT_MS) == 1) {
        ssize_t r = read(fd, line + n, 1);
        if (r <= 0)
            break;
        if (line[n] == '\n') {
            line[n] = '\0';
            const char *colon = strrchr(line, ':');
            return strstr(line, "listening on") && colon ? atoi(colon + 1) : -1;
        }
        n++;
    }
    line[n] = '\0';
    return -1;
}

/* Starts sy-backend with the given extra arguments (NULL-terminated). */
static int server_start(struct server *s, const char *name, const char *const *extra)
{
    const char *argv[32] = {backend_path, "--listen", "127.0.0.1:0", "--name", name};
    size_t argc = 5;
    int pipefd[2];
    char line[256];

    for (; extra && *extra && argc < 30; extra++)
        argv[argc++] = *extra;
    argv[argc] = NULL;
    if (pipe(pipefd) < 0)
        return -1;
    s->pid = fork();
    if (s->pid == 0) {
        dup2(pipefd[1], STDERR_FILENO);
        close(pipefd[0]);
        close(pipefd[1]);
        execv(backend_path, (char *const *)argv);
        _exit(127);
    }
    close(pipefd[1]);
    s->err_fd = pipefd[0];
    s->port = wait_ready(s->err_fd, line, sizeof(line));
    if (s->port <= 0)
        fprintf(stderr, "sy-backend did not start: '%s'\n", line);
    return s->port > 0 ? 0 : -1;
}

/* Sends sig and returns the exit status (or -1 when it did not exit in time). */
static int server_stop(struct server *s, int sig)
{
    int status;

    kill(s->pid, sig);
    for (int i = 0; i < 500; i++) {
        if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
            close(s->err_fd);
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        usleep(10000);
    }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, &status, 0);
    close(s->err_fd);
    return -1;
}

/* Resident memory of a process in KiB. */
static long rss_kib(pid_t pid)
{
    char path[64], line[256];
    long kib = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f)) {
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    }
    fclose(f);
    return kib;
}

static void set_fault(const char *json, int expect_status)
{
    char req[512];
    struct backend_client_resp r;

    snprintf(req, sizeof(req), "POST /__fault HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n%s",
             strlen(json), json);
    backend_client_exchange(main_srv.port, req, &r);
    assert_int_equal(r.status, expect_status);
    backend_client_resp_clear(&r);
}

static int reset_fault(void **state)
{
    struct backend_client_resp r;

    (void)state;
    backend_client_exchange(main_srv.port, "DELETE /__fault HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    backend_client_resp_clear(&r);
    return 0;
}

static void sha256_hex(const void *p, size_t n, char out[65])
{
    unsigned char md[32];
    unsigned int len = 0;

    assert_int_equal(EVP_Digest(p, n, md, &len, EVP_sha256(), NULL), 1);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static bool is_pattern(const char *p, size_t n, size_t off)
{
    static const char pat[] = "switchyard\n";

    for (size_t i = 0; i < n; i++) {
        if (p[i] != pat[(off + i) % 11])
            return false;
    }
    return true;
}

static long long stat_field(const char *json, const char *key)
{
    char pat[64];
    const char *p;

    snprintf(pat, sizeof(pat), "\"%s\":", key);
    p = strstr(json, pat);
    assert_non_null(p);
    return atoll(p + strlen(pat));
}

/* A /__stats time field: its value, or 0 for null. */
static long long stat_time(const char *json, const char *key)
{
    char pat[64];
    const char *p;

    snprintf(pat, sizeof(pat), "\"%s\":", key);
    p = strstr(json, pat);
    assert_non_null(p);
    p += strlen(pat);
    if (strncmp(p, "null", 4) == 0)
        return 0;
    assert_true(*p >= '1' && *p <= '9');
    return atoll(p);
}

static long long wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* ---- the tests ---- */

static void test_default_keepalive(void **state)
{
    struct backend_client c;
    struct backend_client_resp r;
    char v[64];

    (void)state;
    backend_client_open(&c, main_srv.port);
    for (int i = 0; i < 3; i++) {
        backend_client_send_str(&c, "GET /anything HTTP/1.1\r\nHost: t\r\n\r\n");
        backend_client_read(&c, &r, false);
        assert_int_equal(r.status, 200);
        assert_true(backend_client_header(r.head, "X-Backend", v, sizeof(v)));
        assert_string_equal(v, "main");
        assert_true(backend_client_header(r.head, "Content-Type", v, sizeof(v)));
        assert_string_equal(v, "text/plain");
        assert_false(backend_client_header(r.head, "Connection", v, sizeof(v)));
        assert_string_equal(r.body, "ok\n");
        backend_client_resp_clear(&r);
    }
    backend_client_close(&c);
}

static void test_pipelining_in_order(void **state)
{
    struct backend_client c;
    struct backend_client_resp r;
    const int want[] = {201, 200, 404, 202};

    (void)state;
    backend_client_open(&c, main_srv.port);
    backend_client_send_str(
        &c, "GET /__status/201 HTTP/1.1\r\nHost: t\r\n\r\n"
            "POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello"
            "GET /__status/404 HTTP/1.1\r\nHost: t\r\n\r\n"
            "POST /__status/202 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
            "3\r\nabc\r\n0\r\n\r\n");
    for (int i = 0; i < 4; i++) {
        backend_client_read(&c, &r, false);
        assert_int_equal(r.status, want[i]);
        backend_client_resp_clear(&r);
    }
    backend_client_close(&c);
}

static void test_http10(void **state)
{
    struct backend_client c;
    struct backend_client_resp r;
    char v[64];

    (void)state;
    backend_client_open(&c, main_srv.port);
    backend_client_send_str(&c, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    backend_client_read(&c, &r, false);
    assert_true(backend_client_header(r.head, "Connection", v, sizeof(v)));
    assert_string_equal(v, "keep-alive");
    backend_client_resp_clear(&r);
    backend_client_send_str(&c, "GET / HTTP/1.0\r\n\r\n");
    backend_client_read(&c, &r, false);
    assert_true(backend_client_header(r.head, "Connection", v, sizeof(v)));
    assert_string_equal(v, "close");
    assert_string_equal(r.body, "ok\n");
    assert_true(backend_client_closed(&c));
    backend_client_resp_clear(&r);
    backend_client_close(&c);
}

static void test_connection_close_and_head(void **state)
{
    struct backend_client c;
    struct backend_client_resp r;
    char v[64];

    (void)state;
    backend_client_exchange(main_srv.port, "HEAD / HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_true(backend_client_header(r.head, "Content-Length", v, sizeof(v)));
    assert_string_equal(v, "3");
    assert_int_equal(r.body_len, 0);
    backend_client_resp_clear(&r);
    backend_client_open(&c, main_srv.port);
    backend_client_send_str(&c, "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    backend_client_read(&c, &r, false);
    assert_true(backend_client_header(r.head, "Connection", v, sizeof(v)));
    assert_string_equal(v, "close");
    assert_true(backend_client_closed(&c));
    backend_client_resp_clear(&r);
    backend_client_close(&c);
}

static void test_malformed_400_close(void **state)
{
    struct backend_client c;
    struct backend_client_resp r;

    (void)state;
    backend_client_open(&c, main_srv.port);
    /* Content-Length with Transfer-Encoding: the smuggling case. */
    backend_client_send_str(&c, "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
                                "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    backend_client_read(&c, &r, false);
    assert_int_equal(r.status, 400);
    assert_true(backend_client_closed(&c));
    backend_client_resp_clear(&r);
    backend_client_close(&c);
    backend_client_exchange(main_srv.port, "GARBAGE\r\n\r\n", &r);
    assert_int_equal(r.status, 400);
    backend_client_resp_clear(&r);
}

static void test_healthz(void **state)
{
    struct backend_client_resp r;

    (void)state;
    backend_client_exchange(main_srv.port, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "ok\n");
    backend_client_resp_clear(&r);
    set_fault("{\"health_status\": 503, \"fail_rate\": 1}", 200);
    backend_client_exchange(main_srv.port, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(r.status, 503);
    backend_client_resp_clear(&r);
}

static void test_fault_validation(void **state)
{
    struct backend_client_resp r;

    (void)state;
    set_fault("{\"fail_rate\": 1.5}", 400);
    set_fault("{\"fail_status\": 99}", 400);
    set_fault("{\"latency_ms\": -1}", 400);
    set_fault("{\"hang\": 1}", 400);
    set_fault("{\"failrate\": 0.1}", 400);
    set_fault("[1]", 400);
    set_fault("{nope", 400);
    /* A bad key in an otherwise good body changes nothing. */
    set_fault("{\"fail_rate\": 1, \"oops\": 2}", 400);
    backend_client_exchange(main_srv.port, "GET /__fault HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"fail_rate\":0.0"));
    assert_non_null(strstr(r.body, "\"fail_status\":500"));
    backend_client_resp_clear(&r);
}

static void test_fault_fail_rate(void **state)
{
    struct backend_client_resp r;

    (void)state;
    set_fault("{\"fail_rate\": 1, \"fail_status\": 503}", 200);
    backend_client_exchange(main_srv.port, "GET / HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(r.status, 503);
    backend_client_resp_clear(&r);
    /* The control paths are never faulted. */
    backend_client_exchange(main_srv.port, "GET /__stats HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    backend_client_resp_clear(&r);
    set_fault("{\"fail_rate\": 0.5}", 200);
    int fails = 0;
    struct backend_client c;
    backend_client_open(&c, main_srv.port);
    for (int i = 0; i < 400; i++) {
        backend_client_send_str(&c, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
        backend_client_read(&c, &r, false);
        fails += r.status == 503;
        backend_client_resp_clear(&r);
    }
    backend_client_close(&c);
    assert_in_range(fails, 120, 280);
}

static void test_fault_latency(void **state)
{
    struct backend_client_resp r;
    double t0;

    (void)state;
    set_fault("{\"latency_ms\": 200}", 200);
    t0 = now_ms();
    backend_client_exchange(main_srv.port, "GET / HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_true(now_ms() - t0 >= 195.0);
    assert_int_equal(r.status, 200);
    backend_client_resp_clear(&r);
    /* The loop is not blocked: control answers come at once meanwhile. */
    struct backend_client slow;
    backend_client_open(&slow, main_srv.port);
    backend_client_send_str(&slow, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    t0 = now_ms();
    backend_client_exchange(main_srv.port, "GET /__stats HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_true(now_ms() - t0 < 150.0);
    backend_client_resp_clear(&r);
    backend_client_read(&slow, &r, false);
    assert_int_equal(r.status, 200);
    backend_client_resp_clear(&r);
    backend_client_close(&slow);
}

static void test_fault_reset_and_hang(void **state)
{
    struct backend_client c;
    char buf[64];
    ssize_t n;

    (void)state;
    set_fault("{\"reset_rate\": 1}", 200);
    backend_client_open(&c, main_srv.port);
    backend_client_send_str(&c, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    n = recv(c.fd, buf, sizeof(buf), 0);
    assert_int_equal(n, -1);
    assert_int_equal(errno, ECONNRESET);
    backend_client_close(&c);
    set_fault("{\"reset_rate\": 0, \"hang\": true}", 200);
    backend_client_open(&c, main_srv.port);
    struct timeval tv = {.tv_sec = 0, .tv_usec = 300000};
    setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    backend_client_send_str(&c, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    n = recv(c.fd, buf, sizeof(buf), 0);
    assert_int_equal(n, -1);
    assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
    backend_client_close(&c);
}

static void test_stats_counts_reuse(void **state)
{
    struct backend_client c;
    struct backend_client_resp r;
    long long conns0, reqs0;

    (void)state;
    backend_client_open(&c, main_srv.port);
    backend_client_send_str(&c, "GET /__stats HTTP/1.1\r\nHost: t\r\n\r\n");
    backend_client_read(&c, &r, false);
    assert_non_null(strstr(r.body, "\"name\":\"main\""));
    conns0 = stat_field(r.body, "connections");
    reqs0 = stat_field(r.body, "requests");
    assert_true(stat_field(r.body, "active_connections") >= 1);
    backend_client_resp_clear(&r);
    for (int i = 0; i < 5; i++) {
        backend_client_send_str(&c, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
        backend_client_read(&c, &r, false);
        backend_client_resp_clear(&r);
    }
    backend_client_send_str(&c, "GET /__stats HTTP/1.1\r\nHost: t\r\n\r\n");
    backend_client_read(&c, &r, false);
    assert_int_equal(stat_field(r.body, "connections"), conns0);
    assert_int_equal(stat_field(r.body, "requests"), reqs0 + 6);
    backend_client_resp_clear(&r);
    backend_client_close(&c);
}

static void test_sink(void **state)
{
    struct backend_client c;
    struct backend_client_resp r;
    size_t n = 3 * 1000 * 1000 + 17;
    char *data = malloc(n);
    char hex[65], want[160], head[160];

    (void)state;
    for (size_t i = 0; i < n; i++)
        data[i] = (char)(i * 7 + i / 255);
    sha256_hex(data, n, hex);
    snprintf(want, sizeof(want), "{\"bytes\":%zu,\"sha256\":\"%s\"}", n, hex);
    backend_client_open(&c, main_srv.port);
    snprintf(head, sizeof(head), "POST /__sink HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n",
             n);
    backend_client_send_str(&c, head);
    backend_client_send(&c, data, n);
    backend_client_read(&c, &r, false);
    assert_string_equal(r.body, want);
    backend_client_resp_clear(&r);
    /* The same body chunked, in uneven chunks, on the same connection. */
    backend_client_send_str(
        &c, "PUT /__sink HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (size_t off = 0, k = 1; off < n; k = k * 3 + 1) {
        size_t len = k % 100000 + 1 < n - off ? k % 100000 + 1 : n - off;
        snprintf(head, sizeof(head), "%zx;ext=1\r\n", len);
        backend_client_send_str(&c, head);
        backend_client_send(&c, data + off, len);
        backend_client_send_str(&c, "\r\n");
        off += len;
    }
    backend_client_send_str(&c, "0\r\nX-Trailer: yes\r\n\r\n");
    backend_client_read(&c, &r, false);
    assert_string_equal(r.body, want);
    backend_client_resp_clear(&r);
    backend_client_close(&c);
    free(data);
}

static void test_bytes(void **state)
{
    struct backend_client_resp r;
    char v[64];

    (void)state;
    backend_client_exchange(main_srv.port, "GET /__bytes?n=1000003 HTTP/1.1\r\nHost: t\r\n\r\n",
                            &r);
    assert_true(backend_client_header(r.head, "Content-Length", v, sizeof(v)));
    assert_string_equal(v, "1000003");
    assert_int_equal(r.body_len, 1000003);
    assert_true(is_pattern(r.body, r.body_len, 0));
    backend_client_resp_clear(&r);
    backend_client_exchange(main_srv.port,
                            "GET /__bytes?n=200000&chunked=1 HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(r.body_len, 200000);
    assert_true(is_pattern(r.body, r.body_len, 0));
    backend_client_resp_clear(&r);
    backend_client_exchange(main_srv.port, "GET /__bytes?n=0&chunked=1 HTTP/1.1\r\nHost: t\r\n\r\n",
                            &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 0);
    backend_client_resp_clear(&r);
    backend_client_exchange(main_srv.port, "GET /__bytes?n=x HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(r.status, 400);
    backend_client_resp_clear(&r);
    backend_client_exchange(main_srv.port,
                            "GET /__bytes?n=1099511627777 HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(r.status, 400);
    backend_client_resp_clear(&r);
}

/* 512 MiB through a reader: the backend's memory must not follow. */
static void test_bytes_streams_without_buffering(void **state)
{
    struct backend_client c;
    struct backend_client_resp r;
    uint64_t total = 512ull << 20, got = 0;
    long rss0 = rss_kib(main_srv.pid), rss_max = rss0;

    (void)state;
    backend_client_open(&c, main_srv.port);
    backend_client_send_str(&c, "GET /__bytes?n=536870912 HTTP/1.1\r\nHost: t\r\n\r\n");
    memset(&r, 0, sizeof(r));
    while (!memmem(c.buf, c.len, "\r\n\r\n", 4))
        assert_true(backend_client_fill(&c) > 0);
    got = c.len - (size_t)((char *)memmem(c.buf, c.len, "\r\n\r\n", 4) + 4 - c.buf);
    c.len = 0;
    while (got < total) {
        ssize_t n = backend_client_fill(&c);
        assert_true(n > 0);
        assert_true(is_pattern(c.buf, c.len, got));
        got += (uint64_t)n;
        c.len = 0;
        if ((got & ((64u << 20) - 1)) < (uint64_t)n) {
            long now = rss_kib(main_srv.pid);
            rss_max = now > rss_max ? now : rss_max;
        }
    }
    assert_true(got == total);
    assert_true(rss_max - rss0 < 32 * 1024);
    backend_client_close(&c);
}

static void test_echo(void **state)
{
    const char *req = "POST /__echo?q=1 HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 10.0.0.1\r\n"
                      "Content-Length: 5\r\n\r\n";
    char want[512], v[32];
    struct backend_client c;
    struct backend_client_resp r;

    (void)state;
    snprintf(want, sizeof(want), "%shello", req);
    backend_client_open(&c, main_srv.port);
    backend_client_send_str(&c, req);
    backend_client_send_str(&c, "hello");
    backend_client_read(&c, &r, false);
    assert_string_equal(r.body, want);
    assert_true(backend_client_header(r.head, "X-Body-Bytes", v, sizeof(v)));
    assert_string_equal(v, "5");
    backend_client_resp_clear(&r);
    backend_client_send_str(&c,
                            "POST /__echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2000000\r\n\r\n");
    backend_client_read(&c, &r, false);
    assert_int_equal(r.status, 413);
    backend_client_resp_clear(&r);
    backend_client_close(&c);
}

static void test_close_delimited(void **state)
{
    struct backend_client_resp r;
    char v[32];

    (void)state;
    backend_client_exchange(main_srv.port, "GET /__close HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_false(backend_client_header(r.head, "Content-Length", v, sizeof(v)));
    assert_string_equal(r.body, "bye\n");
    backend_client_resp_clear(&r);
}

static void test_status_paths(void **state)
{
    struct backend_client_resp r;
    char v[32];

    (void)state;
    backend_client_exchange(main_srv.port, "GET /__status/204 HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(r.status, 204);
    assert_false(backend_client_header(r.head, "Content-Length", v, sizeof(v)));
    backend_client_resp_clear(&r);
    backend_client_exchange(main_srv.port, "GET /__status/304 HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(r.status, 304);
    backend_client_resp_clear(&r);
    backend_client_exchange(main_srv.port, "GET /__status/503 HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(r.status, 503);
    assert_string_equal(r.body, "503 Service Unavailable\n");
    backend_client_resp_clear(&r);
    backend_client_exchange(main_srv.port, "GET /__status/42 HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(r.status, 400);
    backend_client_resp_clear(&r);
    backend_client_exchange(main_srv.port, "DELETE /__stats HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(r.status, 405);
    assert_true(backend_client_header(r.head, "Allow", v, sizeof(v)));
    backend_client_resp_clear(&r);
}

static void test_upgrade_echoes(void **state)
{
    struct backend_client c;
    struct backend_client_resp r;
    char v[64], buf[16];

    (void)state;
    backend_client_open(&c, main_srv.port);
    backend_client_send_str(
        &c, "GET /chat HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: test/1\r\n\r\n"
            "early");
    backend_client_read(&c, &r, false);
    assert_int_equal(r.status, 101);
    assert_true(backend_client_header(r.head, "Upgrade", v, sizeof(v)));
    assert_string_equal(v, "test/1");
    backend_client_resp_clear(&r);
    backend_client_send_str(&c, " and late\r\n\r\n");
    size_t want = strlen("early and late\r\n\r\n");
    while (c.len < want)
        assert_true(backend_client_fill(&c) > 0);
    assert_memory_equal(c.buf, "early and late\r\n\r\n", want);
    shutdown(c.fd, SHUT_WR);
    assert_int_equal(recv(c.fd, buf, sizeof(buf), 0), 0);
    backend_client_close(&c);
}

static void test_expect_continue_and_half_close(void **state)
{
    struct backend_client c;
    struct backend_client_resp r;

    (void)state;
    backend_client_open(&c, main_srv.port);
    backend_client_send_str(&c, "POST /__echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                                "Content-Length: 2\r\n\r\n");
    backend_client_read(&c, &r, false);
    assert_int_equal(r.status, 100);
    backend_client_resp_clear(&r);
    backend_client_send_str(&c, "hi");
    shutdown(c.fd, SHUT_WR);
    backend_client_read(&c, &r, false);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\r\n\r\nhi"));
    assert_true(backend_client_closed(&c));
    backend_client_resp_clear(&r);
    backend_client_close(&c);
}

static void test_threads_and_body_bytes(void **state)
{
    const char *extra[] = {"--threads", "2", "--body-bytes", "16384", NULL};
    struct server s;
    struct backend_client_resp r;

    (void)state;
    assert_int_equal(server_start(&s, "green", extra), 0);
    for (int i = 0; i < 8; i++) {
        backend_client_exchange(s.port, "GET / HTTP/1.1\r\nHost: t\r\n\r\n", &r);
        assert_int_equal(r.body_len, 16384);
        assert_true(is_pattern(r.body, r.body_len, 0));
        backend_client_resp_clear(&r);
    }
    backend_client_exchange(s.port, "GET /__stats HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(stat_field(r.body, "connections"), 9);
    assert_int_equal(stat_field(r.body, "requests"), 8);
    backend_client_resp_clear(&r);
    assert_int_equal(server_stop(&s, SIGINT), 0);
}

/* GET /__stats from s; *first and *last get its two time fields. */
static void stats_times(const struct server *s, long long *first, long long *last)
{
    struct backend_client_resp r;

    backend_client_exchange(s->port, "GET /__stats HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    *first = stat_time(r.body, "first_fault_ms");
    *last = stat_time(r.body, "last_request_ms");
    backend_client_resp_clear(&r);
}

/* One request to s on a new connection; asserts its status. */
static void request_expect(const struct server *s, const char *req, int status)
{
    struct backend_client_resp r;

    backend_client_exchange(s->port, req, &r);
    assert_int_equal(r.status, status);
    backend_client_resp_clear(&r);
}

static void post_fault(const struct server *s, const char *json)
{
    char req[256];

    snprintf(req, sizeof(req), "POST /__fault HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n%s",
             strlen(json), json);
    request_expect(s, req, 200);
}

/* first_fault_ms and last_request_ms, over two threads: each request may
 * land on either, so the merge is what is checked. */
static void test_stats_fault_times(void **state)
{
    const char *extra[] = {"--threads", "2", NULL};
    const char *get = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";
    struct server s;
    long long first, last, first2, last2, t0, t1;

    (void)state;
    assert_int_equal(server_start(&s, "times", extra), 0);
    stats_times(&s, &first, &last);
    assert_true(first == 0 && last == 0); /* nothing yet, and /__stats does not count */
    t0 = wall_ms();
    request_expect(&s, get, 200);
    t1 = wall_ms();
    stats_times(&s, &first, &last);
    assert_int_equal(first, 0); /* a healthy answer is no fault */
    assert_in_range(last, t0, t1);

    post_fault(&s, "{\"fail_rate\": 1}");
    usleep(20000);
    t0 = wall_ms();
    request_expect(&s, get, 500);
    t1 = wall_ms();
    stats_times(&s, &first, &last);
    assert_in_range(first, t0, t1);
    assert_in_range(last, t0, t1);
    /* Later faulted answers keep the first time; the last request moves. */
    usleep(20000);
    for (int i = 0; i < 4; i++)
        request_expect(&s, get, 500);
    stats_times(&s, &first2, &last2);
    assert_int_equal(first2, first);
    assert_true(last2 >= last + 20);

    /* A change of the mode starts afresh, even one to the same mode. */
    post_fault(&s, "{\"fail_rate\": 1}");
    stats_times(&s, &first, &last);
    assert_int_equal(first, 0);
    assert_int_equal(last, last2);
    /* A late answer counts when it goes out, not when it came in. */
    post_fault(&s, "{\"fail_rate\": 0, \"latency_ms\": 100}");
    t0 = wall_ms();
    request_expect(&s, get, 200);
    t1 = wall_ms();
    stats_times(&s, &first, &last);
    assert_in_range(first, t0 + 90, t1);
    assert_true(last >= t0 && first - last >= 90);
    assert_int_equal(server_stop(&s, SIGTERM), 0);
}

static int run_status(const char *const *args)
{
    const char *argv[16] = {backend_path};
    size_t n = 1;
    int status;
    pid_t pid;

    for (; *args && n < 15; args++)
        argv[n++] = *args;
    argv[n] = NULL;
    pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, STDERR_FILENO);
        dup2(devnull, STDOUT_FILENO);
        execv(backend_path, (char *const *)argv);
        _exit(127);
    }
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_command_line(void **state)
{
    char port[32];

    (void)state;
    assert_int_equal(run_status((const char *[]){"--help", NULL}), 0);
    assert_int_equal(run_status((const char *[]){"--name", "x", NULL}), 2);
    assert_int_equal(run_status((const char *[]){"--listen", "127.0.0.1:1", NULL}), 2);
    assert_int_equal(
        run_status((const char *[]){"--listen", "127.0.0.1:99999", "--name", "x", NULL}), 2);
    assert_int_equal(run_status((const char *[]){"--listen", "127.0.0.1:1", "--name", "x",
                                                 "--threads", "2x", NULL}),
                     2);
    assert_int_equal(run_status((const char *[]){"--listen", "127.0.0.1:1", "--name", "x",
                                                 "--fail-rate", "-0.1", NULL}),
                     2);
    assert_int_equal(run_status((const char *[]){"--listen", "127.0.0.1:1", "--name", "x",
                                                 "--fail-status", "600", NULL}),
                     2);
    assert_int_equal(run_status((const char *[]){"--listen", "127.0.0.1:1", "--name", "a b", NULL}),
                     2);
    assert_int_equal(
        run_status((const char *[]){"--listen", "127.0.0.1:1", "--name", "x", "--bogus", NULL}), 2);
    /* The port is taken (by the shared server): the exclusive bind fails. */
    snprintf(port, sizeof(port), "127.0.0.1:%d", main_srv.port);
    assert_int_equal(run_status((const char *[]){"--listen", port, "--name", "x", NULL}), 1);
}

static int group_setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    return server_start(&main_srv, "main", NULL);
}

static int group_teardown(void **state)
{
    (void)state;
    /* SIGTERM must end it cleanly (exit 0), sanitizers included. */
    return server_stop(&main_srv, SIGTERM) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_keepalive),
        cmocka_unit_test(test_pipelining_in_order),
        cmocka_unit_test(test_http10),
        cmocka_unit_test(test_connection_close_and_head),
        cmocka_unit_test(test_malformed_400_close),
        cmocka_unit_test_teardown(test_healthz, reset_fault),
        cmocka_unit_test_teardown(test_fault_validation, reset_fault),
        cmocka_unit_test_teardown(test_fault_fail_rate, reset_fault),
        cmocka_unit_test_teardown(test_fault_latency, reset_fault),
        cmocka_unit_test_teardown(test_fault_reset_and_hang, reset_fault),
        cmocka_unit_test(test_stats_counts_reuse),
        cmocka_unit_test(test_sink),
        cmocka_unit_test(test_bytes),
        cmocka_unit_test(test_bytes_streams_without_buffering),
        cmocka_unit_test(test_echo),
        cmocka_unit_test(test_close_delimited),
        cmocka_unit_test(test_status_paths),
        cmocka_unit_test(test_upgrade_echoes),
        cmocka_unit_test(test_expect_continue_and_half_close),
        cmocka_unit_test(test_threads_and_body_bytes),
        cmocka_unit_test(test_stats_fault_times),
        cmocka_unit_test(test_command_line),
    };

    if (argc != 2) {
        fprintf(stderr, "usage: %s PATH-TO-SY-BACKEND\n", argv[0]);
        return 2;
    }
    backend_path = argv[1];
    return cmocka_run_group_tests_name("sy-backend", tests, group_setup, group_teardown);
}
