/* cfgpolicy.h - the config sections that steer releases: health, detector,
 * rollout and redis.
 *
 * Each function sets the section's defaults in cfg (so that code reading the
 * config never meets an unset value, whether or not the file has the section)
 * and then checks the section of root, if present, recording problems in w.
 * Strings and arrays stored in cfg are new and freed by config_free().
 */
#ifndef SY_CONF_CFGPOLICY_H
#define SY_CONF_CFGPOLICY_H

#include <jansson.h>

#include "conf/cfgwalk.h"
#include "conf/config.h"

void cfgpolicy_health(struct cfgwalk *w, const json_t *root, struct conf_health *h);
void cfgpolicy_detector(struct cfgwalk *w, const json_t *root, struct conf_detector *d);
void cfgpolicy_rollout(struct cfgwalk *w, const json_t *root, struct conf_rollout *r);
void cfgpolicy_redis(struct cfgwalk *w, const json_t *root, struct conf_redis *r);

/* Frees what the functions above stored in the sections; NULL-safe inside. */
void cfgpolicy_free(struct config *cfg);

/* Parses a days expression ("mon-fri", "sat,sun", "daily", "fri-mon") into a
 * bit set (bit 0 = Monday). Returns 0, or -1 with *why set to a static
 * message. */
int cfgpolicy_parse_days(const char *s, uint8_t *days, const char **why);

/* Parses "HH:MM" (00:00..23:59) into minutes after midnight. */
int cfgpolicy_parse_time(const char *s, uint16_t *minutes);

#endif
