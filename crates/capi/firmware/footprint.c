/* The reference firmware of ci/footprint.sh: the C API and nothing else.
 * main calls every entry point of the UE once, on inputs the compiler cannot
 * see (volatile), so the link keeps all of the library a UE can reach and
 * the figures measure exactly that. It is linked, measured and never run.
 * The UE state and the buffers are static, as a device would hold them. */
#include <stddef.h>
#include <stdint.h>

#include "board.h"
#include "ciot_e2e.h"

static ciot_e2e_ue ue;
static uint8_t datagram[CIOT_E2E_MAX_DATAGRAM];
static uint8_t root[CIOT_E2E_ROOT_LEN];

static volatile uint64_t input_now;
static volatile size_t input_len;
static volatile uint8_t input_octet;
volatile int32_t footprint_sink;

/* The random source's place in the image, for the measurement only: this
 * firmware is never run. It is NOT a random source (it copies an input);
 * a device reads its TRNG here (see main.c). */
static int32_t footprint_rng(void *ctx, uint8_t *out, size_t len)
{
    (void)ctx;
    for (size_t i = 0; i < len; i++) {
        out[i] = input_octet;
    }
    return input_octet == 0;
}

int main(void)
{
    static const uint8_t id[] = {'u', 'e', '-', '1'};
    uint8_t ck[CIOT_E2E_CK_LEN], ik[CIOT_E2E_CK_LEN];
    for (size_t i = 0; i < sizeof ck; i++) {
        ck[i] = input_octet;
        ik[i] = input_octet;
    }
    ciot_e2e_ue_config cfg;
    ciot_e2e_transmit transmit;
    ciot_e2e_event event;
    ciot_e2e_received received;
    ciot_e2e_status status;
    uint64_t at;
    int32_t r = ciot_e2e_ue_config_default(&cfg);
    r |= ciot_e2e_int_key(CIOT_E2E_KDF_TS33220, ck, sizeof ck, ik, sizeof ik, root, sizeof root);
    r |= ciot_e2e_ue_init(&ue, sizeof ue, &cfg, CIOT_E2E_ROOT_INT_KEY, root, sizeof root, id,
                          sizeof id, footprint_rng, NULL);
    r |= ciot_e2e_ue_send(&ue, input_now, datagram, input_len);
    r |= ciot_e2e_ue_poll_transmit(&ue, input_now, datagram, sizeof datagram, &transmit);
    r |= ciot_e2e_ue_handle_datagram(&ue, input_now, datagram, input_len, &received);
    r |= ciot_e2e_ue_poll_event(&ue, &event);
    r |= ciot_e2e_ue_poll_timeout(&ue, &at);
    r |= ciot_e2e_ue_handle_timeout(&ue, at);
    r |= ciot_e2e_ue_status(&ue, &status);
    r |= ciot_e2e_ue_replace_root(&ue, input_now, CIOT_E2E_ROOT_INT_KEY, root, sizeof root);
    r |= ciot_e2e_ue_deinit(&ue);
    r |= (int32_t)ciot_e2e_ue_state_size();
    r |= (int32_t)ciot_e2e_version();
    board_puts(ciot_e2e_error_name(r));
    footprint_sink = r;
    return 0;
}
