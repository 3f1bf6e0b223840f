/* jsonpos.c - an index of key and value positions in a JSON text.
 *
 * The scanner is iterative (an explicit stack of open containers), so deep
 * nesting cannot exhaust the C stack. Each value becomes one entry that names
 * its container and either its decoded key or its array index; the path of an
 * entry is therefore implicit, and memory stays linear even for deep or
 * long-keyed documents. A hash over (container, key or index) makes each path
 * component one probe.
 */
#include "conf/jsonpos.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf/hexdigit.h"

#define NONE UINT32_MAX
#define ELEM UINT32_MAX /* name_len of an array element or of the root */

struct entry {
    uint32_t parent;   /* container's entry, NONE for the root */
    uint32_t name;     /* member: offset of its decoded key in keys; element: index */
    uint32_t name_len; /* member: key length in bytes; ELEM otherwise */
    uint32_t next;     /* next entry in the same hash bucket */
    unsigned key_line, key_col, line, col;
    size_t off, len; /* the value's span in the text */
    char kind;       /* '{', '[' or 0 for a scalar */
};

struct jsonpos {
    const char *text;
    struct entry *v;
    size_t n, cap;
    char *keys; /* decoded member keys, back to back, not NUL-terminated */
    size_t keys_len, keys_cap;
    uint32_t *buckets;
    size_t nbuckets; /* a power of two */
};

struct frame {
    uint32_t entry; /* the container's entry */
    uint32_t count; /* elements seen so far (arrays) */
};

struct scan {
    const char *p;
    size_t len, i;
    unsigned line, col;
    struct jsonpos *jp;
    struct frame *stack;
    size_t depth, cap;
};

/* Makes room for item n (of size sz) in arr, which holds *cap items.
 * Returns arr itself or its new home, or NULL when memory runs out (arr is
 * then left as it was). */
static void *grow(void *arr, size_t *cap, size_t n, size_t sz)
{
    if (n < *cap)
        return arr;
    size_t ncap = *cap ? *cap * 2 : 16;
    if (ncap > SIZE_MAX / sz)
        return NULL;
    void *p = realloc(arr, ncap * sz);
    if (p)
        *cap = ncap;
    return p;
}

static bool at_end(const struct scan *s)
{
    return s->i >= s->len;
}

static void advance(struct scan *s)
{
    if (s->p[s->i] == '\n') {
        s->line += s->line < UINT32_MAX;
        s->col = 1;
    } else if (s->col < UINT32_MAX) {
        s->col++;
    }
    s->i++;
}

