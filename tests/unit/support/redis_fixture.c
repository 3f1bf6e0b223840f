/* redis_fixture.c - a real redis-server for unit tests. */
#include "tests/unit/support/redis_fixture.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#define READY_TIMEOUT_MS 5000

/* A port nobody listens on now. Another process may take it before the
 * server binds; the start then fails and is retried with another. */
static int free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int port = -1;

    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static redisContext *connect_to(const struct redis_fixture *f)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", f->port, tv);

    if (c == NULL || c->err) {
        redisFree(c);
        return NULL;
    }
    if (f->password[0] != '\0') {
        redisReply *r = redisCommand(c, "AUTH %s", f->password);
        bool ok = r != NULL && r->type == REDIS_REPLY_STATUS;
        freeReplyObject(r);
        if (!ok) {
            redisFree(c);
            return NULL;
        }
    }
    return c;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

static int spawn(struct redis_fixture *f)
{
    char port[16];
    pid_t parent = getpid();
    pid_t pid;

    snprintf(port, sizeof(port), "%d", f->port);
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        const char *argv[32];
        int n = 0;
        int devnull = open("/dev/null", O_WRONLY);

        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        if (devnull >= 0) {
            dup2(devnull, STDOUT_FILENO);
            close(devnull);
        }
        argv[n++] = "redis-server";
        argv[n++] = "--port";
        argv[n++] = port;
        argv[n++] = "--bind";
        argv[n++] = "127.0.0.1";
        argv[n++] = "--unixsocket";
        argv[n++] = f->sock;
        argv[n++] = "--dir";
        argv[n++] = f->dir;
        argv[n++] = "--save";
        argv[n++] = "";
        argv[n++] = "--appendonly";
        argv[n++] = "no";
        argv[n++] = "--enable-debug-command";
        argv[n++] = "local";
        if (f->password[0] != '\0') {
            argv[n++] = "--requirepass";
            argv[n++] = f->password;
        }
        argv[n] = NULL;
        execvp("redis-server", (char *const *)argv);
        fprintf(stderr, "redis_fixture: cannot run redis-server: %s\n", strerror(errno));
        _exit(127);
    }
    f->pid = pid;
    return 0;
}

/* Waits until the server answers PING; -1 when it died or took too long. */
static int wait_ready(struct redis_fixture *f)
{
    for (int waited = 0; waited < READY_TIMEOUT_MS; waited += 10) {
        int status;
        redisContext *c;

        if (waitpid(f->pid, &status, WNOHANG) == f->pid) {
            f->pid = 0;
            return -1;
        }
        c = connect_to(f);
        if (c != NULL) {
            redisReply *r = redisCommand(c, "PING");
            bool ok = r != NULL && r->type == REDIS_REPLY_STATUS;
            freeReplyObject(r);
            redisFree(c);
            if (ok)
                return 0;
        }
        sleep_ms(10);
    }
    return -1;
}

static int start_on(struct redis_fixture *f)
{
    if (spawn(f) < 0)
        return -1;
    if (wait_ready(f) == 0)
        return 0;
    redis_fixture_kill(f);
    return -1;
}

int redis_fixture_start(struct redis_fixture *f, const char *password)
{
    memset(f, 0, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/sy-redis-XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        fprintf(stderr, "redis_fixture: mkdtemp: %s\n", strerror(errno));
        return -1;
    }
    snprintf(f->sock, sizeof(f->sock), "%s/redis.sock", f->dir);
    snprintf(f->password, sizeof(f->password), "%s", password != NULL ? password : "");
    for (int attempt = 0; attempt < 5; attempt++) {
        f->port = free_port();
        if (f->port < 0)
            break;
        snprintf(f->url, sizeof(f->url), "redis://%s%s%s127.0.0.1:%d/0", f->password[0] ? ":" : "",
                 f->password, f->password[0] ? "@" : "", f->port);
        if (start_on(f) == 0)
            return 0;
    }
    fprintf(stderr, "redis_fixture: redis-server did not start (is it installed?)\n");
    rmdir(f->dir);
    return -1;
}

void redis_fixture_kill(struct redis_fixture *f)
{
    if (f->pid <= 0)
        return;
    kill(f->pid, SIGKILL);
    while (waitpid(f->pid, NULL, 0) < 0 && errno == EINTR)
        ;
    f->pid = 0;
}

int redis_fixture_restart(struct redis_fixture *f)
{
    redis_fixture_kill(f);
    /* The port was ours a moment ago; a server in TIME_WAIT does not stop a
     * new bind (redis sets SO_REUSEADDR). */
    for (int attempt = 0; attempt < 20; attempt++) {
        if (start_on(f) == 0)
            return 0;
        sleep_ms(50);
    }
    fprintf(stderr, "redis_fixture: redis-server did not restart on port %d\n", f->port);
    return -1;
}

void redis_fixture_stop(struct redis_fixture *f)
{
    char path[192];

    redis_fixture_kill(f);
    snprintf(path, sizeof(path), "%s/redis.sock", f->dir);
    unlink(path);
    if (f->dir[0] != '\0')
        rmdir(f->dir);
    f->dir[0] = '\0';
}

int redis_fixture_cmd(const struct redis_fixture *f, char *out, size_t out_len, const char *fmt,
                      ...)
{
    redisContext *c = connect_to(f);
    redisReply *r;
    va_list ap;

    if (c == NULL)
        return -1;
    va_start(ap, fmt);
    r = redisvCommand(c, fmt, ap);
    va_end(ap);
    if (r == NULL) {
        redisFree(c);
        return -1;
    }
    switch (r->type) {
    case REDIS_REPLY_INTEGER:
        snprintf(out, out_len, "%lld", r->integer);
        break;
    case REDIS_REPLY_NIL:
        snprintf(out, out_len, "(nil)");
        break;
    case REDIS_REPLY_ARRAY:
        snprintf(out, out_len, "(array of %zu)", r->elements);
        break;
    default: /* string, status, error */
        snprintf(out, out_len, "%.*s", (int)r->len, r->str);
        break;
    }
    freeReplyObject(r);
    redisFree(c);
    return 0;
}
