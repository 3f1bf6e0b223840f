/* privs.h - dropping root's privileges once everything privileged is done.
 *
 * switchyard starts as root to bind low ports and to open its logs and
 * sockets anywhere; with "user" set it then becomes that user for good,
 * before it serves a single request. Everything done later (saving the
 * state file, reopening logs at reload, rereading the config, writing
 * rollout reports) happens as that user, so privs_drop() also checks that
 * the user can do it.
 */
#ifndef SY_CONTROL_PRIVS_H
#define SY_CONTROL_PRIVS_H

#include "conf/config.h"

/* Becomes cfg->run_as (no-op without "user"): supplementary groups, then
 * gid, then uid, then checks that there is no way back. Must run before
 * the workers start: no request may be served with root's rights. config_path is the file reloads
 * reread (NULL for the embedded config). Returns 0, or -1 after logging why the process must not go
 * on: a failed or incomplete drop, a non-root process asked to become another user, or a state file
 * folder the user cannot write to. */
int privs_drop(const struct config *cfg, const char *config_path)
    __attribute__((warn_unused_result));

#endif
