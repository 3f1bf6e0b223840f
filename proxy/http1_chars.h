/* http1_chars.h - the byte classes of HTTP/1.1's grammar, shared by the head
 * parser (http1.c) and the chunked framing decoder (http1_chunked.c). One
 * table so that classifying a byte costs a single load. */
#ifndef SY_PROXY_HTTP1_CHARS_H
#define SY_PROXY_HTTP1_CHARS_H

#include <stdbool.h>
#include <stdint.h>

#define C_TCHAR 0x01  /* token (RFC 9110 5.6.2) */
#define C_VALUE 0x02  /* field-value byte: VCHAR, SP, HTAB, obs-text */
#define C_VCHAR 0x04  /* visible ASCII, the request-target alphabet */
#define C_QDTEXT 0x08 /* quoted-string text (RFC 9110 5.6.4) */
#define C_OWS 0x10    /* SP or HTAB */

extern const uint8_t http1_char_class[256];

static inline bool http1_is_class(char c, uint8_t cls)
{
    return (http1_char_class[(uint8_t)c] & cls) != 0;
}

#endif
