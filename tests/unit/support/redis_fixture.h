/* redis_fixture.h - a real redis-server for unit tests, on a free loopback
 * port, in a folder of its own, gone when the test ends.
 *
 * The server runs with no persistence, a unix socket beside its port, and
 * DEBUG enabled for local clients (tests use DEBUG SLEEP to play a slow
 * Redis). It is started with its parent-death signal set, so a test that
 * crashes leaves no server behind.
 */
#ifndef SY_TESTS_REDIS_FIXTURE_H
#define SY_TESTS_REDIS_FIXTURE_H

#include <sys/types.h>

struct redis_fixture {
    pid_t pid;         /* 0 while stopped */
    int port;          /* kept across redis_fixture_restart() */
    char dir[64];      /* the server's folder */
    char sock[128];    /* its unix socket: <dir>/redis.sock */
    char url[160];     /* redis://[:password@]127.0.0.1:<port>/0 */
    char password[64]; /* "" when none */
};

/* Starts a server (password NULL or "" for none) and waits until it answers
 * PING. Returns 0, or -1 with the reason on stderr. */
int redis_fixture_start(struct redis_fixture *f, const char *password);

/* Stops the server (SIGKILL: a crash, not a shutdown) and waits for it. */
void redis_fixture_kill(struct redis_fixture *f);

/* Starts it again on the same port and socket, with the same password; the
 * data is gone. Returns 0 or -1. */
int redis_fixture_restart(struct redis_fixture *f);

/* Kills the server if running and removes its folder. */
void redis_fixture_stop(struct redis_fixture *f);

/* Runs one command through a short-lived blocking connection (the test's
 * own view of Redis, independent of the code under test) and returns the
 * reply as text: an integer or status as its digits/text, a string as is,
 * nil as "(nil)", an error as "ERR...". Returns 0 or -1 (no connection). */
int redis_fixture_cmd(const struct redis_fixture *f, char *out, size_t out_len, const char *fmt,
                      ...);

#endif
