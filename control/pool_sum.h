/* pool_sum.h - where a pool's recent outcomes are read from.
 *
 * The detector and the max_rps gate sum a pool's last seconds. Alone, an
 * instance reads its own workers' windows (proxy_pool_sum); in a fleet, the
 * leader reads the fleet's sums (fleet_ring_sum). Both keep one contract,
 * this callback's.
 */
#ifndef SY_CONTROL_POOL_SUM_H
#define SY_CONTROL_POOL_SUM_H

#include <stdint.h>

#include "conf/config.h"
#include "health/window.h"

/* Adds pool c's outcomes of seconds now_s - seconds + 1 .. now_s
 * (window_now_s() seconds; seconds capped at WINDOW_SLOTS) to *out. */
typedef void (*pool_sum_fn)(void *arg, enum conf_colour c, int64_t now_s, unsigned seconds,
                            struct window_sum *out);

#endif
