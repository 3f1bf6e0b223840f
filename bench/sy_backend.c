/* sy_backend.c - sy-backend: a fast, fault-injecting HTTP/1.1 backend for
 * switchyard's tests, demos and benchmarks. This file holds the command line
 * and the process's life: start the workers, wait for SIGTERM or SIGINT,
 * stop them, exit 0.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "bench/backend_fault.h"
#include "bench/backend_reply.h"
#include "bench/backend_worker.h"
#include "conf/addr.h"
#include "conf/log.h"

#define PROG "sy-backend"
#define THREADS_MAX 64
#define EXIT_USAGE 2

struct options {
    struct conf_addr addr;
    const char *name;
    unsigned threads;
    long long body_bytes; /* -1: the default "ok\n" */
    struct backend_fault fault;
    bool quiet;
    bool verbose;
    const char *record;   /* --record FILE; NULL: none */
    const char *tls_cert; /* --tls-cert FILE; NULL: plain HTTP */
    const char *tls_key;  /* --tls-key FILE */
};

static const char usage_text[] =
    "NAME\n"
    "    sy-backend - fast HTTP/1.1 backend with fault injection, for tests, demos\n"
    "    and benchmarks\n"
    "\n"
    "SYNOPSIS\n"
    "    sy-backend --listen ADDR --name NAME [--threads N] [--body-bytes N]\n"
    "               [--latency-ms N] [--fail-rate R] [--fail-status S]\n"
    "               [--record FILE] [--tls-cert FILE --tls-key FILE]\n"
    "               [--quiet | --verbose]\n"
    "    sy-backend --help\n"
    "\n"
    "DESCRIPTION\n"
    "    Serves HTTP/1.1 (keep-alive, pipelining, Content-Length and chunked\n"
    "    request bodies) on ADDR. Every answer carries \"X-Backend: NAME\". When\n"
    "    ready it prints \"sy-backend NAME listening on ADDR\" on stderr.\n"
    "\n"
    "OPTIONS\n"
    "    --listen ADDR      IPv4 \"127.0.0.1:9001\", IPv6 \"[::1]:9001\" or\n"
    "                       \"localhost:9001\". Port 0 picks a free port; the\n"
    "                       ready line shows which.\n"
    "    --name NAME        The X-Backend value: 1 to 128 visible ASCII characters.\n"
    "    --threads N        Worker threads, 1..64 (default 1). Each has its own\n"
    "                       event loop and SO_REUSEPORT listener. With 1 the bind\n"
    "                       is exclusive: a port in use is an error.\n"
    "    --body-bytes N     Body of the default answer: N bytes of \"switchyard\\n\"\n"
    "                       repeated (0..67108864). Default: the 3 bytes \"ok\\n\".\n"
    "    --latency-ms N     Delay before every answer, 0..3600000 (default 0).\n"
    "    --fail-rate R      Share of requests answered with --fail-status, 0..1.\n"
    "    --fail-status S    Status of failed answers, 200..599 (default 500).\n"
    "    --record FILE      Append one line per request to FILE as soon as its\n"
    "                       body has been read: \"METHOD TARGET BODY_BYTES\"\n"
    "                       (e.g. \"GET /a 0\"); a request it refuses is written\n"
    "                       \"! STATUS\". For tests that must know exactly what\n"
    "                       reached the backend.\n"
    "    --tls-cert FILE    Speak TLS (1.2 or 1.3) on every connection, with the\n"
    "                       PEM certificate chain in FILE. Answers on TLS\n"
    "                       connections carry \"X-TLS-SNI: NAME\" (the server name\n"
    "                       the client sent, \"-\" for none) and \"X-TLS-Resumed:\n"
    "                       yes|no\" (an abbreviated handshake resumed a session).\n"
    "    --tls-key FILE     The PEM private key of --tls-cert (both or neither).\n"
    "    --quiet            Print errors only (no ready line).\n"
    "    --verbose          Print one line per answer.\n"
    "    --help             Print this text and exit.\n"
    "\n"
    "PATHS\n"
    "    any path           200, the default body, Content-Type: text/plain.\n"
    "    GET /healthz       health_status (default 200), body \"ok\\n\".\n"
    "    GET /__fault       The fault mode as JSON.\n"
    "    POST /__fault      Changes the fault mode: a JSON object with any of\n"
    "                       fail_rate (0..1), fail_status (200..599),\n"
    "                       latency_ms (0..3600000), reset_rate (0..1),\n"
    "                       hang (true|false), health_status (200..599).\n"
    "                       Answers the new mode; 400 on bad JSON, an unknown\n"
    "                       key or a value out of range (nothing changes then).\n"
    "    DELETE /__fault    Restores the fault mode of the command line.\n"
    "    GET /__stats       {\"name\",\"connections\",\"requests\",\"active_connections\",\n"
    "                       \"first_fault_ms\",\"last_request_ms\"}: connections\n"
    "                       accepted and requests answered since start; the\n"
    "                       CLOCK_REALTIME milliseconds of the first answer the\n"
    "                       fault mode touched since /__fault last changed it, and\n"
    "                       of the last request taken (the two control paths\n"
    "                       left out); null for never.\n"
    "    POST /__sink       Reads the body as it streams, stores none of it, and\n"
    "                       answers {\"bytes\":N,\"sha256\":\"HEX\"}.\n"
    "    GET /__bytes?n=N[&chunked=1][&close=1]\n"
    "                       N bytes (up to 2^40) of \"switchyard\\n\" repeated, with\n"
    "                       Content-Length, or in chunks of at most 64 KiB; made as\n"
    "                       the connection drains. close=1: Connection: close, and\n"
    "                       the connection closes right after the body.\n"
    "    ANY /__echo        The request head exactly as received (through its\n"
    "                       empty line), then the request body (at most 1 MiB,\n"
    "                       else 413). Headers X-Head-Bytes and X-Body-Bytes.\n"
    "    GET /__close       \"bye\\n\" without a length, then closes the connection.\n"
    "    ANY /__status/NNN  An answer with status NNN (200..599).\n"
    "    Upgrade            A request with \"Connection: upgrade\", an Upgrade header\n"
    "                       and no body gets 101 with the same Upgrade header, then\n"
    "                       every byte it sends comes back until it closes.\n"
    "    Malformed requests get 400 (431 for an oversized head) and a close.\n"
    "\n"
    "FAULTS\n"
    "    Faults apply to every request but those to /__fault and /__stats:\n"
    "    reset_rate closes with a TCP reset and no answer, hang reads and never\n"
    "    answers, latency_ms delays the answer (the event loop keeps running),\n"
    "    fail_rate answers fail_status (/healthz excepted: it answers\n"
    "    health_status).\n"
    "\n"
    "EXIT STATUS\n"
    "    0 after SIGTERM or SIGINT, 1 when it cannot start (for example the\n"
    "    address is in use), 2 on a bad command line.\n"
    "\n"
    "EXAMPLES\n"
    "    sy-backend --listen 127.0.0.1:9001 --name blue\n"
    "    curl -d '{\"fail_rate\":0.5,\"fail_status\":503}' http://127.0.0.1:9001/__fault\n"
    "    curl -s 'http://127.0.0.1:9001/__bytes?n=1048576' | sha256sum\n"
    "    sy-backend --listen 127.0.0.1:9443 --name green --tls-cert c.pem --tls-key k.pem\n";

