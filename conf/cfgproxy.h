/* cfgproxy.h - the config sections the data plane runs on: listen, admin,
 * pools and routing.
 *
 * Each function checks its section of root (recording problems in w) and
 * stores what it finds in cfg on top of the defaults already there. Strings
 * and arrays stored in cfg are new and freed by cfgproxy_free().
 */
#ifndef SY_CONF_CFGPROXY_H
#define SY_CONF_CFGPROXY_H

#include <jansson.h>

#include "conf/cfgwalk.h"
#include "conf/config.h"

void cfgproxy_listen(struct cfgwalk *w, const json_t *root, struct config *cfg);
void cfgproxy_admin(struct cfgwalk *w, const json_t *root, struct conf_admin *a);
void cfgproxy_pools(struct cfgwalk *w, const json_t *root, struct conf_pool *pools);
void cfgproxy_routing(struct cfgwalk *w, const json_t *root, struct conf_routing *r);

/* Frees what the functions above stored in cfg. */
void cfgproxy_free(struct config *cfg);

/* True when name is 1..64 characters from A-Z a-z 0-9 . _ - */
bool cfgproxy_server_name_ok(const char *name);

#endif
