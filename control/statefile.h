/* statefile.h - the state of one service in a local file, for restarts
 * without Redis.
 *
 * A save never leaves a half-written file behind: the JSON goes to a
 * temporary file beside the target, is fsynced, renamed over the target, and
 * the folder is fsynced so the rename itself survives a power cut. A load
 * tells "no file yet" (first start) apart from a file that cannot be trusted.
 */
#ifndef SY_CONTROL_STATEFILE_H
#define SY_CONTROL_STATEFILE_H

#include <stddef.h>

#include "control/state.h"

/* Files larger than this are refused by statefile_load(). */
#define STATEFILE_MAX_BYTES 65536

/* Writes s to path atomically (mode 0600). Returns 0, or -1 with why filled;
 * on error the old file is untouched and no temporary file remains. */
int statefile_save(const char *path, const struct state *s, char *why, size_t why_len)
    __attribute__((warn_unused_result));

/* Reads path into *out. Returns 0 when loaded, 1 when there is no file (first
 * start: *out untouched), -1 when it is unreadable, too large or not a valid
 * state (why names the file and the problem). */
int statefile_load(const char *path, struct state *out, char *why, size_t why_len)
    __attribute__((warn_unused_result));

#endif