static void usage_hint(void)
{
    fprintf(stderr, "Try '%s --help' for more information.\n", PROG);
}

/* Strict decimal: digits only, no sign, no spaces, within min..max. */
static int parse_uint(const char *opt, const char *s, unsigned long long min,
                      unsigned long long max, unsigned long long *out)
{
    char *end;
    unsigned long long v;

    errno = 0;
    if (s[0] < '0' || s[0] > '9')
        goto bad;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        goto bad;
    *out = v;
    return 0;
bad:
    fprintf(stderr, "%s: %s: '%s' is not an integer from %llu to %llu\n", PROG, opt, s, min, max);
    return -1;
}

/* Strict rate: a plain decimal number from 0 to 1. */
static int parse_rate(const char *opt, const char *s, double *out)
{
    char *end;
    double v;

    errno = 0;
    if (!((s[0] >= '0' && s[0] <= '9') || s[0] == '.'))
        goto bad;
    v = strtod(s, &end);
    if (errno != 0 || *end != '\0' || !isfinite(v) || v < 0.0 || v > 1.0)
        goto bad;
    *out = v;
    return 0;
bad:
    fprintf(stderr, "%s: %s: '%s' is not a number from 0 to 1\n", PROG, opt, s);
    return -1;
}

/* Parses --listen. conf_addr_parse wants a real port; port 0 (the kernel
 * picks one) is parsed as port 1 and then set to 0. */
