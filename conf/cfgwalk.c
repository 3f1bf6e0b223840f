/* cfgwalk.c - checking a parsed config value by value, with paths and positions. */
#include "conf/cfgwalk.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cfgwalk_msg {
    unsigned line, col;
    size_t seq; /* keeps messages at one position in the order they were found */
    char *text;
};

/* Keys longer than this get no "did you mean" suggestion. */
#define SUGGEST_MAX 64

_Static_assert(_Generic((uint32_t)0, unsigned int : 1, default : 0),
               "CFGWALK_U32 stores into both uint32_t and unsigned fields");

void cfgwalk_init(struct cfgwalk *w, const char *file, const char *dir, const struct jsonpos *pos)
{
    memset(w, 0, sizeof(*w));
    w->file = file;
    w->dir = dir;
    w->pos = pos;
}

void cfgwalk_clear(struct cfgwalk *w)
{
    for (size_t i = 0; i < w->nmsgs; i++)
        free(w->msgs[i].text);
    free(w->msgs);
    w->msgs = NULL;
    w->nmsgs = w->cap = 0;
}

static int msg_cmp(const void *a, const void *b)
{
    const struct cfgwalk_msg *x = a, *y = b;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    if (x->col != y->col)
        return x->col < y->col ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

size_t cfgwalk_flush(struct cfgwalk *w, struct conf_errors *errs)
{
    size_t n = w->nmsgs + (w->oom ? 1 : 0);

    if (w->nmsgs > 1)
        qsort(w->msgs, w->nmsgs, sizeof(*w->msgs), msg_cmp);
    for (size_t i = 0; i < w->nmsgs; i++) {
        if (errs)
            conf_errors_add(errs, "%s", w->msgs[i].text);
    }
    if (w->oom && errs)
        conf_errors_add(errs, "%s: out of memory while checking the configuration", w->file);
    cfgwalk_clear(w);
    return n;
}

/* Writes c escaped into out (room for 4 bytes); returns the bytes written.
 * Quotes and backslashes are escaped only with all: source text of a JSON
 * value already has them escaped. */
static size_t put_escaped(char *out, unsigned char c, bool all)
{
    static const char plain[] = "\n\t\r\"\\";
    static const char named[] = "ntr\"\\";
    const char *hit = c ? strchr(plain, c) : NULL;

    if (hit && !all && hit - plain >= 3)
        hit = NULL;
    if (hit) {
        out[0] = '\\';
        out[1] = named[hit - plain];
        return 2;
    }
    if (c < 0x20 || c == 0x7f) {
        static const char hex[] = "0123456789abcdef";
        out[0] = '\\';
        out[1] = 'x';
        out[2] = hex[c >> 4];
        out[3] = hex[c & 15];
        return 4;
    }
    out[0] = (char)c;
    return 1;
}

/* Escapes s into buf (size >= 8), optionally in quotes, cutting it with
 * "..." (never inside a UTF-8 sequence) when it does not fit. */
static const char *escape(char *buf, size_t size, const char *s, size_t len, bool quote, bool all)
{
    const size_t tail = 3 + (quote ? 1 : 0) + 1; /* "...", the quote, the NUL */
    size_t o = 0;

    if (quote)
        buf[o++] = '"';
    for (size_t i = 0; i < len; i++) {
        char tmp[4];
        size_t n = put_escaped(tmp, (unsigned char)s[i], all);
        if (o + n + tail > size) {
            while (o > 1 && ((unsigned char)buf[o - 1] & 0xC0) == 0x80)
                o--;
            if (o > 1 && (unsigned char)buf[o - 1] >= 0xC0)
                o--;
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        memcpy(buf + o, tmp, n);
        o += n;
    }
    if (quote)
        buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

const char *cfgwalk_quote(char *buf, size_t size, const char *s)
{
    return escape(buf, size, s, strlen(s), true, true);
}

const char *cfgwalk_escape(char *buf, size_t size, const char *s)
{
    return escape(buf, size, s, strlen(s), false, false);
}

/* Finds where to point for path: the key or value itself, else the nearest
 * recorded ancestor, else the first line. */
static void locate(const struct cfgwalk *w, const char *path, bool at_key, unsigned *line,
                   unsigned *col)
{
    struct jsonpos_loc loc;
    char *p = strdup(path);

    *line = 1;
    *col = 1;
    if (!p)
        return;
    for (;;) {
        if (jsonpos_find(w->pos, p, &loc) == 0) {
            *line = at_key ? loc.key_line : loc.line;
            *col = at_key ? loc.key_col : loc.col;
            break;
        }
        char *dot = strrchr(p, '.');
        char *bracket = strrchr(p, '[');
        char *cut = dot > bracket ? dot : bracket;
        if (!*p)
            break;
        if (!cut)
            cut = p; /* a member of the root: try the root itself */
        *cut = '\0';
        at_key = false;
    }
    free(p);
}

static void push(struct cfgwalk *w, unsigned line, unsigned col, char *text)
{
    if (w->nmsgs == w->cap) {
        size_t ncap = w->cap ? w->cap * 2 : 8;
        struct cfgwalk_msg *m = realloc(w->msgs, ncap * sizeof(*m));
        if (!m) {
            free(text);
            w->oom = true;
            return;
        }
        w->msgs = m;
        w->cap = ncap;
    }
    w->msgs[w->nmsgs].line = line;
    w->msgs[w->nmsgs].col = col;
    w->msgs[w->nmsgs].seq = w->nmsgs;
    w->msgs[w->nmsgs].text = text;
    w->nmsgs++;
}

void cfgwalk_error(struct cfgwalk *w, const char *path, bool at_key, const char *fmt, ...)
{
    char body[512], shown[320];
    unsigned line, col;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(body, sizeof(body), fmt, ap);
    va_end(ap);
    locate(w, path, at_key, &line, &col);
    escape(shown, sizeof(shown), path, strlen(path), false, true);
    const char *sep = *path ? ": " : "";
    int n = snprintf(NULL, 0, "%s:%u:%u: %s%s%s", w->file, line, col, shown, sep, body);
    char *text = n < 0 ? NULL : malloc((size_t)n + 1);
    if (!text) {
        w->oom = true;
        return;
    }
    snprintf(text, (size_t)n + 1, "%s:%u:%u: %s%s%s", w->file, line, col, shown, sep, body);
    push(w, line, col, text);
}

void cfgwalk_path_key(char *buf, size_t size, const char *parent, const char *key)
{
    snprintf(buf, size, "%s%s%s", parent, *parent ? "." : "", key);
}

void cfgwalk_path_index(char *buf, size_t size, const char *parent, size_t index)
{
    snprintf(buf, size, "%s[%zu]", parent, index);
}

const char *cfgwalk_literal(const struct cfgwalk *w, const char *path, const json_t *v, char *buf,
                            size_t size)
{
    struct jsonpos_loc loc;

    if (json_is_object(v))
        return "an object";
    if (json_is_array(v))
        return "an array";
    if (jsonpos_find(w->pos, path, &loc) == 0 && loc.len > 0)
        return escape(buf, size, loc.text, loc.len, false, false);
    if (json_is_string(v))
        return cfgwalk_quote(buf, size, json_string_value(v));
    if (json_is_integer(v))
        snprintf(buf, size, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_real(v))
        snprintf(buf, size, "%.17g", json_real_value(v));
    else
        snprintf(buf, size, "%s", json_is_null(v) ? "null" : json_is_true(v) ? "true" : "false");
    return buf;
}

static const char *kind_name(enum cfgwalk_kind kind)
{
    switch (kind) {
    case CFGWALK_OBJECT:
        return "an object";
    case CFGWALK_ARRAY:
        return "an array";
    case CFGWALK_INTEGER:
    case CFGWALK_U32:
        return "an integer";
    case CFGWALK_NUMBER:
    case CFGWALK_DOUBLE:
    case CFGWALK_BP:
        return "a number";
    case CFGWALK_BOOLEAN:
    case CFGWALK_BOOL:
        return "a boolean";
    default:
        return "a string";
    }
}

static bool kind_matches(const json_t *v, enum cfgwalk_kind kind)
{
    switch (kind) {
    case CFGWALK_OBJECT:
        return json_is_object(v);
    case CFGWALK_ARRAY:
        return json_is_array(v);
    case CFGWALK_INTEGER:
    case CFGWALK_U32:
        return json_is_integer(v);
    case CFGWALK_NUMBER:
    case CFGWALK_DOUBLE:
    case CFGWALK_BP:
        return json_is_number(v);
    case CFGWALK_BOOLEAN:
    case CFGWALK_BOOL:
        return json_is_boolean(v);
    case CFGWALK_CUSTOM:
        return true;
    default:
        return json_is_string(v);
    }
}

bool cfgwalk_expect(struct cfgwalk *w, const json_t *v, const char *path, enum cfgwalk_kind kind)
{
    char got[64];

    if (kind_matches(v, kind))
        return true;
    cfgwalk_error(w, path, false, "expected %s, got %s", kind_name(kind),
                  cfgwalk_literal(w, path, v, got, sizeof(got)));
    return false;
}

json_t *cfgwalk_member(struct cfgwalk *w, const json_t *obj, const char *parent, const char *key,
                       enum cfgwalk_kind kind, bool required, char *path, size_t size)
{
    json_t *v = json_object_get(obj, key);

    cfgwalk_path_key(path, size, parent, key);
    if (!v) {
        if (required)
            cfgwalk_error(w, path, false, "missing required key");
        return NULL;
    }
    return cfgwalk_expect(w, v, path, kind) ? v : NULL;
}

/* Edit distance between a and b (both at most SUGGEST_MAX), ignoring case
 * and counting a swap of two neighbours as one edit: "bleu" is one typo away
 * from "blue". */
static size_t distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t rows[3][SUGGEST_MAX + 1];
    size_t *pp = rows[0], *prev = rows[1], *cur = rows[2];

    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            int ca = tolower((unsigned char)a[i - 1]), cb = tolower((unsigned char)b[j - 1]);
            size_t best = prev[j - 1] + (ca != cb);
            if (prev[j] + 1 < best)
                best = prev[j] + 1;
            if (cur[j - 1] + 1 < best)
                best = cur[j - 1] + 1;
            if (i > 1 && j > 1 && ca == tolower((unsigned char)b[j - 2]) &&
                cb == tolower((unsigned char)a[i - 2]) && pp[j - 2] + 1 < best)
                best = pp[j - 2] + 1;
            cur[j] = best;
        }
        size_t *t = pp;
        pp = prev;
        prev = cur;
        cur = t;
    }
    return prev[lb];
}

