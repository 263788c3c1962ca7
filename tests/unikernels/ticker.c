/* A healthy test unikernel: prints its version and a ready line, then ticks
 * forever. Built as ticker-v1/v2/v3 with -DUK_VERSION for the pipeline test. */
#include "common.h"

int solo5_app_main(const struct solo5_start_info *si)
{
    uk_puts("version: " UK_VERSION "\n");
    uk_puts("cmdline: ");
    uk_puts(si->cmdline);
    uk_puts("\nready\n");
    for (;;) {
        uk_sleep(1000000000ULL);
        uk_puts("tick\n");
    }
    return SOLO5_EXIT_SUCCESS;
}
