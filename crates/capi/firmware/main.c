/* The cycle of examples/cycle.h on a Cortex-M4 (QEMU's mps2-an386), against
 * the Rust EESE: datagrams travel as frames over UART0, which QEMU connects
 * to a socket; the bridge (firmware/bridge) relays them to `ciot-e2e eese`
 * over UDP. Progress goes out through semihosting; the exit status is the
 * cycle's. Run by ci/c-api.sh. */
#include <stddef.h>
#include <stdint.h>

#include "../examples/cycle.h"
#include "board.h"

/* The AKA keys the EESE is started with (docs/c-api.md), and its te2e. */
static const uint8_t ck[16] = {0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
                               0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10};
static const uint8_t ik[16] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
                               0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff};
#define TE2E_MS 2000u

/* CMSDK APB UART0 of the MPS2 (Arm DDI 0479C §4.2). */
#define UART0 0x40004000u
#define UART_DATA (*(volatile uint32_t *)(UART0 + 0x00))
#define UART_STATE (*(volatile uint32_t *)(UART0 + 0x04))
#define UART_CTRL (*(volatile uint32_t *)(UART0 + 0x08))
#define UART_BAUDDIV (*(volatile uint32_t *)(UART0 + 0x10))
#define STATE_TX_FULL 0x1u
#define STATE_RX_FULL 0x2u

/* A frame: 0xc1, the length (two octets, big endian), the datagram. */
#define FRAME_START 0xc1u

static void uart_put(uint8_t b)
{
    while (UART_STATE & STATE_TX_FULL) {
    }
    UART_DATA = b;
}

uint64_t platform_now_ms(void)
{
    return board_now_ms();
}

int platform_send(const uint8_t *datagram, size_t len)
{
    if (len > 0xffff) {
        return -1;
    }
    uart_put(FRAME_START);
    uart_put((uint8_t)(len >> 8));
    uart_put((uint8_t)len);
    for (size_t i = 0; i < len; i++) {
        uart_put(datagram[i]);
    }
    return 0;
}

size_t platform_recv(uint8_t *buf, size_t cap, uint32_t wait_ms)
{
    /* Frame reassembly survives between calls: a frame may span them. */
    static enum { START, LEN_HI, LEN_LO, BODY } at = START;
    static size_t want, got;
    uint64_t until = board_now_ms() + wait_ms;
    for (uint32_t spins = 0;; spins++) {
        if (UART_STATE & STATE_RX_FULL) {
            uint8_t b = (uint8_t)UART_DATA;
            switch (at) {
            case START:
                at = b == FRAME_START ? LEN_HI : START;
                break;
            case LEN_HI:
                want = (size_t)b << 8;
                at = LEN_LO;
                break;
            case LEN_LO:
                want |= b;
                got = 0;
                at = want == 0 ? START : BODY;
                break;
            case BODY:
                if (got < cap) {
                    buf[got] = b;
                }
                if (++got == want) {
                    at = START;
                    /* A datagram longer than the buffer is dropped. */
                    if (want <= cap) {
                        return want;
                    }
                }
                break;
            }
            continue;
        }
        /* The clock is a semihosting call: read it now and then. */
        if ((spins & 0xff) == 0 && board_now_ms() >= until) {
            return 0;
        }
    }
}

/* The UE's random source. The MPS2 AN386 that QEMU emulates has no TRNG,
 * so under QEMU the nonce comes from the debug host's /dev/urandom over
 * semihosting: real randomness, but only because a host is attached. A
 * real device must read its TRNG here (e.g. the RNG peripheral of an
 * STM32, nRF52 or i.MX RT, or a DRBG seeded from it) and return non-zero
 * when it has none: the UE then does not start, which is the safe
 * outcome. Never a constant, a counter or the clock. */
int32_t platform_rng(void *ctx, uint8_t *out, size_t len)
{
    (void)ctx;
    return board_host_random(out, len);
}

void platform_log(const char *line)
{
    board_puts(line);
    board_puts("\n");
}

int main(void)
{
    UART_BAUDDIV = 16;
    UART_CTRL = 0x3; /* TX and RX enabled */
    board_puts("firmware: Cortex-M4, ciot-e2e C API\n");
    return cycle_run(ck, ik, TE2E_MS);
}