/* The known key closest to key when it is close enough to be a typo. */
static const char *suggest(const char *key, const char *const *known)
{
    const char *best = NULL;
    size_t best_d = SIZE_MAX;
    size_t lk = strlen(key);

    if (lk > SUGGEST_MAX)
        return NULL;
    for (const char *const *k = known; *k; k++) {
        size_t lo = strlen(*k);
        if (lo > SUGGEST_MAX)
            continue;
        size_t d = distance(key, *k);
        size_t limit = lo / 3 > 1 ? lo / 3 : 1;
        if (d <= limit && d < lk && d < best_d) {
            best = *k;
            best_d = d;
        }
    }
    return best;
}

static void unknown_key(struct cfgwalk *w, const char *parent, const char *key,
                        const char *const *known)
{
    size_t n = strlen(parent) + strlen(key) + 2;
    char *path = malloc(n);
    const char *hint = suggest(key, known);

    if (!path) {
        w->oom = true;
        return;
    }
    cfgwalk_path_key(path, n, parent, key);
    if (hint)
        cfgwalk_error(w, path, true, "unknown key (did you mean \"%s\"?)", hint);
    else
        cfgwalk_error(w, path, true, "unknown key");
    free(path);
}

void cfgwalk_check_keys(struct cfgwalk *w, const json_t *obj, const char *path,
                        const char *const *known)
{
    const char *key;
    json_t *v;

    json_object_foreach((json_t *)obj, key, v)
    {
        const char *const *k = known;
        while (*k && strcmp(*k, key) != 0)
            k++;
        if (!*k)
            unknown_key(w, path, key, known);
    }
}