static void skip_ws(struct scan *s)
{
    while (!at_end(s)) {
        char c = s->p[s->i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        advance(s);
    }
}

static int key_put(struct jsonpos *jp, const char *b, size_t n)
{
    while (jp->keys_len + n > jp->keys_cap) {
        char *k = grow(jp->keys, &jp->keys_cap, jp->keys_cap, 1);
        if (!k)
            return -1;
        jp->keys = k;
    }
    memcpy(jp->keys + jp->keys_len, b, n);
    jp->keys_len += n;
    return 0;
}

/* Reads the four hex digits after "\u" at s->p + at; -1 when they are not there. */
static long read_u4(const struct scan *s, size_t at)
{
    long v = 0;
    if (at > s->len || s->len - at < 4)
        return -1;
    for (size_t k = 0; k < 4; k++) {
        int h = hex_digit_value(s->p[at + k]);
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    return v;
}

static size_t utf8_put(unsigned long cp, char out[4])
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Decodes the escape at s->i (the backslash) the way jansson does, into out.
 * Returns the number of bytes written; consumes the escape. A malformed
 * escape is copied as it stands: jansson rejects such text anyway. */
static size_t decode_escape(struct scan *s, char out[4])
{
    static const char from[] = "\"\\/bfnrt";
    static const char to[] = "\"\\/\b\f\n\r\t";

    advance(s); /* the backslash */
    if (at_end(s)) {
        out[0] = '\\';
        return 1;
    }
    char c = s->p[s->i];
    const char *hit = c ? strchr(from, c) : NULL;
    if (hit) {
        advance(s);
        out[0] = to[hit - from];
        return 1;
    }
    long cp = c == 'u' ? read_u4(s, s->i + 1) : -1;
    if (cp < 0) {
        out[0] = '\\';
        return 1;
    }
    for (int k = 0; k < 5; k++)
        advance(s);
    if (cp >= 0xD800 && cp < 0xDC00 && s->len - s->i >= 6 && s->p[s->i] == '\\' &&
        s->p[s->i + 1] == 'u') {
        long lo = read_u4(s, s->i + 2);
        if (lo >= 0xDC00 && lo < 0xE000) {
            for (int k = 0; k < 6; k++)
                advance(s);
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
    }
    return utf8_put((unsigned long)cp, out);
}

/* Consumes the string at s->i (on its opening quote). With decode, appends
 * its decoded bytes to the key buffer. Returns 0, -1 when the text ends
 * inside the string, or -2 when memory runs out. */
static int scan_string(struct scan *s, bool decode)
{
    advance(s);
    while (!at_end(s)) {
        char c = s->p[s->i];
        if (c == '"') {
            advance(s);
            return 0;
        }
        char buf[4];
        size_t n = 1;
        if (c == '\\') {
            n = decode_escape(s, buf);
        } else {
            buf[0] = c;
            advance(s);
        }
        if (decode && key_put(s->jp, buf, n) < 0)
            return -2;
    }
    return -1;
}

/* Consumes a number, true, false or null. Returns -1 when nothing is there. */
static int scan_scalar(struct scan *s)
{
    size_t start = s->i;
    while (!at_end(s) && !strchr(" \t\r\n,:[]{}\"", s->p[s->i]))
        advance(s);
    return s->i > start ? 0 : -1;
}

/* Appends an entry for the value at s->i. Returns its index, or NONE when
 * memory runs out. kl is 0 for values that have no key of their own. */
static uint32_t record(struct scan *s, uint32_t name, uint32_t name_len, unsigned kl, unsigned kc)
{
    struct jsonpos *jp = s->jp;
    struct entry *v = grow(jp->v, &jp->cap, jp->n, sizeof(*jp->v));
    if (!v)
        return NONE;
    jp->v = v;
    struct entry *e = &jp->v[jp->n];
    e->parent = s->depth ? s->stack[s->depth - 1].entry : NONE;
    e->name = name;
    e->name_len = name_len;
    e->next = NONE;
    e->key_line = kl ? kl : s->line;
    e->key_col = kl ? kc : s->col;
    e->line = s->line;
    e->col = s->col;
    e->off = s->i;
    e->len = 0;
    e->kind = 0;
    return (uint32_t)jp->n++;
}

/* Consumes one value's first token; opens a container. Returns 1 when a
 * container was opened, 0 for a complete scalar, -1 to stop at malformed
 * text, -2 when memory runs out. */
static int scan_value_start(struct scan *s, uint32_t idx)
{
    struct entry *e = &s->jp->v[idx];
    char c = s->p[s->i];
    if (c == '{' || c == '[') {
        e->kind = c;
        struct frame *st = grow(s->stack, &s->cap, s->depth, sizeof(*s->stack));
        if (!st)
            return -2;
        s->stack = st;
        s->stack[s->depth].entry = idx;
        s->stack[s->depth].count = 0;
        s->depth++;
        advance(s);
        return 1;
    }
    /* Only keys are decoded, so a value string cannot run out of memory. */
    int rc = c == '"' ? scan_string(s, false) : scan_scalar(s);
    e->len = s->i - e->off;
    return rc < 0 ? -1 : 0;
}

/* Consumes a member's key and its colon and tells where the decoded key is.
 * Returns 0, -1 at malformed text, -2 when memory runs out. */
static int scan_key(struct scan *s, uint32_t *name, uint32_t *name_len, unsigned *kl, unsigned *kc)
{
    skip_ws(s);
    if (at_end(s) || s->p[s->i] != '"')
        return -1;
    *kl = s->line;
    *kc = s->col;
    size_t before = s->jp->keys_len;
    int rc = scan_string(s, true);
    if (rc < 0)
        return rc;
    if (s->jp->keys_len >= NONE)
        return -1;
    *name = (uint32_t)before;
    *name_len = (uint32_t)(s->jp->keys_len - before);
    skip_ws(s);
    if (at_end(s) || s->p[s->i] != ':')
        return -1;
    advance(s);
    return 0;
}

/* After a value: closes finished containers and positions the scanner on the
 * next value. Returns 1 when a value follows (for objects, its key was read
 * into the out arguments), 0 when the document is complete, -1 to stop at
 * malformed text, -2 when memory runs out. */
static int scan_next(struct scan *s, uint32_t *name, uint32_t *name_len, unsigned *kl, unsigned *kc)
{
    while (s->depth) {
        struct frame *f = &s->stack[s->depth - 1];
        struct entry *e = &s->jp->v[f->entry];
        char close = e->kind == '{' ? '}' : ']';
        skip_ws(s);
        if (at_end(s))
            return -1;
        char c = s->p[s->i];
        bool first = s->jp->n == (size_t)f->entry + 1;
        if (c == close) {
            advance(s);
            e->len = s->i - e->off;
            s->depth--;
            continue;
        }
        if (!first) {
            if (c != ',')
                return -1;
            advance(s);
            f->count++;
        }
        *kl = 0;
        *kc = 0;
        if (e->kind == '[') {
            *name = f->count;
            *name_len = ELEM;
            return 1;
        }
        int rc = scan_key(s, name, name_len, kl, kc);
        return rc < 0 ? rc : 1;
    }
    return 0;
}

/* Records values one after the other until the document ends or the text
 * stops making sense. Returns -1 only when memory runs out. */
static int scan_run(struct scan *s)
{
    uint32_t name = 0, name_len = ELEM;
    unsigned kl = 0, kc = 0;

    for (;;) {
        skip_ws(s);
        if (at_end(s) || s->jp->n >= NONE - 1)
            return 0;
        uint32_t idx = record(s, name, name_len, kl, kc);
        if (idx == NONE)
            return -1;
        int rc = scan_value_start(s, idx);
        if (rc >= 0)
            rc = scan_next(s, &name, &name_len, &kl, &kc);
        if (rc <= 0)
            return rc == -2 ? -1 : 0;
    }
}

static uint64_t hash_name(uint32_t parent, const char *b, size_t n, uint32_t index)
{
    uint64_t h = 1469598103934665603ull;
    const unsigned char *pb = (const unsigned char *)&parent;
    for (size_t k = 0; k < sizeof(parent); k++)
        h = (h ^ pb[k]) * 1099511628211ull;
    if (!b) {
        pb = (const unsigned char *)&index;
        for (size_t k = 0; k < sizeof(index); k++)
            h = (h ^ pb[k]) * 1099511628211ull;
        return h ^ 0x5bd1e995u;
    }
    for (size_t k = 0; k < n; k++)
        h = (h ^ (unsigned char)b[k]) * 1099511628211ull;
    return h;
}

/* A member's decoded key. Not NULL even for an empty key in a document
 * with no other keys, where no key buffer exists: NULL means an element. */
static const char *entry_key(const struct jsonpos *jp, const struct entry *e)
{
    return e->name_len > 0 ? jp->keys + e->name : "";
}

static uint64_t hash_entry(const struct jsonpos *jp, const struct entry *e)
{
    if (e->name_len == ELEM)
        return hash_name(e->parent, NULL, 0, e->name);
    return hash_name(e->parent, entry_key(jp, e), e->name_len, 0);
}

static int build_hash(struct jsonpos *jp)
{
    size_t nb = 16;
    while (nb < jp->n * 2)
        nb *= 2;
    jp->buckets = malloc(nb * sizeof(*jp->buckets));
    if (!jp->buckets)
        return -1;
    jp->nbuckets = nb;
    memset(jp->buckets, 0xff, nb * sizeof(*jp->buckets)); /* every bucket NONE */
    for (size_t k = 1; k < jp->n; k++) {
        struct entry *e = &jp->v[k];
        size_t b = (size_t)(hash_entry(jp, e) & (nb - 1));
        e->next = jp->buckets[b];
        jp->buckets[b] = (uint32_t)k;
    }
    return 0;
}

struct jsonpos *jsonpos_scan(const char *text, size_t len)
{
    struct jsonpos *jp = calloc(1, sizeof(*jp));
    if (!jp)
        return NULL;
    jp->text = text;
    struct scan s = {.p = text, .len = text ? len : 0, .line = 1, .col = 1, .jp = jp};
    int rc = scan_run(&s);
    free(s.stack);
    if (rc < 0 || build_hash(jp) < 0) {
        jsonpos_free(jp);
        return NULL;
    }
    return jp;
}

void jsonpos_free(struct jsonpos *jp)
{
    if (!jp)
        return;
    free(jp->v);
    free(jp->keys);
    free(jp->buckets);
    free(jp);
}

size_t jsonpos_count(const struct jsonpos *jp)
{
    return jp ? jp->n : 0;
}

/* The child of parent named by b/n (a key) or by index (when b is NULL). */
static uint32_t child(const struct jsonpos *jp, uint32_t parent, const char *b, size_t n,
                      uint32_t index)
{
    if (!jp->nbuckets)
        return NONE;
    size_t bucket = (size_t)(hash_name(parent, b, n, index) & (jp->nbuckets - 1));
    for (uint32_t k = jp->buckets[bucket]; k != NONE; k = jp->v[k].next) {
        const struct entry *e = &jp->v[k];
        if (e->parent != parent)
            continue;
        if (!b && e->name_len == ELEM && e->name == index)
            return k;
        if (b && e->name_len == n && memcmp(entry_key(jp, e), b, n) == 0)
            return k;
    }
    return NONE;
}

/* Parses "[N]" at *p. Returns the index and moves *p past it, or -1. */
static long parse_index(const char **p)
{
    const char *q = *p + 1;
    long v = 0;
    if (**p != '[' || *q < '0' || *q > '9')
        return -1;
    while (*q >= '0' && *q <= '9') {
        v = v * 10 + (*q++ - '0');
        if (v >= (long)NONE)
            return -1;
    }
    if (*q != ']')
        return -1;
    *p = q + 1;
    return v;
}

/* Resolves one key component starting at *p under node: the shortest key up
 * to a '.' or '[' that exists, else the next longer one, so that keys holding
 * those characters are still found. */
static uint32_t step_key(const struct jsonpos *jp, uint32_t node, const char **p)
{
    const char *start = *p;
    const char *end = start + strcspn(start, ".[");
    for (;;) {
        uint32_t k = child(jp, node, start, (size_t)(end - start), 0);
        if (k != NONE) {
            *p = end;
            return k;
        }
        if (!*end)
            return NONE;
        end++;
        end += strcspn(end, ".[");
    }
}

int jsonpos_find(const struct jsonpos *jp, const char *path, struct jsonpos_loc *out)
{
    if (!jp || !path || !jp->n)
        return -1;
    uint32_t node = 0; /* the root */
    const char *p = path;
    while (*p) {
        const struct entry *e = &jp->v[node];
        if (e->kind == '[') {
            long idx = parse_index(&p);
            node = idx < 0 ? NONE : child(jp, node, NULL, 0, (uint32_t)idx);
        } else if (e->kind == '{') {
            /* Members of the root come without a leading dot. */
            if (node != 0 && *p++ != '.')
                return -1;
            node = step_key(jp, node, &p);
        } else {
            return -1;
        }
        if (node == NONE)
            return -1;
    }
    const struct entry *e = &jp->v[node];
    out->key_line = e->key_line;
    out->key_col = e->key_col;
    out->line = e->line;
    out->col = e->col;
    out->text = jp->text + e->off;
    out->len = e->len;
    return 0;
}
