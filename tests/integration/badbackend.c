/* badbackend.c - an HTTP backend that misbehaves in one chosen way, for the
 * tests of what the proxy does with hostile servers (hostile.sh).
 *
 *   sy-badbackend PORT MODE [MS]
 *
 * Listens on 127.0.0.1:PORT and answers every request head it reads (bodies
 * are not expected) with the misbehaviour MODE names:
 *
 *   --ok              a correct keep-alive answer: the control case
 *   --reset-mid-body  Content-Length 1000, 100 bytes, then a reset (RST)
 *   --bad-status      "HTTP/1.1 2000 OK"
 *   --garbage         binary bytes instead of a status line
 *   --huge-head       a 40 KiB header block (over limits.max_header_bytes)
 *   --bad-header      whitespace between a field name and its colon
 *   --nul-header      a NUL byte in a field value
 *   --short-body      Content-Length 100, 10 bytes, then a close (FIN)
 *   --long-body       Content-Length 10, 100 bytes: 90 past the end
 *   --trickle MS      a correct answer, one byte every MS milliseconds
 *   --cl-te           Content-Length and Transfer-Encoding both
 *   --two-cl          two different Content-Lengths
 *
 * For every request head it reads it prints "conn N request M" on stdout (N
 * counts accepted connections from 1, M the requests on that connection from
 * 1): a test tells from "request 2" that a connection was used again.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HEAD_MAX 65536
#define HUGE_HEAD_LINES 20 /* of 2 KiB each: 40 KiB, over the default 32 KiB */

/* What the connection does after an answer. */
enum after {
    AFTER_KEEP,  /* read the next request */
    AFTER_CLOSE, /* close with a FIN */
    AFTER_RESET, /* close with a RST */
};

struct mode {
    const char *flag;
    enum after (*answer)(int fd);
};

static int trickle_ms;
static atomic_uint nconns;

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Writes all of buf; false when the peer has gone. */
static bool send_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;

    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

static bool send_text(int fd, const char *text)
{
    return send_all(fd, text, strlen(text));
}

static enum after answer_ok(int fd)
{
    send_text(fd, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n");
    return AFTER_KEEP;
}

static enum after answer_reset_mid_body(int fd)
{
    char body[100];

    memset(body, 'r', sizeof(body));
    send_text(fd, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");
    send_all(fd, body, sizeof(body));
    sleep_ms(200); /* the head reaches the client before the reset */
    return AFTER_RESET;
}

static enum after answer_bad_status(int fd)
{
    send_text(fd, "HTTP/1.1 2000 OK\r\nContent-Length: 3\r\n\r\nok\n");
    return AFTER_KEEP;
}

static enum after answer_garbage(int fd)
{
    unsigned char junk[64];

    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (unsigned char)(i * 37 + 11); /* NUL, CR, LF and high bytes among them */
    send_all(fd, junk, sizeof(junk));
    return AFTER_KEEP;
}

static enum after answer_huge_head(int fd)
{
    char line[2048];

    memset(line, 'h', sizeof(line));
    memcpy(line, "X-Filler: ", 10);
    memcpy(line + sizeof(line) - 2, "\r\n", 2);
    if (!send_text(fd, "HTTP/1.1 200 OK\r\n"))
        return AFTER_CLOSE;
    for (int i = 0; i < HUGE_HEAD_LINES; i++) {
        if (!send_all(fd, line, sizeof(line)))
            return AFTER_CLOSE; /* the proxy gave up reading: as it should */
    }
    send_text(fd, "Content-Length: 3\r\n\r\nok\n");
    return AFTER_KEEP;
}

static enum after answer_bad_header(int fd)
{
    send_text(fd, "HTTP/1.1 200 OK\r\nX-Bad : 1\r\nContent-Length: 3\r\n\r\nok\n");
    return AFTER_KEEP;
}

static enum after answer_nul_header(int fd)
{
    static const char head[] = "HTTP/1.1 200 OK\r\nX-Nul: a\0b\r\nContent-Length: 3\r\n\r\nok\n";

    send_all(fd, head, sizeof(head) - 1);
    return AFTER_KEEP;
}

static enum after answer_short_body(int fd)
{
    send_text(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
    return AFTER_CLOSE;
}

static enum after answer_long_body(int fd)
{
    static const char head[] = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789";
    char all[sizeof(head) - 1 + 90];

