/* The cycle of cycle.h on the ciot-e2e C API. It uses no C library beyond
 * freestanding headers, so the same file runs on a host and on a bare
 * Cortex-M4. */
#include "cycle.h"

#include <stdbool.h>

#include "ciot_e2e.h"

/* Everything a UE needs, allocated by the caller: the state and the
 * buffers. Nothing is stored across a restart. */
static ciot_e2e_ue ue;
static uint8_t out[CIOT_E2E_MAX_DATAGRAM];
static uint8_t in[512];

static const uint8_t ue_id[] = {'u', 'e', '-', 'c'};

/* What the run has seen. */
static struct {
    unsigned rekeyed, expired, retransmitted, key_expired_errors, hellos, starts;
} seen;

static void say(const char *a, const char *b)
{
    char line[160];
    size_t n = 0;
    for (const char *s = a; *s && n + 1 < sizeof line; s++) {
        line[n++] = *s;
    }
    for (const char *s = b; *s && n + 1 < sizeof line; s++) {
        line[n++] = *s;
    }
    line[n] = 0;
    platform_log(line);
}

static const char *num(uint64_t v)
{
    static char buf[24];
    char *p = buf + sizeof buf - 1;
    *p = 0;
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return p;
}

static bool fail(const char *what, int32_t code)
{
    say(what, ciot_e2e_error_name(code));
    return false;
}

static size_t length(const char *s)
{
    size_t n = 0;
    while (s[n]) {
        n++;
    }
    return n;
}

/* Drains the effects: every datagram to send, then every event. */
static bool drain(void)
{
    int32_t r;
    ciot_e2e_transmit t;
    while ((r = ciot_e2e_ue_poll_transmit(&ue, platform_now_ms(), out, sizeof out, &t)) == 1) {
        if (t.kind == CIOT_E2E_DATAGRAM_HELLO) {
            seen.hellos++;
            say("ue: hello, seq ", num(t.seq));
        } else {
            say(t.flag ? "ue: data again (retransmitted), seq " : "ue: data, seq ", num(t.seq));
        }
        if (platform_send(out, t.len) != 0) {
            platform_log("ue: send failed");
            return false;
        }
    }
    if (r < 0) {
        return fail("poll_transmit: ", r);
    }
    ciot_e2e_event e;
    while ((r = ciot_e2e_ue_poll_event(&ue, &e)) == 1) {
        switch (e.kind) {
        case CIOT_E2E_EVENT_REKEYED:
            seen.rekeyed++;
            say("ue: event rekeyed, trigger counter ", num(e.counter));
            break;
        case CIOT_E2E_EVENT_KEYS_EXPIRED:
            seen.expired++;
            say("ue: event keys expired, cause ", num(e.cause));
            break;
        case CIOT_E2E_EVENT_RETRANSMITTED:
            seen.retransmitted++;
            say("ue: event retransmitted, seq ", num(e.seq));
            break;
        default:
            break;
        }
    }
    if (r < 0) {
        return fail("poll_event: ", r);
    }
    return true;
}

/* Starts the UE: at power-up, and again at every restart. The random
 * source gives it a new nonce each time; nothing else is needed, whatever
 * the device's storage holds. */
static bool start(const ciot_e2e_ue_config *cfg, const uint8_t root[CIOT_E2E_ROOT_LEN])
{
    int32_t r = ciot_e2e_ue_init(&ue, sizeof ue, cfg, CIOT_E2E_ROOT_INT_KEY, root,
                                 CIOT_E2E_ROOT_LEN, ue_id, sizeof ue_id, platform_rng, NULL);
    if (r != CIOT_E2E_OK) {
        return fail("init: ", r);
    }
    seen.starts++;
    return true;
}

static bool same(const uint8_t *a, size_t n, const char *b)
{
    if (n != length(b)) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (a[i] != (uint8_t)b[i]) {
            return false;
        }
    }
    return true;
}

/* Runs the UE for up to `wait_ms`: datagrams in, timers, effects out.
 * Returns true as soon as `echo` arrives (never when it is NULL). */
