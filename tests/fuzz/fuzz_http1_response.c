/* fuzz_http1_response.c - libFuzzer driver for http1_parse_response.
 *
 * Same checks as the request driver; the method of the request answered
 * (GET, HEAD or CONNECT) is chosen from the input, so a crash replays.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/http1.h"

#define FUZZ_MAX_BYTES 2048
#define FUZZ_MAX_HEADERS 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t input_hash(const uint8_t *data, size_t size)
{
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 16777619u;
    return h;
}

static int parse(const uint8_t *data, size_t len, enum http1_method m, struct http1_header *hdrs,
                 struct http1_response *res)
{
    /* An exact copy, so that a read past len is caught by ASan. */
    char *buf = malloc(len > 0 ? len : 1);
    if (buf == NULL)
        abort();
    if (len > 0)
        memcpy(buf, data, len);
    int r = http1_parse_response(buf, len, FUZZ_MAX_BYTES, hdrs, FUZZ_MAX_HEADERS, m, res);
    free(buf);
    return r;
}

static void check_complete(const char *buf, size_t size, int r, enum http1_method m,
                           const struct http1_response *res)
{
    if ((size_t)r > size || r > FUZZ_MAX_BYTES || res->num_headers > FUZZ_MAX_HEADERS)
        abort();
    if (res->status < 100 || res->status > 599 || res->minor_version < 0 || res->minor_version > 1)
        abort();
    if (res->reason < buf || res->reason + res->reason_len > buf + r)
        abort();
    for (size_t i = 0; i < res->num_headers; i++) {
        const struct http1_header *h = &res->headers[i];
        if (h->name < buf || h->name + h->name_len > buf + r || h->name_len == 0 ||
            h->value < buf || h->value + h->value_len > buf + r)
            abort();
    }
    /* Bodiless answers never get a body, whatever their fields say. */
    bool bodiless = res->status < 200 || res->status == 204 || res->status == 304 ||
                    m == HTTP1_M_HEAD || (m == HTTP1_M_CONNECT && res->status < 300);
    if (bodiless && res->body != HTTP1_BODY_NONE)
        abort();
    if (res->body != HTTP1_BODY_LENGTH && res->content_length != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const enum http1_method methods[] = {HTTP1_M_GET, HTTP1_M_HEAD, HTTP1_M_CONNECT};
    struct http1_header hdrs[FUZZ_MAX_HEADERS];
    struct http1_response res;
    const char *buf = (const char *)data;
    uint32_t h = input_hash(data, size);
    enum http1_method m = methods[(h >> 16) % 3];

    int whole = http1_parse_response(buf, size, FUZZ_MAX_BYTES, hdrs, FUZZ_MAX_HEADERS, m, &res);
    if (whole > 0)
        check_complete(buf, size, whole, m, &res);
    else if (whole != HTTP1_INCOMPLETE && whole != HTTP1_BAD && whole != HTTP1_TOO_LARGE)
        abort();

    size_t cut = size == 0 ? 0 : h % (size + 1);
    int part = parse(data, cut, m, hdrs, &res);
    if (part != HTTP1_INCOMPLETE && part != whole)
        abort();
    if (whole > 0 && cut < (size_t)whole && part != HTTP1_INCOMPLETE)
        abort();
    return 0;
}
