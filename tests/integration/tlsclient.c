/* tlsclient.c - a TLS client that decides what goes on the wire and when, for
 * the TLS edge cases that curl and openssl s_client cannot express: a
 * request of one TLS record per byte, half a record and then silence,
 * pipelined requests in one record, megabytes both ways through a tunnel, a
 * close_notify or a reset at a chosen moment, a reader that lags behind.
 *
 *   tlsclient PORT [--tls1.2 | --tls1.3] [--late-finished] [--timeout-ms N] ACTION...
 *
 * The ACTIONs run in order on one connection to 127.0.0.1:PORT. The
 * certificate is not verified: tls.sh checks certificates, this client
 * checks what the proxy does with the bytes.
 *
 *   send              stdin in as few records as it takes (one up to 16 KiB)
 *   send-bytewise     stdin one byte per record, and each record put on the
 *                     wire in two halves 1 ms apart
 *   send-half         stdin in one record of which only the first half ever
 *                     goes on the wire
 *   head              reads one response head (to the empty line) to stdout
 *   read-n N          reads N bytes to stdout
 *   slow-read B:MS:N  reads at most B bytes every MS ms, N bytes in all, to stdout
 *   read              reads to stdout until the server ends the connection
 *   tunnel N          sends N bytes of "switchyard\n" repeated while reading
 *                     them back, and checks every byte that comes back
 *   tunnel-close N    the same, with close_notify right after the last byte
 *                     sent, while the echo is still coming back
 *   close-notify      sends close_notify: our side is done, reading goes on
 *   key-update        TLS 1.3 KeyUpdate, asking the server to update too
 *   renegotiate       TLS 1.2: asks for a new handshake
 *   reset             closes the socket with a reset (RST); actions after
 *                     it are not run
 *
 * stderr says how the connection ended, "end: close_notify", "end: eof"
 * (a FIN without close_notify), "end: reset" or "end: timeout", and what
 * went wrong otherwise.
 *
 * Exit: 0 when every action did its part, 1 on the timeout, 2 on usage,
 * socket or TLS errors, an early end, or a tunnel byte that came back wrong.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define STDIN_MAX (1024 * 1024) /* what the send actions take of stdin, at most */
#define RECORD_MAX 16384        /* plaintext per SSL_write: one full record */
#define TUNNEL_WIRE_HIGH 65536  /* encrypted bytes queued before the tunnel stops encrypting */
#define PATTERN "switchyard\n"  /* what `yes switchyard` prints, as sy-backend's /__bytes */
#define PATTERN_LEN (sizeof(PATTERN) - 1)

enum end {
    END_NONE,
    END_CLOSE_NOTIFY,
    END_EOF,
    END_RESET,
    END_TIMEOUT,
    END_ERROR,
};

static const char *const end_names[] = {"none", "close_notify", "eof", "reset", "timeout", "error"};

struct client {
    int fd;
    SSL *ssl;
    BIO *wire; /* memory BIO: what OpenSSL wrote, until we put it on the socket */
    long deadline_ms;
    enum end end;
    bool late_finished; /* --late-finished */
};

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void openssl_fail(const char *what)
{
    char reason[256];

    ERR_error_string_n(ERR_get_error(), reason, sizeof(reason));
    fprintf(stderr, "tlsclient: %s: %s\n", what, reason);
    ERR_clear_error();
}

/* Waits until fd is ready for events or the deadline passes. Returns true
 * when ready; sets c->end otherwise. */
static bool wait_fd(struct client *c, short events)
{
    struct pollfd p = {.fd = c->fd, .events = events};
    long left = c->deadline_ms - now_ms();
    int n = left > 0 ? poll(&p, 1, (int)left) : 0;

    if (n > 0)
        return true;
    if (n == 0 || errno == EINTR) {
        c->end = END_TIMEOUT;
        return false;
    }
    perror("tlsclient: poll");
    c->end = END_ERROR;
    return false;
}

/* Drops n bytes from the start of the wire BIO. */
static void wire_drop(struct client *c, size_t n)
{
    char scratch[4096];

    while (n > 0) {
        int part = BIO_read(c->wire, scratch, n < sizeof(scratch) ? (int)n : (int)sizeof(scratch));
        if (part <= 0)
            return;
        n -= (size_t)part;
    }
}

static size_t wire_pending(struct client *c)
{
    return (size_t)BIO_ctrl_pending(c->wire);
}

/* Puts up to len queued wire bytes on the socket without waiting. Returns
 * the bytes sent (0 when the socket is full), or -1 with c->end set. */
