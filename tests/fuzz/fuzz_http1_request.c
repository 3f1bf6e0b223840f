/* fuzz_http1_request.c - libFuzzer driver for http1_parse_request.
 *
 * Parses the input whole, checks what a complete head claims, then parses a
 * prefix cut at a point chosen from the input's own bytes: the prefix must
 * be INCOMPLETE or give the whole input's answer, else the parser is not
 * safely incremental and the driver aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/http1.h"

#define FUZZ_MAX_BYTES 2048
#define FUZZ_MAX_HEADERS 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* FNV-1a: a split point that follows the input, so a crash replays. */
static size_t split_point(const uint8_t *data, size_t size)
{
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 16777619u;
    return size == 0 ? 0 : h % (size + 1);
}

static int parse(const uint8_t *data, size_t len, struct http1_header *hdrs,
                 struct http1_request *req)
{
    /* An exact copy, so that a read past len is caught by ASan. */
    char *buf = malloc(len > 0 ? len : 1);
    if (buf == NULL)
        abort();
    if (len > 0)
        memcpy(buf, data, len);
    int r = http1_parse_request(buf, len, FUZZ_MAX_BYTES, hdrs, FUZZ_MAX_HEADERS, req);
    free(buf);
    return r;
}

static int in_head(const char *p, size_t n, const char *buf, int head)
{
    return p >= buf && p + n <= buf + head;
}

/* What a complete head reports must hold together. */
static void check_complete(const char *buf, size_t size, int r, const struct http1_request *req)
{
    if ((size_t)r > size || r > FUZZ_MAX_BYTES || req->num_headers > FUZZ_MAX_HEADERS)
        abort();
    if (req->minor_version != 0 && req->minor_version != 1)
        abort();
    if (!in_head(req->method, req->method_len, buf, r) || req->method_len == 0 ||
        !in_head(req->target, req->target_len, buf, r) || req->target_len == 0)
        abort();
    for (size_t i = 0; i < req->num_headers; i++) {
        const struct http1_header *h = &req->headers[i];
        if (!in_head(h->name, h->name_len, buf, r) || h->name_len == 0 ||
            !in_head(h->value, h->value_len, buf, r))
            abort();
    }
    if (req->body == HTTP1_BODY_CLOSE || (req->body != HTTP1_BODY_LENGTH && req->content_length))
        abort();
    if (req->minor_version == 1 && !(req->flags & HTTP1_F_HAS_HOST))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct http1_header hdrs[FUZZ_MAX_HEADERS];
    struct http1_request req;
    const char *buf = (const char *)data;

    int whole = http1_parse_request(buf, size, FUZZ_MAX_BYTES, hdrs, FUZZ_MAX_HEADERS, &req);
    if (whole > 0)
        check_complete(buf, size, whole, &req);
    else if (whole != HTTP1_INCOMPLETE && whole != HTTP1_BAD && whole != HTTP1_TOO_LARGE)
        abort();

    size_t cut = split_point(data, size);
    int part = parse(data, cut, hdrs, &req);
    if (part != HTTP1_INCOMPLETE && part != whole)
        abort();
    if (whole > 0 && cut < (size_t)whole && part != HTTP1_INCOMPLETE)
        abort();
    return 0;
}
