/* cfguser.h - the top-level "user" and "group" keys: whom switchyard runs as
 * once its listeners and sockets are bound.
 *
 * Names are resolved at load (so that `switchyard -t` names an unknown user
 * or group with its position); the privilege drop itself is the control
 * layer's (control/privs.h).
 */
#ifndef SY_CONF_CFGUSER_H
#define SY_CONF_CFGUSER_H

#include <jansson.h>

#include "conf/cfgwalk.h"
#include "conf/config.h"

/* Checks root's "user" and "group" and resolves them into r. Without
 * "user", r->user stays NULL: no drop. */
void cfguser_parse(struct cfgwalk *w, const json_t *root, struct conf_run_as *r);

/* Frees what cfguser_parse stored in r. */
void cfguser_free(struct conf_run_as *r);

#endif
