/* cfgwalk.h - checking a parsed config value by value, with paths and positions.
 *
 * A struct cfgwalk carries what every check needs: the file name for
 * messages, the folder relative paths resolve against, the position index of
 * the text, and the problems found so far. Checks never stop at the first
 * problem; each one records a message and the walk goes on, so that one run
 * of `switchyard -t` names everything that is wrong.
 *
 * Most keys are described by a table of struct cfgwalk_field and checked by
 * cfgwalk_object(), which also rejects keys the table does not know. Keys
 * whose rules need code (arrays of objects, cross-checks) are CFGWALK_CUSTOM
 * in the table and handled by the caller.
 */
#ifndef SY_CONF_CFGWALK_H
#define SY_CONF_CFGWALK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "conf/addr.h"
#include "conf/config.h"
#include "conf/jsonpos.h"

/* Room for any path made of known keys and array indexes. Unknown keys,
 * which can be of any length, are reported through allocated paths. */
#define CFGWALK_PATH_MAX 256

struct cfgwalk_msg;

struct cfgwalk {
    const char *file;          /* name shown in messages (borrowed) */
    const char *dir;           /* absolute folder for relative paths (borrowed) */
    const struct jsonpos *pos; /* positions of the text (borrowed) */
    struct cfgwalk_msg *msgs;
    size_t nmsgs, cap;
    bool oom; /* an allocation failed: the result is unusable */
};

/* What a value must be. The first group says only the JSON type; the rest
 * also say how the value is stored through struct cfgwalk_field.off. */
enum cfgwalk_kind {
    CFGWALK_OBJECT,
    CFGWALK_ARRAY,
    CFGWALK_STRING,
    CFGWALK_INTEGER,
    CFGWALK_NUMBER,
    CFGWALK_BOOLEAN,
    CFGWALK_U32,     /* uint32_t, an integer in lo..hi */
    CFGWALK_DOUBLE,  /* double, a number in lo..hi (hi may be INFINITY) */
    CFGWALK_BP,      /* uint32_t basis points from a percentage in lo..hi, two decimals */
    CFGWALK_BOOL,    /* bool */
    CFGWALK_TEXT,    /* char *, any string */
    CFGWALK_WORD,    /* char *, non-empty, printable, no spaces */
    CFGWALK_TOKEN,   /* char *, an HTTP token (header, cookie or method name) */
    CFGWALK_URLPATH, /* char *, "/..." without spaces or control characters */
    CFGWALK_FILE,    /* char *, a file path made absolute against the config's folder */
    CFGWALK_ADDR,    /* struct conf_addr, "HOST:PORT" */
    CFGWALK_CUSTOM,  /* known key, checked by the caller */
};

struct cfgwalk_field {
    const char *key;
    enum cfgwalk_kind kind;
    size_t off;    /* where the value goes, from the base given to cfgwalk_object */
    double lo, hi; /* inclusive range of numbers */
    bool required;
};

void cfgwalk_init(struct cfgwalk *w, const char *file, const char *dir, const struct jsonpos *pos);

/* Frees the messages not yet moved out by cfgwalk_flush. */
void cfgwalk_clear(struct cfgwalk *w);

/* Moves the messages, sorted by position, into errs. Returns how many there
 * were (an allocation failure counts as one). */
size_t cfgwalk_flush(struct cfgwalk *w, struct conf_errors *errs);

/* Records a problem with the value at path (or, with at_key, with the key
 * itself). A path that is not in the text (a missing key) is placed at its
 * nearest ancestor that is. */
void cfgwalk_error(struct cfgwalk *w, const char *path, bool at_key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Writes parent.key (or key, at the root) into buf. */
void cfgwalk_path_key(char *buf, size_t size, const char *parent, const char *key);

/* Writes parent[index] into buf. */
void cfgwalk_path_index(char *buf, size_t size, const char *parent, size_t index);

/* Writes s into buf for a message: quoted, control bytes escaped, long
 * strings cut with "...". Returns buf. */
const char *cfgwalk_quote(char *buf, size_t size, const char *s);

/* The same without the quotes, and leaving quotes and backslashes as they
 * are (for text that already quotes what it shows). Returns buf. */
const char *cfgwalk_escape(char *buf, size_t size, const char *s);

/* The source text of the value at path (for "got ..." in messages), or a
 * short description of v when the text is not known. Returns buf. */
const char *cfgwalk_literal(const struct cfgwalk *w, const char *path, const json_t *v, char *buf,
                            size_t size);

/* Checks that v has the JSON type kind asks for (a number accepts integers).
 * Records "expected ..., got ..." and returns false when it does not. */
bool cfgwalk_expect(struct cfgwalk *w, const json_t *v, const char *path, enum cfgwalk_kind kind);

/* Looks key up in obj and checks its type. Returns the value (borrowed), or
 * NULL when it is absent (recording "missing required key" when required) or
 * of the wrong type. The member's path is written to path. */
json_t *cfgwalk_member(struct cfgwalk *w, const json_t *obj, const char *parent, const char *key,
                       enum cfgwalk_kind kind, bool required, char *path, size_t size);

/* Records "unknown key" for each key of obj not in known (NULL-terminated),
 * suggesting the closest known key when one is near. */
void cfgwalk_check_keys(struct cfgwalk *w, const json_t *obj, const char *path,
                        const char *const *known);

/* Checks obj (at path) against the n fields: unknown keys, missing required
 * keys, and each present non-custom value, stored at base + off. Values keep
 * what base held (the defaults) when absent or wrong. Returns 0 when no
 * problem was found, else -1. */
int cfgwalk_object(struct cfgwalk *w, const json_t *obj, const char *path,
                   const struct cfgwalk_field *fields, size_t n, void *base);

/* Checks and stores one value of a storing kind (CFGWALK_U32 and after) into
 * dst. Returns 0, or -1 after recording the problem. */
int cfgwalk_value(struct cfgwalk *w, const json_t *v, const char *path,
                  const struct cfgwalk_field *f, void *dst);

/* Replaces *dst (freed) with a new copy of s; flags w->oom on failure. */
void cfgwalk_set_string(struct cfgwalk *w, char **dst, const char *s);

/* Returns a new absolute path: p itself when absolute, else w->dir/p. */
char *cfgwalk_resolve(struct cfgwalk *w, const char *p);

/* True when s is a non-empty HTTP token (RFC 9110, section 5.6.2). */
bool cfgwalk_is_token(const char *s);

/* Parses the JSON number literal text/len as a percentage with at most two
 * decimals, in basis points. Returns 0, -1 when it has more decimals, -2
 * when it is negative or above 2^32 - 1 basis points. */
int cfgwalk_parse_bp(const char *text, size_t len, uint32_t *bp);

#endif