static ssize_t wire_send_some(struct client *c, size_t len)
{
    char *data;
    size_t queued = (size_t)BIO_get_mem_data(c->wire, &data);
    ssize_t n = send(c->fd, data, len < queued ? len : queued, MSG_NOSIGNAL);

    if (n >= 0) {
        wire_drop(c, (size_t)n);
        return n;
    }
    if (errno == EAGAIN || errno == EINTR)
        return 0;
    c->end = errno == ECONNRESET || errno == EPIPE ? END_RESET : END_ERROR;
    if (c->end == END_ERROR)
        perror("tlsclient: send");
    return -1;
}

/* Puts the first len queued wire bytes on the socket, waiting as needed. */
static bool wire_send(struct client *c, size_t len)
{
    while (len > 0) {
        ssize_t n = wire_send_some(c, len);
        if (n < 0)
            return false;
        len -= (size_t)n;
        if (len > 0 && n == 0 && !wait_fd(c, POLLOUT))
            return false;
    }
    return true;
}

static bool wire_flush(struct client *c)
{
    return wire_send(c, wire_pending(c));
}

/* Sets c->end from a failed SSL call whose error is err. */
static void note_ssl_end(struct client *c, int err, int sys_errno)
{
    unsigned long e = ERR_peek_error();

    if (err == SSL_ERROR_ZERO_RETURN)
        c->end = END_CLOSE_NOTIFY;
    else if (err == SSL_ERROR_SYSCALL && sys_errno == ECONNRESET)
        c->end = END_RESET;
    else if ((err == SSL_ERROR_SYSCALL && sys_errno == 0) ||
             (err == SSL_ERROR_SSL && ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING))
        c->end = END_EOF;
    else
        c->end = END_ERROR;
    if (c->end == END_ERROR)
        openssl_fail(err == SSL_ERROR_SYSCALL ? strerror(sys_errno) : "TLS error");
    ERR_clear_error();
}

/* One SSL_read without waiting. Returns the bytes read, 0 when none are
 * there yet, -1 when the connection ended (c->end says how). */
static ssize_t tls_recv_now(struct client *c, void *buf, size_t len)
{
    size_t n = 0;

    ERR_clear_error();
    errno = 0;
    int ok = SSL_read_ex(c->ssl, buf, len, &n);
    int sys_errno = errno;
    int err = ok ? SSL_ERROR_NONE : SSL_get_error(c->ssl, 0);

    if (ok)
        return (ssize_t)n;
    if (err == SSL_ERROR_WANT_READ)
        return 0;
    note_ssl_end(c, err, sys_errno);
    return -1;
}

/* Reads up to len bytes, waiting for them. Returns the count, or 0 when the
 * connection ended (c->end says how). */
static size_t tls_recv(struct client *c, void *buf, size_t len)
{
    for (;;) {
        ssize_t n = tls_recv_now(c, buf, len);
        /* Reading may answer the server (a key update): that goes out now. */
        if (!wire_flush(c))
            return 0;
        if (n > 0)
            return (size_t)n;
        if (n < 0 || !wait_fd(c, POLLIN))
            return 0;
    }
}

/* Encrypts len bytes into the wire BIO; nothing goes on the socket yet. */
static bool tls_encrypt(struct client *c, const void *buf, size_t len)
{
    size_t n;

    ERR_clear_error();
    if (len > 0 && SSL_write_ex(c->ssl, buf, len, &n) != 1) {
        openssl_fail("SSL_write");
        c->end = END_ERROR;
        return false;
    }
    return true;
}

/* With late_finished, our last handshake flight stays queued: it leaves
 * with the first send, in the same segment as the request. */
static bool handshake(struct client *c)
{
    for (;;) {
        ERR_clear_error();
        int r = SSL_connect(c->ssl);
        int err = r == 1 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, r);
        if (err == SSL_ERROR_NONE && c->late_finished)
            return true;
        if (!wire_flush(c))
            return false;
        if (err == SSL_ERROR_NONE)
            return true;
        if (err != SSL_ERROR_WANT_READ) {
            openssl_fail("handshake");
            return false;
        }
        if (!wait_fd(c, POLLIN))
            return false;
    }
}

/* ------------------------------------------------------------------------ */
/* Actions                                                                   */

/* Reads all of stdin into a new buffer (caller frees); NULL on errors. */
static char *read_stdin(size_t *len)
{
    char *buf = malloc(STDIN_MAX);
    ssize_t n;

    *len = 0;
    while (buf != NULL && *len < STDIN_MAX &&
           (n = read(STDIN_FILENO, buf + *len, STDIN_MAX - *len)) > 0)
        *len += (size_t)n;
    return buf;
}

