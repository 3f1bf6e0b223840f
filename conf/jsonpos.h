/* jsonpos.h - where each key and value sits in a JSON text.
 *
 * jansson keeps no source positions, so the config loader scans the same text
 * a second time with this index and looks positions up by path when it has a
 * problem to report. Paths are written the way error messages show them:
 * "workers", "pools.blue.servers[1].addr", "" for the root value.
 *
 * The scanner never reads outside the text, whatever it holds: on malformed
 * input it stops and keeps what it recorded so far. It allocates one entry
 * array, one buffer for decoded keys and one hash table, each growing
 * geometrically, so memory stays linear in the size of the text.
 */
#ifndef SY_CONF_JSONPOS_H
#define SY_CONF_JSONPOS_H

#include <stdbool.h>
#include <stddef.h>

struct jsonpos;

/* Where one value (and, for an object member, its key) was found. Lines and
 * columns are 1-based; a column counts bytes, so a tab counts as one. */
struct jsonpos_loc {
    unsigned key_line; /* the member's key; for array elements and the root, */
    unsigned key_col;  /* the value's own position */
    unsigned line;     /* first byte of the value */
    unsigned col;
    const char *text; /* the value's source text (borrowed from the scanned text) */
    size_t len;       /* its length in bytes; a container spans to its closing bracket */
};

/* Scans len bytes of text (borrowed: it must outlive the index, because
 * jsonpos_loc.text points into it). Returns a new index (free with
 * jsonpos_free) or NULL when memory runs out. */
struct jsonpos *jsonpos_scan(const char *text, size_t len) __attribute__((warn_unused_result));

void jsonpos_free(struct jsonpos *jp);

/* Looks path up. Returns 0 and fills *out, or -1 when the text holds no such
 * path. Keys that themselves contain '.' or '[' are found as long as no
 * shorter sibling key is a prefix of them up to that character. */
int jsonpos_find(const struct jsonpos *jp, const char *path, struct jsonpos_loc *out)
    __attribute__((warn_unused_result));

/* Number of values recorded (members, elements and the root). */
size_t jsonpos_count(const struct jsonpos *jp);

#endif