int cfgwalk_object(struct cfgwalk *w, const json_t *obj, const char *path,
                   const struct cfgwalk_field *fields, size_t n, void *base)
{
    const char *known[32];
    size_t before = w->nmsgs;
    int rc = 0;

    if (n >= sizeof(known) / sizeof(known[0]))
        n = sizeof(known) / sizeof(known[0]) - 1; /* tables are far smaller */
    for (size_t i = 0; i < n; i++)
        known[i] = fields[i].key;
    known[n] = NULL;
    cfgwalk_check_keys(w, obj, path, known);
    for (size_t i = 0; i < n; i++) {
        char p[CFGWALK_PATH_MAX];
        const struct cfgwalk_field *f = &fields[i];
        json_t *v = cfgwalk_member(w, obj, path, f->key, f->kind, f->required, p, sizeof(p));
        if (v && f->kind != CFGWALK_CUSTOM)
            rc |= cfgwalk_value(w, v, p, f, (char *)base + f->off);
    }
    return rc < 0 || w->nmsgs != before ? -1 : 0;
}

void cfgwalk_set_string(struct cfgwalk *w, char **dst, const char *s)
{
    char *copy = s ? strdup(s) : NULL;

    if (s && !copy) {
        w->oom = true;
        return;
    }
    free(*dst);
    *dst = copy;
}