static bool act_send(struct client *c, const char *data, size_t len)
{
    for (size_t off = 0; off < len;) {
        size_t part = len - off < RECORD_MAX ? len - off : RECORD_MAX;
        if (!tls_encrypt(c, data + off, part))
            return false;
        off += part;
    }
    return wire_flush(c);
}

static bool act_send_bytewise(struct client *c, const char *data, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (!tls_encrypt(c, data + i, 1) || !wire_send(c, wire_pending(c) / 2))
            return false;
        sleep_ms(1);
        if (!wire_flush(c))
            return false;
    }
    return true;
}

/* The rest of the record stays unsent for good: the connection can carry
 * nothing more from us. */
static bool act_send_half(struct client *c, const char *data, size_t len)
{
    if (len > RECORD_MAX) {
        fprintf(stderr, "tlsclient: send-half takes at most %d bytes\n", RECORD_MAX);
        return false;
    }
    if (!tls_encrypt(c, data, len) || !wire_send(c, wire_pending(c) / 2))
        return false;
    (void)BIO_reset(c->wire);
    return true;
}

static bool act_head(struct client *c)
{
    char last[4] = {0};
    char ch;

    /* One byte at a time: not a byte past the head is consumed. */
    while (tls_recv(c, &ch, 1) == 1) {
        fputc(ch, stdout);
        memmove(last, last + 1, sizeof(last) - 1);
        last[sizeof(last) - 1] = ch;
        if (memcmp(last, "\r\n\r\n", sizeof(last)) == 0)
            return true;
    }
    fprintf(stderr, "tlsclient: the connection ended inside a response head\n");
    return false;
}

/* Reads total bytes (SIZE_MAX: until the end) in reads of at most step
 * bytes, pausing pause_ms after each. */
static bool act_read(struct client *c, size_t total, size_t step, long pause_ms)
{
    static char buf[65536];
    size_t got = 0;

    if (step == 0 || step > sizeof(buf))
        step = sizeof(buf);
    while (got < total) {
        size_t want = total - got < step ? total - got : step;
        size_t n = tls_recv(c, buf, want);
        if (n == 0)
            break;
        fwrite(buf, 1, n, stdout);
        got += n;
        if (pause_ms > 0)
            sleep_ms(pause_ms);
    }
    if (total == SIZE_MAX)
        return c->end != END_TIMEOUT && c->end != END_ERROR;
    if (got < total)
        fprintf(stderr, "tlsclient: the connection ended after %zu of %zu bytes\n", got, total);
    return got == total;
}

/* Checks n echoed bytes, the ones from stream offset off on. */
static bool echo_intact(const char *buf, size_t n, size_t off)
{
    for (size_t i = 0; i < n; i++) {
        if (buf[i] != PATTERN[(off + i) % PATTERN_LEN]) {
            fprintf(stderr, "tlsclient: tunnel: byte %zu came back wrong\n", off + i);
            return false;
        }
    }
    return true;
}

/* Encrypts the next pattern bytes while the wire queue is short. */
static bool tunnel_produce(struct client *c, size_t *sent, size_t total)
{
    char chunk[RECORD_MAX];

    while (*sent < total && wire_pending(c) < TUNNEL_WIRE_HIGH) {
        size_t n = total - *sent < sizeof(chunk) ? total - *sent : sizeof(chunk);
        for (size_t i = 0; i < n; i++)
            chunk[i] = PATTERN[(*sent + i) % PATTERN_LEN];
        if (!tls_encrypt(c, chunk, n))
            return false;
        *sent += n;
    }
    return true;
}

/* Takes what the socket holds, checking it against the pattern. The server
 * may end the connection right after the last byte it owes. */
static bool tunnel_consume(struct client *c, size_t *echoed, size_t total)
{
    static char buf[65536];
    ssize_t n;

    while ((n = tls_recv_now(c, buf, sizeof(buf))) > 0) {
        if (!echo_intact(buf, (size_t)n, *echoed))
            return false;
        *echoed += (size_t)n;
    }
    if (n < 0 && *echoed < total)
        fprintf(stderr, "tlsclient: tunnel: end: %s after %zu bytes\n", end_names[c->end], *echoed);
    return n == 0 || *echoed == total;
}

/* Queues close_notify behind what is queued on the wire. */
static bool queue_close_notify(struct client *c)
{
    ERR_clear_error();
    if (SSL_shutdown(c->ssl) < 0) {
        openssl_fail("SSL_shutdown");
        c->end = END_ERROR;
        return false;
    }
    return true;
}

/* Both directions at once: a tunnel that reads only after writing would
 * deadlock once the echo fills the socket buffers. With close, our
 * close_notify follows the last byte sent, while the echo is still coming. */
