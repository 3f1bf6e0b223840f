/* redis_scripts.h - the fleet's Redis keys, the Lua scripts that change them,
 * and the argument builders and reply readers around those scripts.
 *
 * Nothing here does I/O: a builder fills a struct redis_argv that the caller
 * hands to redisAsyncCommandArgv() (or redisCommandArgv() in tests), and a
 * reader turns the redisReply into plain values. Keys under a namespace ns:
 *
 *   <ns>:state              hash: generation, state (state_to_json text),
 *                           instance (the writer), updated_ms
 *   <ns>:changes            pub/sub channel: "<generation> <instance>"
 *   <ns>:events             stream: fields event (JSON) and instance
 *   <ns>:leader             string: the lease holder's instance, with PX
 *   <ns>:signals:<instance> string: that instance's outcome totals, with PX
 *
 * The scripts touch only names passed in KEYS (the changes channel rides
 * there too), check every number they are given and answer garbage with an
 * error reply. Generations are decimal text below 10^15, so that Lua's
 * doubles compare them exactly.
 */
#ifndef SY_CONTROL_REDIS_SCRIPTS_H
#define SY_CONTROL_REDIS_SCRIPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "control/state.h"

#define REDIS_KEY_MAX 256                       /* bytes of a key name, NUL included */
#define REDIS_INSTANCE_MAX 64                   /* bytes of an instance id, NUL included */
#define REDIS_GENERATION_MAX 999999999999999ull /* 10^15 - 1: exact in a Lua number */
#define REDIS_ARGV_MAX 16

/* Writes "<ns>:<suffix>" into out (REDIS_KEY_MAX bytes). Returns 0, or -1
 * when ns is empty or the name does not fit. */
int redis_key(char *out, const char *ns, const char *suffix) __attribute__((warn_unused_result));

/* Writes "<ns>:signals:<instance>" into out (REDIS_KEY_MAX bytes); 0 or -1. */
int redis_signals_key(char *out, const char *ns, const char *instance)
    __attribute__((warn_unused_result));

/* One command's arguments. argv points into scratch and into the strings the
 * builder was given (borrowed: they must outlive the send). Do not copy the
 * struct: its pointers lead into itself. hiredis formats the command when it
 * is queued, so the struct may live on the stack of the sending function. */
struct redis_argv {
    int argc;
    const char *argv[REDIS_ARGV_MAX];
    size_t len[REDIS_ARGV_MAX];
    size_t used;        /* bytes of scratch taken */
    char scratch[1024]; /* key names and numbers */
};

/* State compare-and-set. KEYS: state, changes, events. ARGV: expect,
 * new_generation, seed (0|1), state_json, instance, event_json ("" = none),
 * updated_ms, events_maxlen (0 = no cap).
 *
 * Applies when the stored generation equals expect and new_generation is
 * above it (an instance that made several changes while Redis was away
 * writes its latest at once); an absent hash counts as generation 0. With
 * seed, it applies only to an absent hash, with any new_generation: a fresh
 * Redis takes the first instance's state as it is. Applying is, atomically:
 * HSET of the
 * four fields, PUBLISH "<generation> <instance>" on the changes channel and,
 * with an event, XADD event and instance with MAXLEN ~ events_maxlen.
 *
 * Reply: {1, "<generation>"} when applied; {0, "<stored generation>",
 * stored state or nil, stored instance or nil} when refused ("0" and nils
 * when there is no hash). */
extern const char redis_script_state_cas[];

struct redis_cas_args {
    const char *ns;
    uint64_t expect;
    uint64_t new_generation;
    bool seed;
    const char *state_json; /* state_to_json() text, compact */
    const char *instance;   /* 1..REDIS_INSTANCE_MAX-1 bytes */
    const char *event_json; /* NULL: no event */
    int64_t updated_ms;
    uint32_t events_maxlen; /* 0: the stream is not trimmed */
};

/* Builds the EVAL of redis_script_state_cas. Returns argc, or -1 when an
 * argument is out of range (empty or long namespace or instance, no state,
 * a generation or updated_ms above REDIS_GENERATION_MAX, a negative
 * updated_ms). The strings of a are borrowed by out. */
int redis_cas_argv(struct redis_argv *out, const struct redis_cas_args *a)
    __attribute__((warn_unused_result));

struct redis_cas_result {
    bool applied;
    uint64_t stored_generation; /* applied: the new one; refused: the stored one */
    char *stored_state;         /* refused: new (free with redis_cas_result_clear), or NULL */
    char stored_instance[REDIS_INSTANCE_MAX]; /* refused: the last writer, or "" */
};

/* Reads the script's reply into *out (cleared first). Returns 0, or -1 with
 * why for an error reply, a wrong shape or a bad number; *out then holds
 * nothing to free. */
int redis_cas_parse(const redisReply *r, struct redis_cas_result *out, char *why, size_t why_len)
    __attribute__((warn_unused_result));

/* Frees what out holds and zeroes it; accepts NULL. */
void redis_cas_result_clear(struct redis_cas_result *r);

/* Reads an HGETALL of <ns>:state: the generation field, the state field
 * (state_from_json; its generation must equal the field's) and the instance
 * field (instance_len >= REDIS_INSTANCE_MAX, or NULL to skip it). Returns 1
 * with *out and *generation set, 0 when the hash does not exist (nothing
 * set), -1 with why (nothing set). */
int redis_state_parse(const redisReply *hgetall, struct state *out, uint64_t *generation,
                      char *instance, size_t instance_len, char *why, size_t why_len)
    __attribute__((warn_unused_result));

/* Leader lease, KEYS: leader; ARGV: instance, lease_ms. When the key holds
 * instance, PEXPIRE it (a renewal); when absent, SET it NX PX; either way
 * reply {1, instance, lease_ms}. Else reply {0, holder, its PTTL}. */
extern const char redis_script_lease[];

/* Lease release, KEYS: leader; ARGV: instance. DEL only when the key holds
 * instance. Reply: 1 when deleted, else 0. */
extern const char redis_script_release[];

/* Build the EVAL of the lease or release script; argc or -1 (a bad name or
 * lease_ms 0). instance is borrowed. */
int redis_lease_argv(struct redis_argv *out, const char *ns, const char *instance,
                     uint32_t lease_ms) __attribute__((warn_unused_result));
int redis_release_argv(struct redis_argv *out, const char *ns, const char *instance)
    __attribute__((warn_unused_result));

struct redis_lease_result {
    bool held;                       /* true: the caller holds the lease now */
    char holder[REDIS_INSTANCE_MAX]; /* who holds it */
    int64_t pttl_ms;                 /* how long it still runs (-1: no expiry) */
};

/* Reads the lease script's reply; 0, or -1 with why. */
int redis_lease_parse(const redisReply *r, struct redis_lease_result *out, char *why,
                      size_t why_len) __attribute__((warn_unused_result));

/* Reads the release script's reply: 0 with *released set, or -1 with why. */
int redis_release_parse(const redisReply *r, bool *released, char *why, size_t why_len)
    __attribute__((warn_unused_result));

#endif
