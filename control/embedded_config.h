/* embedded_config.h - conf/examples/demo.json, compiled into the binary. */
#ifndef SY_CONTROL_EMBEDDED_CONFIG_H
#define SY_CONTROL_EMBEDDED_CONFIG_H

#include <stddef.h>

extern const char *const embedded_config_json;
extern const size_t embedded_config_len;

#endif
