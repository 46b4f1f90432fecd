/* What the Cortex-M4 examples need from the board: text out, a millisecond
 * clock and an exit status, all through semihosting (startup.c). */
#ifndef BOARD_H
#define BOARD_H

#include <stdint.h>

void board_puts(const char *s);
uint64_t board_now_ms(void);
void board_exit(int status) __attribute__((noreturn));

#endif
