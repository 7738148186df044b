/*
 * The lab's lwIP peer: a TCP echo server on lwIP 2.1's TCP (Debian liblwip-dev, the
 * unix port) over a TAP device, so kaprobe's probes meet lwIP instead of the kernel.
 * Started by `scripts/lab.sh up NAME --peer lwip` in the server namespace, where the
 * TAP (PRECONFIGURED_TAPIF=tap0) is bridged with the namespace's veth.
 *
 *   kaprobe-lab-lwip --ip 10.77.101.2/24 --gw 10.77.101.254 [--port 7077]
 *       [--idle MS --intvl MS --cnt N] [--status FILE]
 *
 * With --idle, each accepted connection gets lwIP's keepalive (SOF_KEEPALIVE and the
 * pcb's keep_idle / keep_intvl / keep_cnt). IPv4 only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lwip/api.h"
#include "lwip/ip_addr.h"
#include "lwip/netif.h"
#include "lwip/tcp.h"
#include "lwip/tcpip.h"
#include "netif/tapif.h"

static struct netif tap;
static u32_t ka_idle, ka_intvl, ka_cnt;

static void ready(void *arg) { sys_sem_signal((sys_sem_t *)arg); }

static void die(const char *what) {
    fprintf(stderr, "kaprobe-lab-lwip: %s\n", what);
    exit(1);
}

/* One connection: echo until the client closes, then close. */
static void echo(void *arg) {
    struct netconn *c = arg;
    struct netbuf *buf;
    while (netconn_recv(c, &buf) == ERR_OK) {
        do {
            void *data;
            u16_t len;
            netbuf_data(buf, &data, &len);
            netconn_write(c, data, len, NETCONN_COPY);
        } while (netbuf_next(buf) >= 0);
        netbuf_delete(buf);
    }
    netconn_close(c);
    netconn_delete(c);
}

static void parse_cidr(const char *s, ip4_addr_t *ip, ip4_addr_t *mask) {
    char a[32];
    int bits = 24;
    const char *slash = strchr(s, '/');
    size_t n = slash ? (size_t)(slash - s) : strlen(s);
    if (n >= sizeof a) die("bad --ip");
    memcpy(a, s, n);
    a[n] = 0;
    if (slash) bits = atoi(slash + 1);
    if (!ip4addr_aton(a, ip) || bits < 1 || bits > 32) die("bad --ip");
    ip4_addr_set_u32(mask, lwip_htonl(bits == 32 ? 0xffffffffu : ~(0xffffffffu >> bits)));
}

int main(int argc, char **argv) {
    ip4_addr_t ip, mask, gw;
    const char *status = NULL;
    u16_t port = 7077;
    IP4_ADDR(&ip, 10, 77, 101, 2);
    IP4_ADDR(&mask, 255, 255, 255, 0);
    IP4_ADDR(&gw, 10, 77, 101, 254);
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--ip")) parse_cidr(v, &ip, &mask);
        else if (!strcmp(k, "--gw")) { if (!ip4addr_aton(v, &gw)) die("bad --gw"); }
        else if (!strcmp(k, "--port")) port = (u16_t)atoi(v);
        else if (!strcmp(k, "--idle")) ka_idle = (u32_t)atol(v);
        else if (!strcmp(k, "--intvl")) ka_intvl = (u32_t)atol(v);
        else if (!strcmp(k, "--cnt")) ka_cnt = (u32_t)atol(v);
        else if (!strcmp(k, "--status")) status = v;
        else if (!strcmp(k, "--ip6") || !strcmp(k, "--gw6")) {} /* IPv4 only */
        else if (!strcmp(k, "--tap")) setenv("PRECONFIGURED_TAPIF", v, 1);
        else { fprintf(stderr, "kaprobe-lab-lwip: unknown argument %s\n", k); return 2; }
    }
    if (!getenv("PRECONFIGURED_TAPIF")) setenv("PRECONFIGURED_TAPIF", "tap0", 1);

    sys_sem_t sem;
    if (sys_sem_new(&sem, 0) != ERR_OK) die("semaphore");
    tcpip_init(ready, &sem);
    sys_sem_wait(&sem);
    LOCK_TCPIP_CORE();
    if (!netif_add(&tap, &ip, &mask, &gw, NULL, tapif_init, tcpip_input)) die("netif_add (tap0)");
    netif_set_default(&tap);
    netif_set_link_up(&tap);
    netif_set_up(&tap);
    UNLOCK_TCPIP_CORE();

    struct netconn *l = netconn_new(NETCONN_TCP);
    if (!l || netconn_bind(l, IP_ADDR_ANY, port) != ERR_OK || netconn_listen_with_backlog(l, 64) != ERR_OK)
        die("listen");
    if (status) {
        FILE *f = fopen(status, "a");
        if (f) {
            fprintf(f, "{\"event\":\"listening\",\"stack\":\"lwip\",\"pid\":%d,\"addr\":\"%s\",\"port\":%u}\n",
                    (int)getpid(), ip4addr_ntoa(&ip), port);
            fclose(f);
        }
    }
    for (;;) {
        struct netconn *c;
        if (netconn_accept(l, &c) != ERR_OK) continue;
        if (ka_idle) {
            LOCK_TCPIP_CORE();
            ip_set_option(c->pcb.tcp, SOF_KEEPALIVE);
            c->pcb.tcp->keep_idle = ka_idle;
            if (ka_intvl) c->pcb.tcp->keep_intvl = ka_intvl;
            if (ka_cnt) c->pcb.tcp->keep_cnt = ka_cnt;
            UNLOCK_TCPIP_CORE();
        }
        sys_thread_new("echo", echo, c, DEFAULT_THREAD_STACKSIZE, DEFAULT_THREAD_PRIO);
    }
}