static bool act_tunnel(struct client *c, size_t total, bool close)
{
    size_t sent = 0, echoed = 0;
    bool closed = false;

    while (echoed < total) {
        if (!tunnel_produce(c, &sent, total))
            return false;
        if (close && !closed && sent == total && !(closed = queue_close_notify(c)))
            return false;
        struct pollfd p = {.fd = c->fd, .events = POLLIN | (wire_pending(c) ? POLLOUT : 0)};
        long left = c->deadline_ms - now_ms();
        if (left <= 0 || poll(&p, 1, (int)left) <= 0) {
            c->end = END_TIMEOUT;
            fprintf(stderr, "tlsclient: tunnel: %zu sent, %zu echoed when the time ran out\n", sent,
                    echoed);
            return false;
        }
        if ((p.revents & POLLOUT) && wire_send_some(c, wire_pending(c)) < 0)
            return false;
        if ((p.revents & (POLLIN | POLLHUP | POLLERR)) && !tunnel_consume(c, &echoed, total))
            return false;
    }
    fprintf(stderr, "tlsclient: tunnel: %zu bytes each way, intact\n", total);
    return wire_flush(c);
}

static bool act_close_notify(struct client *c)
{
    return queue_close_notify(c) && wire_flush(c);
}

/* TLS 1.3: new keys for our side, and the server is asked to renew its
 * own (its KeyUpdate comes among the next records it sends). */
static bool act_key_update(struct client *c)
{
    ERR_clear_error();
    if (SSL_key_update(c->ssl, SSL_KEY_UPDATE_REQUESTED) != 1 || SSL_do_handshake(c->ssl) != 1) {
        openssl_fail("key update");
        return false;
    }
    return wire_flush(c);
}

/* TLS 1.2: asks for a new handshake, which the server should refuse. */
static bool act_renegotiate(struct client *c)
{
    ERR_clear_error();
    if (SSL_renegotiate(c->ssl) != 1) {
        openssl_fail("renegotiate");
        return false;
    }
    (void)SSL_do_handshake(c->ssl); /* sends the ClientHello; the answer is read later */
    ERR_clear_error();
    return wire_flush(c);
}

static bool act_reset(struct client *c)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};

    if (setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) < 0) {
        perror("tlsclient: SO_LINGER");
        return false;
    }
    close(c->fd);
    c->fd = -1;
    return true;
}

/* Parses "A:B:C" into three numbers. */
static bool parse_triple(const char *s, size_t *a, long *b, size_t *c)
{
    char tail;

    return sscanf(s, "%zu:%ld:%zu%c", a, b, c, &tail) == 3;
}

/* Runs argv[i], taking its argument if it has one. Returns the index of
 * the next action, or -1 when it failed. */
static int run_action(struct client *c, char **argv, int argc, int i, const char *in, size_t inlen)
{
    const char *a = argv[i];
    const char *arg = i + 1 < argc ? argv[i + 1] : NULL;
    size_t n, step;
    long ms;

    if (strcmp(a, "send") == 0)
        return act_send(c, in, inlen) ? i + 1 : -1;
    if (strcmp(a, "send-bytewise") == 0)
        return act_send_bytewise(c, in, inlen) ? i + 1 : -1;
    if (strcmp(a, "send-half") == 0)
        return act_send_half(c, in, inlen) ? i + 1 : -1;
    if (strcmp(a, "head") == 0)
        return act_head(c) ? i + 1 : -1;
    if (strcmp(a, "read") == 0)
        return act_read(c, SIZE_MAX, 0, 0) ? i + 1 : -1;
    if (strcmp(a, "close-notify") == 0)
        return act_close_notify(c) ? i + 1 : -1;
    if (strcmp(a, "key-update") == 0)
        return act_key_update(c) ? i + 1 : -1;
    if (strcmp(a, "renegotiate") == 0)
        return act_renegotiate(c) ? i + 1 : -1;
    if (strcmp(a, "reset") == 0)
        return act_reset(c) ? argc : -1;
    if (strcmp(a, "read-n") == 0 && arg != NULL && sscanf(arg, "%zu", &n) == 1)
        return act_read(c, n, 0, 0) ? i + 2 : -1;
    if (strcmp(a, "tunnel") == 0 && arg != NULL && sscanf(arg, "%zu", &n) == 1)
        return act_tunnel(c, n, false) ? i + 2 : -1;
    if (strcmp(a, "tunnel-close") == 0 && arg != NULL && sscanf(arg, "%zu", &n) == 1)
        return act_tunnel(c, n, true) ? i + 2 : -1;
    if (strcmp(a, "slow-read") == 0 && arg != NULL && parse_triple(arg, &step, &ms, &n))
        return act_read(c, n, step, ms) ? i + 2 : -1;
    fprintf(stderr, "tlsclient: unknown action or bad argument: %s\n", a);
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Set-up                                                                    */

static int connect_port(int port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);

    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0)
        return -1;
    /* Each half record must leave as its own segment. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

/* A client SSL reading from the socket and writing into a memory BIO. */
static SSL *client_ssl(SSL_CTX *ctx, int fd, BIO **wire)
{
    SSL *ssl = SSL_new(ctx);
    BIO *rbio = BIO_new_socket(fd, BIO_NOCLOSE);

    *wire = BIO_new(BIO_s_mem());
    if (ssl == NULL || rbio == NULL || *wire == NULL) {
        SSL_free(ssl);
        BIO_free(rbio);
        BIO_free(*wire);
        return NULL;
    }
    SSL_set_bio(ssl, rbio, *wire); /* ssl owns both from here */
    SSL_set_connect_state(ssl);
    return ssl;
}

