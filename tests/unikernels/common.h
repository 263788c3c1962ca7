/* Shared helpers for the test unikernels: Solo5 has no libc. */
#include "solo5.h"

static inline unsigned long uk_strlen(const char *s)
{
    unsigned long n = 0;
    while (s[n])
        n++;
    return n;
}

static inline void uk_puts(const char *s)
{
    solo5_console_write(s, uk_strlen(s));
}

/* Sleep for ns nanoseconds without busy waiting. */
static inline void uk_sleep(solo5_time_t ns)
{
    solo5_time_t until = solo5_clock_monotonic() + ns;
    while (solo5_clock_monotonic() < until) {
        solo5_handle_set_t ready;
        solo5_yield(until, &ready);
    }
}

#ifndef UK_VERSION
#define UK_VERSION "dev"
#endif
