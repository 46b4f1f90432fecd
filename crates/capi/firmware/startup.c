/* Reset and fault handling for the Cortex-M4 examples: the vector table,
 * .data and .bss set up, main, and the result reported to the host through
 * semihosting (QEMU's -semihosting); the host's randomness through it too.
 * No C library. */
#include <stdint.h>

#include "board.h"

extern uint32_t __data_start[], __data_end[], __data_load[];
extern uint32_t __bss_start[], __bss_end[];
extern uint32_t __stack_top[];

int main(void);

/* ARM semihosting: BKPT 0xAB with the operation in r0 and its argument in
 * r1 (Arm's "Semihosting for AArch32 and AArch64"). */
static uintptr_t semihost(uintptr_t op, const void *arg)
{
    register uintptr_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void board_puts(const char *s)
{
    semihost(0x04 /* SYS_WRITE0 */, s);
}

uint64_t board_now_ms(void)
{
    /* SYS_CLOCK: centiseconds since the program started. */
    return (uint64_t)semihost(0x10, 0) * 10u;
}

int32_t board_host_random(uint8_t *out, size_t len)
{
    /* SYS_OPEN (mode 1, "rb"), SYS_READ (returns the octets NOT read),
     * SYS_CLOSE, on the host's file system (-semihosting-config
     * target=native). */
    static const char path[] = "/dev/urandom";
    uintptr_t open_args[3] = {(uintptr_t)path, 1, sizeof path - 1};
    uintptr_t handle = semihost(0x01, open_args);
    if (handle == (uintptr_t)-1) {
        return -1;
    }
    uintptr_t read_args[3] = {handle, (uintptr_t)out, len};
    uintptr_t missing = semihost(0x06, read_args);
    uintptr_t close_args[1] = {handle};
    semihost(0x02, close_args);
    return missing == 0 ? 0 : -1;
}

void board_exit(int status)
{
    /* SYS_EXIT: ADP_Stopped_ApplicationExit ends QEMU with status 0, any
     * other reason with status 1. */
    semihost(0x18, (const void *)(uintptr_t)(status == 0 ? 0x20026 : 0x20023));
    for (;;) {
    }
}

void reset(void)
{
    for (uint32_t *s = __data_load, *d = __data_start; d < __data_end;) {
        *d++ = *s++;
    }
    for (uint32_t *d = __bss_start; d < __bss_end;) {
        *d++ = 0;
    }
    board_exit(main());
}

static void fault(void)
{
    board_puts("fault\n");
    board_exit(1);
}

__attribute__((section(".vectors"), used)) static const void *const vectors[] = {
    __stack_top, /* initial stack pointer */
    reset,       /* reset */
    fault,       /* NMI */
    fault,       /* hard fault */
    fault,       /* memory management fault */
    fault,       /* bus fault */
    fault,       /* usage fault */
};