static bool run(uint32_t wait_ms, const char *echo, bool *ok)
{
    uint64_t until = platform_now_ms() + wait_ms;
    while (platform_now_ms() < until) {
        if (!drain()) {
            *ok = false;
            return false;
        }
        uint64_t now = platform_now_ms(), at;
        uint32_t wait = 20;
        if (ciot_e2e_ue_poll_timeout(&ue, &at) == 1 && at <= now) {
            ciot_e2e_ue_handle_timeout(&ue, now);
            continue;
        }
        size_t n = platform_recv(in, sizeof in, wait);
        if (n == 0) {
            continue;
        }
        ciot_e2e_received got;
        int32_t r = ciot_e2e_ue_handle_datagram(&ue, platform_now_ms(), in, n, &got);
        if (r != CIOT_E2E_OK) {
            say("ue: datagram dropped: ", ciot_e2e_error_name(r));
            continue;
        }
        if (got.kind == CIOT_E2E_RECEIVED_CONTROL) {
            if (got.message_type == 2) {
                seen.key_expired_errors++;
                platform_log("ue: key-expired error from the EESE");
            } else {
                platform_log("ue: derive trigger from the EESE");
            }
        } else if (echo && same(in + got.payload_offset, got.payload_len, echo)) {
            say("ue: received ", echo);
            return true;
        }
    }
    return false;
}

/* Sends `payload` and waits for its echo, sending it again (a new message)
 * when the echo does not come. */
static bool exchange(const char *payload)
{
    char echo[CIOT_E2E_HOLD + 8] = "echo: ";
    size_t n = length(payload);
    for (size_t i = 0; i <= n; i++) {
        echo[6 + i] = payload[i];
    }
    bool ok = true;
    for (int attempt = 0; attempt < 5 && ok; attempt++) {
        int32_t r;
        while ((r = ciot_e2e_ue_send(&ue, platform_now_ms(), (const uint8_t *)payload, n)) ==
                   CIOT_E2E_ERR_BUSY &&
               ok) {
            run(50, NULL, &ok);
        }
        if (r < 0) {
            return fail("send: ", r);
        }
        say(r == CIOT_E2E_HELD ? "ue: holding until a keyset arrives: " : "ue: queued: ", payload);
        if (run(3000, echo, &ok)) {
            return true;
        }
    }
    say("ue: no echo for ", payload);
    return false;
}

int cycle_run(const uint8_t ck[16], const uint8_t ik[16], uint32_t te2e_ms)
{
    if (ciot_e2e_version() >> 16 != CIOT_E2E_VERSION_MAJOR) {
        platform_log("the library is not of this header's major version");
        return 1;
    }
    uint8_t root[CIOT_E2E_ROOT_LEN];
    int32_t r = ciot_e2e_int_key(CIOT_E2E_KDF_TS33220, ck, 16, ik, 16, root, sizeof root);
    if (r != CIOT_E2E_OK) {
        fail("int_key: ", r);
        return 1;
    }
    ciot_e2e_ue_config cfg;
    ciot_e2e_ue_config_default(&cfg);
    cfg.hello_backoff_ms = 200;
    cfg.hello_backoff_max_ms = 2000;
    cfg.probe_after_ms = 2000;

    platform_log("step 1: hello, trigger, data");
    if (!start(&cfg, root) || !exchange("message 1") || seen.hellos == 0 || seen.rekeyed != 1) {
        return 1;
    }

    platform_log("step 2: te2e runs out at the EESE");
    bool ok = true;
    run(te2e_ms + 1000, NULL, &ok);
    if (!ok) {
        return 1;
    }

    platform_log("step 3: key-expired error, new trigger, retransmitted message");
    if (!exchange("message 2") || seen.key_expired_errors == 0 || seen.rekeyed < 2 ||
        seen.retransmitted == 0) {
        platform_log("step 3: missing the error, the new trigger or the retransmission");
        return 1;
    }

    platform_log("step 4: restart: init again, with a new nonce (nothing was stored)");
    ciot_e2e_ue_deinit(&ue);
    bool started = start(&cfg, root);
    for (size_t i = 0; i < sizeof root; i++) {
        root[i] = 0;
    }
    unsigned rekeyed = seen.rekeyed;
    if (!started || !exchange("message 3") || !exchange("message 4") || seen.rekeyed == rekeyed) {
        return 1;
    }
    ciot_e2e_ue_deinit(&ue);
    say("cycle complete: every payload echoed; starts: ", num(seen.starts));
    return 0;
}
