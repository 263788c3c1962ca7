/* A hung test unikernel: starts and keeps running, but never says ready. */
#include "common.h"

int solo5_app_main(const struct solo5_start_info *si __attribute__((unused)))
{
    uk_puts("version: noready\n");
    for (;;)
        uk_sleep(1000000000ULL);
    return SOLO5_EXIT_SUCCESS;
}
