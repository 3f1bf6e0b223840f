/* http1_chunked.c - chunked framing, checked byte by byte as it passes. */
#include "proxy/http1_chunked.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "conf/hexdigit.h"
#include "proxy/http1_chars.h"

/* Scanner states kept in c->sub, per framing state. */
enum {
    /* HTTP1_CHUNK_SIZE: chunk-size [ chunk-ext ] CRLF */
    SZ_HEX = 0,  /* in chunk-size */
    SZ_SEMI_WS,  /* BWS after the size or an extension: a ";" must follow */
    SZ_NAME_PRE, /* BWS after ";" */
    SZ_NAME,     /* in ext-name */
    SZ_NAME_WS,  /* BWS after ext-name: "=" or ";" must follow */
    SZ_VAL_PRE,  /* BWS after "=" */
    SZ_TOKEN,    /* in a token ext-val */
    SZ_QUOTED,   /* in a quoted-string ext-val */
    SZ_QESC,     /* after a backslash in a quoted-string */
    SZ_AFTER_Q,  /* after the closing quote */
    SZ_LF,       /* after the line's CR */
    /* HTTP1_CHUNK_DATA_CRLF */
    DC_CR = 0,
    DC_LF,
    /* HTTP1_CHUNK_TRAILERS: *( field-line CRLF ) CRLF */
    TR_START = 0, /* at the start of a line */
    TR_NAME,
    TR_VALUE,
    TR_LF,     /* after a field line's CR */
    TR_END_LF, /* after the CR of the empty line */
};

void http1_chunked_init(struct http1_chunked *c)
{
    memset(c, 0, sizeof(*c));
    c->state = HTTP1_CHUNK_SIZE;
    c->sub = SZ_HEX;
}

/* One digit of chunk-size into data_left. At most 16 digits, and the value
 * must stay within 2^63-1 so that every consumer can hold it signed. */
static int size_digit(struct http1_chunked *c, int d)
{
    if (c->line_len > 16 || c->data_left > ((uint64_t)INT64_MAX - (uint64_t)d) / 16)
        return -1;
    c->data_left = c->data_left * 16 + (uint64_t)d;
    return 0;
}

/* The next scanner state after the ext-name or ext-val byte ch ended it. */
static int ext_end(char ch)
{
    if (ch == ';')
        return SZ_NAME_PRE;
    if (ch == '\r')
        return SZ_LF;
    return http1_is_class(ch, C_OWS) ? SZ_SEMI_WS : -1;
}

/* ext-name and the BWS around it: ";" BWS ext-name BWS, then "=" or the end. */
static int ext_name_step(uint8_t sub, char ch)
{
    bool ows = http1_is_class(ch, C_OWS);

    switch (sub) {
    case SZ_SEMI_WS:
        return ows ? SZ_SEMI_WS : ch == ';' ? SZ_NAME_PRE : -1;
    case SZ_NAME_PRE:
        return ows ? SZ_NAME_PRE : http1_is_class(ch, C_TCHAR) ? SZ_NAME : -1;
    case SZ_NAME:
        if (http1_is_class(ch, C_TCHAR))
            return SZ_NAME;
        return ch == '=' ? SZ_VAL_PRE : ows ? SZ_NAME_WS : ext_end(ch);
    default: /* SZ_NAME_WS: the whitespace must lead somewhere */
        if (ows)
            return SZ_NAME_WS;
        return ch == '=' ? SZ_VAL_PRE : ch == ';' ? SZ_NAME_PRE : -1;
    }
}

/* ext-val: BWS ( token / quoted-string ). */
static int ext_value_step(uint8_t sub, char ch)
{
    switch (sub) {
    case SZ_VAL_PRE:
        if (http1_is_class(ch, C_OWS))
            return SZ_VAL_PRE;
        return ch == '"' ? SZ_QUOTED : http1_is_class(ch, C_TCHAR) ? SZ_TOKEN : -1;
    case SZ_TOKEN:
        return http1_is_class(ch, C_TCHAR) ? SZ_TOKEN : ext_end(ch);
    case SZ_QUOTED:
        if (ch == '"')
            return SZ_AFTER_Q;
        if (ch == '\\')
            return SZ_QESC;
        return http1_is_class(ch, C_QDTEXT) ? SZ_QUOTED : -1;
    case SZ_QESC: /* quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text ) */
        return http1_is_class(ch, C_VALUE) ? SZ_QUOTED : -1;
    default: /* SZ_AFTER_Q */
        return ext_end(ch);
    }
}

/* Advances the chunk-size line scanner over ch; returns the next sub state
 * or -1. line_len already counts ch. */
