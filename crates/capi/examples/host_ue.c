/* A UE in C on a host: the cycle of cycle.h against `ciot-e2e eese` over
 * UDP. Run by ci/c-api.sh:
 *
 *   host_ue <eese-ip> <eese-port> <ck-hex> <ik-hex> <te2e-seconds>
 *
 * Exits 0 only if every payload was echoed and every step of the cycle was
 * seen. */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cycle.h"

static int sock = -1;

uint64_t platform_now_ms(void)
{
    static uint64_t start;
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    uint64_t ms = (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
    if (start == 0) {
        start = ms - 1;
    }
    return ms - start;
}

int platform_send(const uint8_t *datagram, size_t len)
{
    return send(sock, datagram, len, 0) == (ssize_t)len ? 0 : -1;
}

size_t platform_recv(uint8_t *buf, size_t cap, uint32_t wait_ms)
{
    struct pollfd p = {.fd = sock, .events = POLLIN};
    if (poll(&p, 1, (int)wait_ms) != 1) {
        return 0;
    }
    ssize_t n = recv(sock, buf, cap, 0);
    return n > 0 ? (size_t)n : 0;
}

/* The operating system's CSPRNG: getrandom(2), or /dev/urandom where the
 * kernel has no getrandom. Never a fallback to anything weaker: without
 * randomness the UE does not start (CIOT_E2E_ERR_RNG). */
int32_t platform_rng(void *ctx, uint8_t *out, size_t len)
{
    (void)ctx;
    size_t got = 0;
    while (got < len) {
        ssize_t n = getrandom(out + got, len - got, 0);
        if (n > 0) {
            got += (size_t)n;
        } else if (n < 0 && errno == ENOSYS) {
            break;
        } else if (n < 0 && errno != EINTR) {
            return -1;
        }
    }
    if (got == len) {
        return 0;
    }
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    while (got < len) {
        ssize_t n = read(fd, out + got, len - got);
        if (n > 0) {
            got += (size_t)n;
        } else if (n == 0 || errno != EINTR) {
            break;
        }
    }
    close(fd);
    return got == len ? 0 : -1;
}

void platform_log(const char *line)
{
    printf("[%8.3f s] %s\n", (double)platform_now_ms() / 1000.0, line);
    fflush(stdout);
}

static int hex16(const char *hex, uint8_t out[16])
{
    if (strlen(hex) != 32) {
        return -1;
    }
    for (int i = 0; i < 16; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1) {
            return -1;
        }
        out[i] = (uint8_t)v;
    }
    return 0;
}

int main(int argc, char **argv)
{
    uint8_t ck[16], ik[16];
    struct sockaddr_in eese = {.sin_family = AF_INET};
    if (argc != 6 || inet_pton(AF_INET, argv[1], &eese.sin_addr) != 1 || hex16(argv[3], ck) ||
        hex16(argv[4], ik)) {
        fprintf(stderr, "usage: %s <eese-ip> <eese-port> <ck-hex> <ik-hex> <te2e-seconds>\n",
                argv[0]);
        return 2;
    }
    eese.sin_port = htons((uint16_t)atoi(argv[2]));
    sock = socket(AF_INET, SOCK_DGRAM, 0);
    if (sock < 0 || connect(sock, (struct sockaddr *)&eese, sizeof eese) != 0) {
        perror("socket");
        return 2;
    }
    int status = cycle_run(ck, ik, (uint32_t)atoi(argv[5]) * 1000u);
    close(sock);
    return status;
}