static int parse_listen(const char *arg, struct conf_addr *addr)
{
    size_t n = strlen(arg);
    char tmp[128];
    const char *why;

    if (conf_addr_parse(arg, addr, &why) == 0)
        return 0;
    if (n >= 3 && n < sizeof(tmp) && strcmp(arg + n - 2, ":0") == 0) {
        const char *why0;
        snprintf(tmp, sizeof(tmp), "%.*s:1", (int)(n - 2), arg);
        if (conf_addr_parse(tmp, addr, &why0) == 0) {
            if (addr->ss.ss_family == AF_INET6)
                ((struct sockaddr_in6 *)&addr->ss)->sin6_port = 0;
            else
                ((struct sockaddr_in *)&addr->ss)->sin_port = 0;
            addr->text[strlen(addr->text) - 1] = '0';
            return 0;
        }
    }
    fprintf(stderr, "%s: --listen: '%s': %s\n", PROG, arg, why);
    return -1;
}

/* Takes one option's argument into o. Returns 0 or -1 (message printed). */
static int take_option(int c, const char *arg, struct options *o)
{
    unsigned long long v;

    switch (c) {
    case 'l':
        return parse_listen(arg, &o->addr);
    case 'n':
        if (backend_reply_name_ok(arg)) {
            o->name = arg;
            return 0;
        }
        fprintf(stderr, "%s: --name: '%s' must be 1 to %d visible ASCII characters\n", PROG, arg,
                BACKEND_REPLY_NAME_MAX);
        return -1;
    case 't':
        if (parse_uint("--threads", arg, 1, THREADS_MAX, &v) < 0)
            return -1;
        o->threads = (unsigned)v;
        return 0;
    case 'b':
        if (parse_uint("--body-bytes", arg, 0, BACKEND_REPLY_BODY_MAX, &v) < 0)
            return -1;
        o->body_bytes = (long long)v;
        return 0;
    case 'd':
        if (parse_uint("--latency-ms", arg, 0, BACKEND_FAULT_LATENCY_MAX_MS, &v) < 0)
            return -1;
        o->fault.latency_ms = (uint32_t)v;
        return 0;
    case 'r':
        return parse_rate("--fail-rate", arg, &o->fault.fail_rate);
    case 's':
        if (parse_uint("--fail-status", arg, 200, 599, &v) < 0)
            return -1;
        o->fault.fail_status = (int)v;
        return 0;
    case 'R':
        o->record = arg;
        return 0;
    case 'C':
        o->tls_cert = arg;
        return 0;
    case 'K':
        o->tls_key = arg;
        return 0;
    default:
        return -1;
    }
}

