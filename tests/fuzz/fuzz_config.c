/* fuzz_config.c - libFuzzer driver for the config loader, config_load_string().
 *
 * The input is a config file, "fuzz.json" in "/". A refusal must carry at
 * least one message, each one line of printable text that names the file; a
 * config that loads must carry none and hold what config.h promises (counts
 * and ranges, unique server names, absolute paths). Anything else aborts.
 * The loader only stats zone files under /usr/share/zoneinfo for rollout
 * window time zones and looks user and group names up in the system's
 * database: nothing the input names is opened, nothing is written.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf/cfgproxy.h"
#include "conf/config.h"

#define FUZZ_MAX_BYTES 16384
#define FUZZ_NAME "fuzz.json"
#define MINUTES_PER_DAY 1440u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok)
{
    if (!ok)
        abort();
}

/* Messages reach a terminal or a log: one line each, no control bytes. */
static void check_message(const char *msg)
{
    check(strncmp(msg, FUZZ_NAME ":", sizeof(FUZZ_NAME ":") - 1) == 0);
    for (const char *p = msg; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        check(c >= 0x20 && c != 0x7f);
    }
}

static void check_path(const char *path)
{
    check(path == NULL || path[0] == '/');
}

static int name_taken(const struct config *cfg, int colour, size_t index, const char *name)
{
    for (int c = 0; c <= colour; c++) {
        size_t end = c == colour ? index : cfg->pools[c].nservers;
        for (size_t i = 0; i < end; i++) {
            if (strcmp(cfg->pools[c].servers[i].name, name) == 0)
                return 1;
        }
    }
    return 0;
}

static void check_pools(const struct config *cfg)
{
    for (int c = 0; c < CONF_COLOURS; c++) {
        const struct conf_pool *pool = &cfg->pools[c];
        check(pool->nservers >= 1 && pool->nservers <= CONF_POOL_SERVERS_MAX);
        for (size_t i = 0; i < pool->nservers; i++) {
            const struct conf_server *s = &pool->servers[i];
            check(cfgproxy_server_name_ok(s->name) && !name_taken(cfg, c, i, s->name));
            check(s->weight >= 1 && s->weight <= 1000);
        }
    }
}

static void check_rollout(const struct conf_rollout *r)
{
    for (size_t i = 0; i < r->nsteps; i++)
        check(r->steps_bp[i] > (i > 0 ? r->steps_bp[i - 1] : 0));
    if (r->nsteps > 0)
        check(r->steps_bp[r->nsteps - 1] == CONF_WEIGHT_BP_MAX);
    for (size_t i = 0; i < r->nwindows; i++) {
        const struct conf_window *w = &r->windows[i];
        check(w->days <= 0x7f && w->from_min < MINUTES_PER_DAY && w->to_min < MINUTES_PER_DAY);
        check(w->tz != NULL && w->tz[0] != '\0' && w->tz[0] != '/' && !strstr(w->tz, ".."));
    }
    for (size_t i = 0; i < r->npreflight; i++)
        check(r->preflight[i].nheaders <= CONF_PROBE_HEADERS_MAX);
    check_path(r->report_dir);
}

/* What config.h promises of a config that loaded. */
static void check_loaded(const struct config *cfg)
{
    check(cfg->workers >= 1 && cfg->workers <= 256);
    check(cfg->nlisten >= 1);
    for (size_t i = 0; i < cfg->nlisten; i++) {
        check_path(cfg->listen[i].tls.cert);
        check_path(cfg->listen[i].tls.key);
    }
    check_pools(cfg);
    check(cfg->routing.stable == CONF_BLUE || cfg->routing.stable == CONF_GREEN);
    check(cfg->routing.candidate_bp <= CONF_WEIGHT_BP_MAX);
    check_rollout(&cfg->rollout);
    check_path(cfg->admin.socket);
    check_path(cfg->state_file);
    check_path(cfg->audit_log_path);
    check_path(cfg->access_log_path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct conf_errors errs = {0};

    if (size > FUZZ_MAX_BYTES)
        return 0;
    /* An exact copy without a NUL, so that a read past size is caught by ASan. */
    char *text = malloc(size > 0 ? size : 1);
    check(text != NULL);
    if (size > 0)
        memcpy(text, data, size);
    struct config *cfg = config_load_string(text, size, FUZZ_NAME, "/", &errs);
    if (cfg != NULL) {
        check(errs.n == 0);
        check_loaded(cfg);
    } else {
        check(errs.n >= 1);
    }
    for (size_t i = 0; i < errs.n; i++)
        check_message(errs.msgs[i]);
    config_free(cfg);
    conf_errors_clear(&errs);
    free(text);
    return 0;
}
