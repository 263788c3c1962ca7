/* A new image that passes its health check and dies soon after: prints its
 * version and ready, then exits with failure 3 s later (the crash-loop
 * tests: supervision restarts it, and rolls it back when it keeps dying). */
#include "common.h"

int solo5_app_main(const struct solo5_start_info *si __attribute__((unused)))
{
    uk_puts("version: crashlater\nready\n");
    uk_sleep(3000000000ULL);
    uk_puts("fatal: crashing after 3 s\n");
    return SOLO5_EXIT_FAILURE;
}