/* Returns 0 to run, 1 after --help, or -1 on a bad command line. */
static int parse_options(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"name", required_argument, NULL, 'n'},
        {"threads", required_argument, NULL, 't'},
        {"body-bytes", required_argument, NULL, 'b'},
        {"latency-ms", required_argument, NULL, 'd'},
        {"fail-rate", required_argument, NULL, 'r'},
        {"fail-status", required_argument, NULL, 's'},
        {"record", required_argument, NULL, 'R'},
        {"tls-cert", required_argument, NULL, 'C'},
        {"tls-key", required_argument, NULL, 'K'},
        {"quiet", no_argument, NULL, 'q'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool have_listen = false;
    int c;

    memset(o, 0, sizeof(*o));
    o->threads = 1;
    o->body_bytes = -1;
    backend_fault_default(&o->fault);
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        if (c == 'h') {
            fputs(usage_text, stdout);
            return 1;
        } else if (c == 'q' || c == 'v') {
            *(c == 'q' ? &o->quiet : &o->verbose) = true;
        } else if (c == ':') {
            fprintf(stderr, "%s: option '%s' needs an argument\n", PROG, argv[optind - 1]);
            return -1;
        } else if (c == '?') {
            fprintf(stderr, "%s: unknown option '%s'\n", PROG, argv[optind - 1]);
            return -1;
        } else if (take_option(c, optarg, o) < 0) {
            return -1;
        } else {
            have_listen |= c == 'l';
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", PROG, argv[optind]);
        return -1;
    }
    if (!have_listen || !o->name) {
        fprintf(stderr, "%s: %s is required\n", PROG, have_listen ? "--name" : "--listen");
        return -1;
    }
    if (!o->tls_cert != !o->tls_key) {
        fprintf(stderr, "%s: %s needs %s\n", PROG, o->tls_cert ? "--tls-cert" : "--tls-key",
                o->tls_cert ? "--tls-key" : "--tls-cert");
        return -1;
    }
    if (o->quiet && o->verbose) {
        fprintf(stderr, "%s: --quiet and --verbose exclude each other\n", PROG);
        return -1;
    }
    return 0;
}

struct backend {
    struct backend_shared shared;
    struct backend_reply *reply; /* shared.reply, owned here */
    struct backend_worker *workers;
    unsigned nworkers;
    struct event *sigterm;
    struct event *sigint;
};

/* Stops every worker; the main thread's loop (worker 0) returns last. */
static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct backend *b = arg;

    log_info("%s: signal %d: stopping", backend_reply_name(b->shared.reply), (int)sig);
    for (unsigned i = 0; i < b->nworkers; i++)
        backend_worker_stop(&b->workers[i]);
}

static void backend_teardown(struct backend *b)
{
    for (unsigned i = 1; i < b->nworkers; i++)
        backend_worker_stop(&b->workers[i]);
    for (unsigned i = 1; i < b->nworkers; i++)
        backend_worker_join(&b->workers[i]);
    if (b->sigterm)
        event_free(b->sigterm);
    if (b->sigint)
        event_free(b->sigint);
    for (unsigned i = 0; i < b->nworkers; i++)
        backend_worker_clear(&b->workers[i]);
    free(b->workers);
    backend_fault_state_free(b->shared.fault);
    backend_reply_free(b->reply);
    SSL_CTX_free(b->shared.tls);
    if (b->shared.record)
        fclose(b->shared.record);
}

/* Opens the --record file for appending, line-buffered so that each line
 * is on disk as soon as it is written: a test reads it right after the
 * answer. Returns 0 or -1 (logged). */
static int record_open(struct backend *b, const char *path)
{
    b->shared.record = fopen(path, "ae");
    if (!b->shared.record) {
        log_error("--record: cannot open '%s': %s", path, strerror(errno));
        return -1;
    }
    setvbuf(b->shared.record, NULL, _IOLBF, 0);
    return 0;
}

/* OpenSSL names a missing file only by its library ("system lib"): say
 * what is wrong with it first. Returns 0 or -1 (logged). */
static int tls_file_check(const char *opt, const char *path)
{
    FILE *f = fopen(path, "re");

    if (!f) {
        log_error("%s %s: %s", opt, path, strerror(errno));
        return -1;
    }
    fclose(f);
    return 0;
}

/* Loads --tls-cert and --tls-key into the server context every worker
 * shares (OpenSSL lets threads make connections from one context). Returns
 * 0 or -1 (logged). */
