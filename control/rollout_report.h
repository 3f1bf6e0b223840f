/* rollout_report.h - finished rollouts' reports on disk, so that the last
 * one outlives a restart and an operator can keep them all.
 *
 * Each report is two files in rollout.report_dir, named after the time the
 * rollout ended (UTC, to the second) and its outcome:
 *   rollout-20261123T204207Z-promoted.json   the report, as `rollout report --json`
 *   rollout-20261123T204207Z-promoted.txt    the text `switchyardctl rollout report` prints
 * Each is written to a temporary file beside it, fsynced and renamed, so a
 * reader never sees half a report; the .json comes last, so a .json always
 * has its .txt. The folder must exist: it is never created.
 */
#ifndef SY_CONTROL_ROLLOUT_REPORT_H
#define SY_CONTROL_ROLLOUT_REPORT_H

#include <stddef.h>

#include <jansson.h>

/* Reports larger than this are refused by rollout_report_load_last(). */
#define ROLLOUT_REPORT_MAX_BYTES (1024 * 1024)

/* Writes report (borrowed: an object with "outcome", "ended_at" as
 * "YYYY-MM-DDTHH:MM:SS.mmmZ" and "steps") to dir as its .txt and .json
 * files, mode 0640, and logs their paths. Returns 0, or -1 with err filled
 * (the path and why); after an error no temporary file remains. */
int rollout_report_save(const char *dir, const json_t *report, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* The newest report in dir, by the time in its name (other files and
 * temporaries are ignored): a new reference, or NULL. NULL with err empty
 * when there is none; with err naming the folder or the file and why when
 * it cannot be read or is not a report (an object with "outcome" and
 * "steps"). */
json_t *rollout_report_load_last(const char *dir, char *err, size_t err_len)
    __attribute__((warn_unused_result));

#endif
