/* The ticker, but its manifest (needsnet.json) requires a network device
 * "service": used to test that a device manifest mismatch is refused. */
#include "ticker.c"