    /* One write: the 90 extra bytes come with the body, not later. */
    memcpy(all, head, sizeof(head) - 1);
    memset(all + sizeof(head) - 1, 'X', 90);
    send_all(fd, all, sizeof(all));
    return AFTER_KEEP;
}

static enum after answer_trickle(int fd)
{
    const char *answer = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n";

    for (const char *p = answer; *p != '\0'; p++) {
        if (!send_all(fd, p, 1))
            return AFTER_CLOSE;
        sleep_ms(trickle_ms);
    }
    return AFTER_KEEP;
}

static enum after answer_cl_te(int fd)
{
    send_text(fd, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "3\r\nok\n\r\n0\r\n\r\n");
    return AFTER_KEEP;
}

static enum after answer_two_cl(int fd)
{
    send_text(fd, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nok\n");
    return AFTER_KEEP;
}

static const struct mode modes[] = {
    {"--ok", answer_ok},
    {"--reset-mid-body", answer_reset_mid_body},
    {"--bad-status", answer_bad_status},
    {"--garbage", answer_garbage},
    {"--huge-head", answer_huge_head},
    {"--bad-header", answer_bad_header},
    {"--nul-header", answer_nul_header},
    {"--short-body", answer_short_body},
    {"--long-body", answer_long_body},
    {"--trickle", answer_trickle},
    {"--cl-te", answer_cl_te},
    {"--two-cl", answer_two_cl},
};

static const struct mode *mode;

/* Reads until buf holds a whole request head; returns the head's length, or
 * 0 when the peer closed (or sent more than HEAD_MAX without one). */
static size_t read_head(int fd, char *buf, size_t *len)
{
    for (;;) {
        buf[*len] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (end != NULL)
            return (size_t)(end + 4 - buf);
        if (*len == HEAD_MAX)
            return 0;
        ssize_t n = read(fd, buf + *len, HEAD_MAX - *len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return 0;
        *len += (size_t)n;
    }
}

static void close_with(int fd, enum after how)
{
    if (how == AFTER_RESET) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    close(fd);
}

static void *serve(void *arg)
{
    int fd = (int)(intptr_t)arg;
    unsigned id = atomic_fetch_add(&nconns, 1) + 1;
    char *buf = malloc(HEAD_MAX + 1);
    size_t len = 0, head;
    enum after how = AFTER_CLOSE;

    for (unsigned req = 1; buf != NULL && (head = read_head(fd, buf, &len)) > 0; req++) {
        /* One write per line: the threads' lines never interleave. */
        dprintf(STDOUT_FILENO, "conn %u request %u\n", id, req);
        memmove(buf, buf + head, len - head);
        len -= head;
        how = mode->answer(fd);
        if (how != AFTER_KEEP)
            break;
        how = AFTER_CLOSE;
    }
    free(buf);
    close_with(fd, how);
    return NULL;
}

static int listen_on(int port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(fd, 128) < 0)
        return -1;
    return fd;
}

static int parse_args(int argc, char **argv, int *port)
{
    if (argc < 3 || (*port = atoi(argv[1])) <= 0 || *port > 65535)
        return -1;
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        if (strcmp(argv[2], modes[i].flag) == 0)
            mode = &modes[i];
    }
    if (mode == NULL)
        return -1;
    if (mode->answer == answer_trickle) {
        if (argc != 4 || (trickle_ms = atoi(argv[3])) <= 0)
            return -1;
    } else if (argc != 3) {
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    int port, lfd;

    if (parse_args(argc, argv, &port) < 0) {
        fprintf(stderr, "usage: sy-badbackend PORT {--ok | --reset-mid-body | --bad-status | "
                        "--garbage | --huge-head | --bad-header | --nul-header | --short-body | "
                        "--long-body | --trickle MS | --cl-te | --two-cl}\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    lfd = listen_on(port);
    if (lfd < 0) {
        perror("sy-badbackend: listen");
        return 2;
    }
    for (;;) {
        int fd = accept(lfd, NULL, NULL);
        pthread_t t;
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            perror("sy-badbackend: accept");
            return 2;
        }
        if (pthread_create(&t, NULL, serve, (void *)(intptr_t)fd) != 0) {
            close(fd);
            continue;
        }
        pthread_detach(t);
    }
}