/* The connect completes (or fails) once the socket is writable. */
static bool connect_done(struct client *c)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (!wait_fd(c, POLLOUT))
        return false;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0) {
        fprintf(stderr, "tlsclient: connect: %s\n", strerror(err != 0 ? err : errno));
        return false;
    }
    return true;
}

static SSL_CTX *client_ctx(int version)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    if (ctx != NULL && version != 0 &&
        (SSL_CTX_set_min_proto_version(ctx, version) != 1 ||
         SSL_CTX_set_max_proto_version(ctx, version) != 1)) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: tlsclient PORT [--tls1.2 | --tls1.3] [--late-finished] [--timeout-ms N] "
            "ACTION...\n"
            "actions: send send-bytewise send-half head read read-n N slow-read B:MS:N\n"
            "         tunnel N tunnel-close N close-notify key-update renegotiate reset\n");
}

struct options {
    int port;
    int version; /* 0: whatever the server and we agree on */
    long timeout_ms;
    bool late_finished;
};

/* Parses the options; returns the index of the first action, or -1. */
static int parse_options(int argc, char **argv, struct options *o)
{
    int i = 2;

    if (argc < 3 || (o->port = atoi(argv[1])) <= 0 || o->port > 65535)
        return -1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--tls1.2") == 0)
            o->version = TLS1_2_VERSION;
        else if (strcmp(argv[i], "--tls1.3") == 0)
            o->version = TLS1_3_VERSION;
        else if (strcmp(argv[i], "--late-finished") == 0)
            o->late_finished = true;
        else if (strcmp(argv[i], "--timeout-ms") == 0 && i + 1 < argc)
            o->timeout_ms = atol(argv[++i]);
        else
            return -1;
    }
    return i < argc ? i : -1;
}

/* Runs the actions from argv[first] on. Returns the exit status. */
static int run(struct client *c, int argc, char **argv, int first)
{
    size_t inlen = 0;
    char *in = NULL;
    int i = first, rc = 0;

    for (int k = first; k < argc; k++) {
        if (strncmp(argv[k], "send", 4) == 0 && in == NULL && (in = read_stdin(&inlen)) == NULL) {
            perror("tlsclient: stdin");
            return 2;
        }
    }
    if (!connect_done(c) || !handshake(c))
        rc = 2;
    while (rc == 0 && i < argc)
        if ((i = run_action(c, argv, argc, i, in, inlen)) < 0)
            rc = 2;
    if (c->end != END_NONE)
        fprintf(stderr, "tlsclient: end: %s\n", end_names[c->end]);
    if (c->end == END_TIMEOUT)
        rc = 1;
    free(in);
    return rc;
}

int main(int argc, char **argv)
{
    struct options o = {.timeout_ms = 10000};
    int first = parse_options(argc, argv, &o);
    struct client c = {.fd = -1, .late_finished = o.late_finished};
    SSL_CTX *ctx;
    int rc;

    if (first < 0) {
        usage();
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    c.deadline_ms = now_ms() + o.timeout_ms;
    ctx = client_ctx(o.version);
    c.fd = ctx != NULL ? connect_port(o.port) : -1;
    c.ssl = c.fd >= 0 ? client_ssl(ctx, c.fd, &c.wire) : NULL;
    if (c.ssl == NULL) {
        perror("tlsclient: set-up");
        rc = 2;
    } else {
        rc = run(&c, argc, argv, first);
    }
    fflush(stdout);
    SSL_free(c.ssl);
    SSL_CTX_free(ctx);
    if (c.fd >= 0)
        close(c.fd);
    return rc;
}