char *cfgwalk_resolve(struct cfgwalk *w, const char *p)
{
    char *out;

    while (p[0] == '.' && p[1] == '/')
        p += 2; /* "./x" is "x": keep messages and logs short */
    if (p[0] == '/' || !w->dir) {
        out = strdup(p);
    } else {
        size_t n = strlen(w->dir) + strlen(p) + 2;
        out = malloc(n);
        if (out)
            snprintf(out, n, "%s%s%s", w->dir, w->dir[strlen(w->dir) - 1] == '/' ? "" : "/", p);
    }
    if (!out)
        w->oom = true;
    return out;
}

bool cfgwalk_is_token(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (!isalnum(c) && !strchr("!#$%&'*+-.^_`|~", c))
            return false;
    }
    return true;
}

/* A JSON number literal taken apart: the value is
 * (-1)^neg * DIGITS * 10^(exp - frac_len), DIGITS being the integer digits
 * followed by the fraction digits. */
struct numlit {
    const char *t;
    bool neg;
    size_t int_start, int_len, frac_start, frac_len;
    long exp; /* saturated far beyond any use */
};

static size_t skip_digits(const char *t, size_t len, size_t i)
{
    while (i < len && isdigit((unsigned char)t[i]))
        i++;
    return i;
}

static int numlit_scan(const char *t, size_t len, struct numlit *n)
{
    size_t i = 0;

    memset(n, 0, sizeof(*n));
    n->t = t;
    n->neg = len > 0 && t[0] == '-';
    n->int_start = i = n->neg;
    i = skip_digits(t, len, i);
    n->int_len = i - n->int_start;
    n->frac_start = i;
    if (i < len && t[i] == '.') {
        n->frac_start = ++i;
        i = skip_digits(t, len, i);
        n->frac_len = i - n->frac_start;
    }
    if (i < len && (t[i] == 'e' || t[i] == 'E')) {
        bool eneg = ++i < len && t[i] == '-';
        i += i < len && (t[i] == '-' || t[i] == '+');
        for (; i < len && isdigit((unsigned char)t[i]); i++) {
            if (n->exp < 1000000)
                n->exp = n->exp * 10 + (t[i] - '0');
        }
        n->exp = eneg ? -n->exp : n->exp;
    }
    return i == len && n->int_len > 0 ? 0 : -1;
}

