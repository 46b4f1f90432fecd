/* The TR 33.863 cycle a C UE runs against the Rust EESE (`ciot-e2e eese`),
 * written once for the host example (host_ue.c, over UDP) and the Cortex-M4
 * firmware (../firmware/main.c, over a serial line bridged to UDP). The
 * platform supplies the five functions below; cycle.c does the rest with
 * the C API alone. */
#ifndef CYCLE_H
#define CYCLE_H

#include <stddef.h>
#include <stdint.h>

/* Milliseconds since any fixed point (the UE's clock). */
uint64_t platform_now_ms(void);
/* Sends one datagram to the EESE; 0 on success. */
int platform_send(const uint8_t *datagram, size_t len);
/* Waits up to `wait_ms` for one datagram from the EESE; its length, or 0. */
size_t platform_recv(uint8_t *buf, size_t cap, uint32_t wait_ms);
/* One line of progress (without a newline). */
void platform_log(const char *line);
/* The device's random source, as ciot_e2e_rng: writes `len` octets of fresh
 * randomness to `out` and returns 0, or returns non-zero when it has none.
 * The UE draws its nonce from it at every start. */
int32_t platform_rng(void *ctx, uint8_t *out, size_t len);

/* Runs the cycle: hello, trigger, data; te2e expiry (the EESE's te2e is
 * `te2e_ms`); key-expired error, new trigger, retransmitted message; then a
 * restart (init again: a new nonce, nothing kept) and more data. Returns 0
 * only when every payload was echoed and every step was seen. */
int cycle_run(const uint8_t ck[16], const uint8_t ik[16], uint32_t te2e_ms);

#endif
