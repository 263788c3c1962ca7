/* A broken test unikernel: exits with failure at once. */
#include "common.h"

int solo5_app_main(const struct solo5_start_info *si __attribute__((unused)))
{
    uk_puts("version: crash\nfatal: giving up\n");
    return SOLO5_EXIT_FAILURE;
}