static int numlit_digit(const struct numlit *n, long long j)
{
    size_t k = (size_t)j;
    return (k < n->int_len ? n->t[n->int_start + k] : n->t[n->frac_start + k - n->int_len]) - '0';
}

int cfgwalk_parse_bp(const char *t, size_t len, uint32_t *bp)
{
    struct numlit n;
    long long lead = -1, last = -1;

    if (numlit_scan(t, len, &n) < 0)
        return -2;
    /* In basis points the value is DIGITS * 10^k: digit j weighs 10^(total-1-j+k). */
    long long total = (long long)(n.int_len + n.frac_len);
    long long k = (long long)n.exp - (long long)n.frac_len + 2;
    for (long long j = 0; j < total; j++) {
        if (numlit_digit(&n, j) != 0) {
            lead = lead < 0 ? j : lead;
            last = j;
        }
    }
    if (lead < 0) {
        *bp = 0; /* zero however written, -0 included */
        return 0;
    }
    if (total - 1 - last + k < 0)
        return -1; /* a non-zero digit below 0.01 */
    if (n.neg || total - 1 - lead + k > 9)
        return -2;
    uint64_t v = 0;
    for (long long j = lead; j < total && total - 1 - j + k >= 0; j++)
        v = v * 10 + (uint64_t)numlit_digit(&n, j);
    for (long long e = 0; e < k; e++)
        v *= 10;
    if (v > UINT32_MAX)
        return -2;
    *bp = (uint32_t)v;
    return 0;
}

/* Writes a range bound the way a person would: 86400000, not 8.64e+07. */
static const char *bound(char *buf, size_t size, double x)
{
    if (x == floor(x) && fabs(x) < 1e15)
        snprintf(buf, size, "%.0f", x);
    else
        snprintf(buf, size, "%g", x);
    return buf;
}

static void range_error(struct cfgwalk *w, const char *path, const json_t *v,
                        const struct cfgwalk_field *f)
{
    char got[64], lo[32], hi[32];

    cfgwalk_literal(w, path, v, got, sizeof(got));
    bound(lo, sizeof(lo), f->lo);
    if (isinf(f->hi))
        cfgwalk_error(w, path, false, "must be at least %s (got %s)", lo, got);
    else
        cfgwalk_error(w, path, false, "out of range %s..%s (got %s)", lo,
                      bound(hi, sizeof(hi), f->hi), got);
}

static int check_u32(struct cfgwalk *w, const json_t *v, const char *path,
                     const struct cfgwalk_field *f, uint32_t *dst)
{
    json_int_t x = json_integer_value(v);

    if (x < (json_int_t)f->lo || x > (json_int_t)f->hi) {
        range_error(w, path, v, f);
        return -1;
    }
    *dst = (uint32_t)x;
    return 0;
}

static int check_double(struct cfgwalk *w, const json_t *v, const char *path,
                        const struct cfgwalk_field *f, double *dst)
{
    double x = json_number_value(v);

    if (!(x >= f->lo && x <= f->hi)) {
        range_error(w, path, v, f);
        return -1;
    }
    *dst = x;
    return 0;
}

