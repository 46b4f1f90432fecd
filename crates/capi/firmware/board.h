/* What the Cortex-M4 examples need from the board: text out, a millisecond
 * clock, randomness and an exit status, all through semihosting
 * (startup.c). */
#ifndef BOARD_H
#define BOARD_H

#include <stddef.h>
#include <stdint.h>

void board_puts(const char *s);
uint64_t board_now_ms(void);
/* `len` octets from the debug host's /dev/urandom (semihosting file
 * access); 0 on success. The emulated MPS2 has no TRNG: this is the
 * emulation's only source of randomness, and no real device has it. */
int32_t board_host_random(uint8_t *out, size_t len);
void board_exit(int status) __attribute__((noreturn));

#endif
