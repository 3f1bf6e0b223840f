/* ctl.c - switchyardctl, the operator's client for the control socket.
 *
 * This version knows the command set and its usage; the control socket
 * itself (control/socket.c) is not served yet, so every command reports that
 * and exits 2, the exit code for "could not reach switchyard".
 */
#include <stdio.h>
#include <string.h>

static const char usage_text[] =
    "usage: switchyardctl [-s SOCKET] [--json] COMMAND [ARGS]\n"
    "\n"
    "Steers a running switchyard through its control socket.\n"
    "\n"
    "Commands:\n"
    "  status                         state, weights, servers\n"
    "  weight PERCENT                 set the candidate's share (0..100, 0.01 steps)\n"
    "  pause | resume                 hold or continue a rollout\n"
    "  promote                        make the candidate the new stable\n"
    "  rollback [--reason TEXT]       send all traffic back to stable now\n"
    "  server disable|enable|drain POOL/NAME\n"
    "  reload                         re-read the config file\n"
    "  events [--follow]              the audit trail\n"
    "\n"
    "Options:\n"
    "  -s, --socket PATH   control socket (default: admin.socket of the config)\n"
    "      --json          print the raw JSON reply\n"
    "  -h, --help          this text\n"
    "\n"
    "Exit codes: 0 done, 1 refused by switchyard, 2 usage or connection error.\n"
    "\n"
    "This version of switchyard does not serve the control socket yet: the\n"
    "split comes from routing.candidate_percent in the config.\n";

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(usage_text, stdout);
            return 0;
        }
    }
    if (argc < 2) {
        fputs(usage_text, stderr);
        return 2;
    }
    fprintf(stderr,
            "switchyardctl: %s: the control socket is not available in this version of "
            "switchyard\n",
            argv[argc - 1]);
    return 2;
}