static int size_line_step(struct http1_chunked *c, char ch)
{
    int d;

    if (c->sub == SZ_HEX) {
        if ((d = hex_digit_value(ch)) >= 0)
            return size_digit(c, d) < 0 ? -1 : SZ_HEX;
        return c->line_len == 1 ? -1 : ext_end(ch); /* the size is 1*HEXDIG */
    }
    if (c->sub <= SZ_NAME_WS)
        return ext_name_step(c->sub, ch);
    return ext_value_step(c->sub, ch);
}

/* Consumes bytes of a chunk-size line; returns the count or -1. */
static ssize_t parse_size_line(struct http1_chunked *c, const char *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (++c->line_len > HTTP1_CHUNK_LINE_MAX)
            return -1;
        if (c->sub != SZ_LF) {
            int next = size_line_step(c, buf[i]);
            if (next < 0)
                return -1;
            c->sub = (uint8_t)next;
            continue;
        }
        if (buf[i] != '\n')
            return -1;
        c->line_len = 0;
        if (c->data_left == 0) {
            c->state = HTTP1_CHUNK_TRAILERS; /* last-chunk */
            c->sub = TR_START;
        } else {
            c->state = HTTP1_CHUNK_DATA; /* the caller moves the data */
        }
        return (ssize_t)(i + 1);
    }
    return (ssize_t)len;
}

/* Consumes the CRLF that closes a chunk's data. */
static ssize_t parse_data_crlf(struct http1_chunked *c, const char *buf, size_t len)
{
    size_t i = 0;

    if (c->sub == DC_CR && i < len) {
        if (buf[i++] != '\r')
            return -1;
        c->sub = DC_LF;
    }
    if (c->sub == DC_LF && i < len) {
        if (buf[i++] != '\n')
            return -1;
        c->state = HTTP1_CHUNK_SIZE;
        c->sub = SZ_HEX;
        c->line_len = 0;
        c->data_left = 0;
    }
    return (ssize_t)i;
}

static int trailer_step(uint8_t sub, char ch)
{
    switch (sub) {
    case TR_START:
        if (ch == '\r')
            return TR_END_LF;
        return http1_is_class(ch, C_TCHAR) ? TR_NAME : -1; /* obs-fold too is BAD */
    case TR_NAME:
        if (ch == ':')
            return TR_VALUE;
        return http1_is_class(ch, C_TCHAR) ? TR_NAME : -1;
    case TR_VALUE:
        if (ch == '\r')
            return TR_LF;
        return http1_is_class(ch, C_VALUE) ? TR_VALUE : -1;
    case TR_LF:
        return ch == '\n' ? TR_START : -1;
    }
    return -1;
}

/* Consumes trailer section bytes. The fields are only checked, not kept:
 * the caller forwards the bytes as they are. */
static ssize_t parse_trailers(struct http1_chunked *c, const char *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (++c->trailer_bytes > HTTP1_CHUNK_TRAILERS_MAX)
            return -1;
        if (c->sub == TR_END_LF) {
            if (buf[i] != '\n')
                return -1;
            c->state = HTTP1_CHUNK_DONE;
            return (ssize_t)(i + 1);
        }
        int next = trailer_step(c->sub, buf[i]);
        if (next < 0)
            return -1;
        c->sub = (uint8_t)next;
    }
    return (ssize_t)len;
}

ssize_t http1_chunked_parse(struct http1_chunked *c, const char *buf, size_t len)
{
    size_t used = 0;

    while (used < len) {
        ssize_t n;
        switch (c->state) {
        case HTTP1_CHUNK_SIZE:
            n = parse_size_line(c, buf + used, len - used);
            break;
        case HTTP1_CHUNK_DATA:
            if (c->data_left > 0)
                return (ssize_t)used; /* data is the caller's to move */
            c->state = HTTP1_CHUNK_DATA_CRLF;
            c->sub = DC_CR;
            continue;
        case HTTP1_CHUNK_DATA_CRLF:
            n = parse_data_crlf(c, buf + used, len - used);
            break;
        case HTTP1_CHUNK_TRAILERS:
            n = parse_trailers(c, buf + used, len - used);
            break;
        default: /* HTTP1_CHUNK_DONE: nothing more belongs to this body */
            return (ssize_t)used;
        }
        if (n < 0)
            return HTTP1_BAD;
        used += (size_t)n;
    }
    return (ssize_t)used;
}

void http1_chunked_data_done(struct http1_chunked *c, uint64_t n)
{
    if (c->state != HTTP1_CHUNK_DATA)
        return;
    c->data_left -= n < c->data_left ? n : c->data_left;
    if (c->data_left == 0) {
        c->state = HTTP1_CHUNK_DATA_CRLF;
        c->sub = DC_CR;
    }
}
