/* rawclient.c - sends stdin to 127.0.0.1:PORT (or to the Unix socket PATH)
 * as is and prints every byte that comes back until the server closes or the
 * time is up. For tests that curl cannot express: half-closing our side after
 * the request, reading slowly, raw pipelined or malformed bytes, control
 * socket lines.
 *
 *   rawclient {PORT | --unix PATH} [--half-close] [--slow-read BYTES:MS] [--timeout-ms N]
 *
 * Exit: 0 when the server closed, 1 on a timeout, 2 on usage or socket errors.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

struct options {
    int port;
    const char *unix_path; /* NULL: TCP to 127.0.0.1:port */
    int half_close;
    size_t slow_bytes; /* 0: read as fast as possible */
    int slow_ms;
    int timeout_ms;
};

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static int parse_args(int argc, char **argv, struct options *o)
{
    int i = 2;

    o->timeout_ms = 10000;
    if (argc >= 3 && strcmp(argv[1], "--unix") == 0) {
        o->unix_path = argv[2];
        i = 3;
    } else if (argc < 2 || (o->port = atoi(argv[1])) <= 0 || o->port > 65535) {
        return -1;
    }
    for (; i < argc; i++) {
        if (strcmp(argv[i], "--half-close") == 0)
            o->half_close = 1;
        else if (strcmp(argv[i], "--slow-read") == 0 && i + 1 < argc)
            sscanf(argv[++i], "%zu:%d", &o->slow_bytes, &o->slow_ms);
        else if (strcmp(argv[i], "--timeout-ms") == 0 && i + 1 < argc)
            o->timeout_ms = atoi(argv[++i]);
        else
            return -1;
    }
    return 0;
}

/* Returns a connected socket, or -1 with errno set. */
static int connect_to(const struct options *o)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    struct sockaddr *sa = (struct sockaddr *)&sin;
    socklen_t salen = sizeof(sin);
    int fd;

    if (o->unix_path != NULL) {
        if (strlen(o->unix_path) >= sizeof(sun.sun_path)) {
            errno = ENAMETOOLONG;
            return -1;
        }
        memcpy(sun.sun_path, o->unix_path, strlen(o->unix_path) + 1);
        sa = (struct sockaddr *)&sun;
        salen = sizeof(sun);
    } else {
        sin.sin_port = htons((uint16_t)o->port);
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    }
    fd = socket(sa->sa_family, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, sa, salen) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int send_stdin(int fd)
{
    char buf[65536];
    ssize_t n;

    while ((n = read(STDIN_FILENO, buf, sizeof(buf))) > 0) {
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(fd, buf + off, (size_t)(n - off));
            /* A server that closes early (a line it refuses) has answered
             * already: what it said is read below. */
            if (w < 0 && (errno == EPIPE || errno == ECONNRESET))
                return 0;
            if (w < 0)
                return -1;
            off += w;
        }
    }
    return n < 0 ? -1 : 0;
}

int main(int argc, char **argv)
{
    struct options o = {0};
    char buf[65536];
    int fd;

    if (parse_args(argc, argv, &o) < 0) {
        fprintf(stderr, "usage: rawclient {PORT | --unix PATH} [--half-close] "
                        "[--slow-read BYTES:MS] [--timeout-ms N]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    fd = connect_to(&o);
    if (fd < 0 || send_stdin(fd) < 0) {
        perror("rawclient");
        return 2;
    }
    if (o.half_close)
        shutdown(fd, SHUT_WR);
    long deadline = now_ms() + o.timeout_ms;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        long left = deadline - now_ms();
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            return 1;
        size_t want = o.slow_bytes > 0 && o.slow_bytes < sizeof(buf) ? o.slow_bytes : sizeof(buf);
        ssize_t n = read(fd, buf, want);
        if (n == 0)
            return 0;
        if (n < 0)
            return errno == ECONNRESET ? 0 : 2;
        fwrite(buf, 1, (size_t)n, stdout);
        if (o.slow_ms > 0) {
            struct timespec ts = {o.slow_ms / 1000, (o.slow_ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
}
