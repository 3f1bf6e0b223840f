/* redis_conn.h - a Redis link on the main event loop that keeps itself up.
 *
 * Two hiredis async connections to one server: one for commands, one for
 * pub/sub (a subscribed connection takes no other commands). Each connects
 * with AUTH, SELECT and CLIENT SETNAME, reconnects with a capped doubling
 * backoff, and gives every command its own timer, because hiredis 0.14 has
 * no timeouts of its own: a slow or silent Redis never holds the loop.
 */
#ifndef SY_CONTROL_REDIS_CONN_H
#define SY_CONTROL_REDIS_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "conf/redisurl.h"

struct redis_conn;

struct redis_conn_opts {
    uint32_t
        connect_timeout_ms; /* 0 = 1000: a connect with its AUTH/SELECT slower than this fails */
    uint32_t command_timeout_ms; /* 0 = 500: for commands that pass timeout_ms 0 */
    uint32_t backoff_first_ms;   /* 0 = 100: the first reconnect wait, doubling ... */
    uint32_t backoff_max_ms;     /* 0 = 5000: ... up to this */
    const char *client_name;     /* CLIENT SETNAME on connect; NULL = none (copied) */
};

/* The command connection came up (AUTH and SELECT done) or went down; why
 * (borrowed) says why it is down: "connection refused", "AUTH failed:
 * WRONGPASS ...", "timed out connecting after 1000 ms", "closed by server".
 * Called on every change only: once for the first failure, not per retry.
 * The callback may free the conn. */
typedef void (*redis_conn_state_cb)(bool up, const char *why, void *arg);

/* Exactly once per command: reply (borrowed for the call; an error reply is
 * a REDIS_REPLY_ERROR reply with err NULL), or err (borrowed) with reply
 * NULL: "not connected", "timed out after 500 ms", "connection lost". Never
 * called from inside redis_conn_command(). The callback may free the conn. */
typedef void (*redis_reply_cb)(const redisReply *reply, const char *err, void *arg);

/* One message on a subscribed channel; channel and message are borrowed. */
typedef void (*redis_message_cb)(const char *channel, const char *message, size_t len, void *arg);

/* The subscriber connection has renewed all subscriptions (subscribed) or
 * lost them. Messages published in between are gone: re-read what they
 * would have said. */
typedef void (*redis_sub_state_cb)(bool subscribed, void *arg);

/* Starts connecting at once (from the loop) and keeps reconnecting with the
 * backoff while the conn lives. url and opts are copied. Returns a new conn
 * (free with redis_conn_free), or NULL when out of memory. */
struct redis_conn *redis_conn_new(struct event_base *base, const struct redis_url *url,
                                  const struct redis_conn_opts *opts, redis_conn_state_cb cb,
                                  void *arg);

/* Disconnects both connections; pending commands' callbacks are NOT
 * called. Safe from inside any of the conn's callbacks. NULL is fine. */
void redis_conn_free(struct redis_conn *c);

/* True when the command connection is up. */
bool redis_conn_up(const struct redis_conn *c);

/* True when the subscriber connection is up and has every channel. */
bool redis_conn_subscribed(const struct redis_conn *c);

/* The last failure of the command connection ("" when none yet; borrowed
 * until the next failure). */
const char *redis_conn_last_error(const struct redis_conn *c);

/* When the command connection went down (CLOCK_MONOTONIC ms): set by the
 * first failure to connect or by a loss; 0 while up or before the first
 * attempt ends. */
int64_t redis_conn_down_since_ms(const struct redis_conn *c);

/* How many times the command connection has come up. */
uint64_t redis_conn_connects(const struct redis_conn *c);

/* Sends one command, argv binary-safe (argvlen NULL: strlen of each).
 * timeout_ms 0 = opts.command_timeout_ms. Returns 0 (cb will run once,
 * later) or -1 when out of memory (cb never runs). While down, cb runs from
 * the loop with "not connected": commands are never queued for later. */
int redis_conn_command(struct redis_conn *c, uint32_t timeout_ms, redis_reply_cb cb, void *arg,
                       int argc, const char **argv, const size_t *argvlen)
    __attribute__((warn_unused_result));

/* The same with a hiredis format string ("HGETALL %s", "%b" for binary). */
int redis_conn_commandf(struct redis_conn *c, uint32_t timeout_ms, redis_reply_cb cb, void *arg,
                        const char *fmt, ...) __attribute__((warn_unused_result));

/* Subscribes to channel (copied) on the subscriber connection, kept across
 * reconnects; cb gets every message. At most REDIS_CONN_MAX_CHANNELS.
 * Returns 0 or -1 (out of memory, too many channels). */
int redis_conn_subscribe(struct redis_conn *c, const char *channel, redis_message_cb cb, void *arg)
    __attribute__((warn_unused_result));

/* Calls cb when the subscriber connection has renewed every subscription
 * (after its first connect and after each reconnect) and when it loses
 * them; not when a channel is added to a live connection. */
void redis_conn_set_sub_state_cb(struct redis_conn *c, redis_sub_state_cb cb, void *arg);

#define REDIS_CONN_MAX_CHANNELS 8

#endif