static int tls_open(struct backend *b, const char *cert, const char *key)
{
    const char *what = "cannot create a TLS context", *file = "", *reason;
    SSL_CTX *ctx;

    if (tls_file_check("--tls-cert", cert) < 0 || tls_file_check("--tls-key", key) < 0)
        return -1;
    ctx = SSL_CTX_new(TLS_server_method());
    b->shared.tls = ctx; /* freed by backend_teardown, even on failure */
    if (!ctx)
        goto fail;
    what = "--tls-cert ";
    file = cert;
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
        goto fail;
    what = "--tls-key ";
    file = key;
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1)
        goto fail;
    return 0;
fail:
    reason = ERR_reason_error_string(ERR_peek_error()); /* the first: the cause */
    log_error("%s%s: %s", what, file, reason ? reason : "failed");
    ERR_clear_error();
    return -1;
}

/* Builds the shared state and binds every worker's listener. */
static int backend_setup(struct backend *b, struct options *o)
{
    const char *why;

    if (backend_fault_check(&o->fault, &why) < 0) {
        log_error("%s", why);
        return -1;
    }
    b->reply = backend_reply_new(o->name, o->body_bytes);
    b->shared.reply = b->reply;
    b->shared.fault = backend_fault_state_new(&o->fault);
    b->workers = calloc(o->threads, sizeof(*b->workers));
    if (!b->reply || !b->shared.fault || !b->workers) {
        log_error("out of memory");
        return -1;
    }
    b->shared.workers = b->workers;
    b->shared.verbose = o->verbose;
    if (o->record && record_open(b, o->record) < 0)
        return -1;
    if (o->tls_cert && tls_open(b, o->tls_cert, o->tls_key) < 0)
        return -1;
    for (unsigned i = 0; i < o->threads; i++) {
        b->nworkers = i + 1;
        b->shared.nworkers = b->nworkers;
        if (backend_worker_init(&b->workers[i], &b->shared, i, &o->addr, o->threads > 1) < 0)
            return -1;
    }
    b->sigterm = evsignal_new(b->workers[0].base, SIGTERM, on_signal, b);
    b->sigint = evsignal_new(b->workers[0].base, SIGINT, on_signal, b);
    if (!b->sigterm || !b->sigint || event_add(b->sigterm, NULL) < 0 ||
        event_add(b->sigint, NULL) < 0) {
        log_error("cannot watch for signals");
        return -1;
    }
    return 0;
}

/* Starts workers 1..N-1 with SIGTERM and SIGINT blocked, so that only the
 * main thread (worker 0, whose loop watches them) ever takes them. */
static int backend_start(struct backend *b)
{
    sigset_t set, old;
    int rc = 0;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    for (unsigned i = 1; i < b->nworkers && rc == 0; i++)
        rc = backend_worker_start(&b->workers[i]);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

int main(int argc, char **argv)
{
    struct options o;
    struct backend b;
    int rc;

    rc = parse_options(argc, argv, &o);
    if (rc != 0) {
        if (rc < 0)
            usage_hint();
        return rc < 0 ? EXIT_USAGE : 0;
    }
    log_setup(PROG, o.quiet ? LOG_ERROR : o.verbose ? LOG_INFO : LOG_WARN);
    /* A client that goes away mid-answer must cost an EPIPE, not the process. */
    signal(SIGPIPE, SIG_IGN);
    if (evthread_use_pthreads() < 0) {
        log_error("libevent has no pthreads support");
        return 1;
    }
    memset(&b, 0, sizeof(b));
    if (backend_setup(&b, &o) < 0 || backend_start(&b) < 0) {
        backend_teardown(&b);
        return 1;
    }
    if (!o.quiet)
        fprintf(stderr, "%s %s listening on %s\n", PROG, o.name, o.addr.text);
    rc = backend_worker_run(&b.workers[0]);
    backend_teardown(&b);
    return rc < 0 ? 1 : 0;
}