static int check_bp(struct cfgwalk *w, const json_t *v, const char *path,
                    const struct cfgwalk_field *f, uint32_t *dst)
{
    struct jsonpos_loc loc;
    double x = json_number_value(v);
    uint32_t bp;
    char got[64];

    if (!(x >= f->lo && x <= f->hi)) {
        range_error(w, path, v, f);
        return -1;
    }
    int rc = -3;
    if (jsonpos_find(w->pos, path, &loc) == 0)
        rc = cfgwalk_parse_bp(loc.text, loc.len, &bp);
    if (rc == -3) {
        /* No source text: judge the binary value, which is exact enough here. */
        double scaled = nearbyint(x * 100);
        rc = fabs(x * 100 - scaled) < 1e-6 ? 0 : -1;
        bp = (uint32_t)scaled;
    }
    if (rc == -1) {
        cfgwalk_error(w, path, false, "at most two decimals (got %s)",
                      cfgwalk_literal(w, path, v, got, sizeof(got)));
        return -1;
    }
    if (rc < 0 || bp < f->lo * 100 || bp > f->hi * 100) {
        range_error(w, path, v, f);
        return -1;
    }
    *dst = bp;
    return 0;
}

/* The string rules of the text kinds. Returns NULL or what is wrong. */
static const char *string_problem(enum cfgwalk_kind kind, const char *s)
{
    if (kind == CFGWALK_TEXT)
        return NULL;
    if (!*s)
        return "must not be empty";
    switch (kind) {
    case CFGWALK_WORD:
        for (const char *p = s; *p; p++) {
            if ((unsigned char)*p <= ' ' || *p == 0x7f)
                return "must not contain spaces or control characters";
        }
        return NULL;
    case CFGWALK_TOKEN:
        return cfgwalk_is_token(s) ? NULL
                                   : "must be an HTTP token (letters, digits and !#$%&'*+-.^_`|~)";
    case CFGWALK_FILE:
        /* A path ends up in messages and logs, one line each. */
        for (const char *p = s; *p; p++) {
            if ((unsigned char)*p < ' ' || *p == 0x7f)
                return "must not contain control characters";
        }
        return NULL;
    case CFGWALK_URLPATH:
        if (*s != '/')
            return "must start with \"/\"";
        for (const char *p = s; *p; p++) {
            if ((unsigned char)*p <= ' ' || *p == 0x7f)
                return "must not contain spaces or control characters";
        }
        return NULL;
    default:
        return NULL;
    }
}

static int check_string(struct cfgwalk *w, const json_t *v, const char *path,
                        const struct cfgwalk_field *f, void *dst)
{
    const char *s = json_string_value(v);
    const char *why = string_problem(f->kind, s);
    char shown[96];

    if (why && !*s) {
        cfgwalk_error(w, path, false, "%s", why);
        return -1;
    }
    if (why) {
        cfgwalk_error(w, path, false, "%s (got %s)", why, cfgwalk_quote(shown, sizeof(shown), s));
        return -1;
    }
    if (f->kind == CFGWALK_ADDR) {
        if (conf_addr_parse(s, dst, &why) == 0)
            return 0;
        cfgwalk_error(w, path, false, "cannot parse %s: %s", cfgwalk_quote(shown, sizeof(shown), s),
                      why);
        return -1;
    }
    if (f->kind == CFGWALK_FILE) {
        char *abs = cfgwalk_resolve(w, s);
        if (!abs)
            return -1;
        free(*(char **)dst);
        *(char **)dst = abs;
        return 0;
    }
    cfgwalk_set_string(w, dst, s);
    return 0;
}

int cfgwalk_value(struct cfgwalk *w, const json_t *v, const char *path,
                  const struct cfgwalk_field *f, void *dst)
{
    if (!cfgwalk_expect(w, v, path, f->kind))
        return -1;
    switch (f->kind) {
    case CFGWALK_U32:
        return check_u32(w, v, path, f, dst);
    case CFGWALK_DOUBLE:
        return check_double(w, v, path, f, dst);
    case CFGWALK_BP:
        return check_bp(w, v, path, f, dst);
    case CFGWALK_BOOL:
        *(bool *)dst = json_is_true(v);
        return 0;
    case CFGWALK_TEXT:
    case CFGWALK_WORD:
    case CFGWALK_TOKEN:
    case CFGWALK_URLPATH:
    case CFGWALK_FILE:
    case CFGWALK_ADDR:
        return check_string(w, v, path, f, dst);
    default:
        return 0; /* the type-only kinds: nothing to store */
    }
}
