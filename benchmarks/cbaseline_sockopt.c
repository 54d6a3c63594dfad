/*
 * cbaseline_sockopt.c - the C baseline for benchmarks/bench_sockopt.py.
 *
 * The sequence one per-subflow option call makes, in C, with the library's own BPF
 * loader (src/mptcp_bpf.c, compiled in): one MPTCP_FULL_INFO lookup of the subflow
 * (tuple, family, token), the map update, the iterator's creation, its read and the
 * map lookup (the last four are mbpf_call). This baseline loads its own program, so
 * no fd of the library's ever leaves it.
 *
 *   gcc -O2 -shared -fPIC -I include -I src benchmarks/cbaseline_sockopt.c src/mptcp_bpf.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "mptcp_bpf.h"
#include "mptcp_sockopt.h"

#define CB_CAP 8  /* the library's stack arrays hold 8 subflows */

static struct mbpf cb_bpf;
static struct mbpf_error cb_err;
static struct mptcpk_subflow_info cb_sf[CB_CAP];
static struct mptcpk_tcp_info cb_ti[CB_CAP];

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Load the baseline's own program: 0 or -errno. */
int cb_load(void)
{
    mbpf_init(&cb_bpf);
    return mbpf_open(&cb_bpf, 0, &cb_err);
}

/* The request for subflow sub_id of fd from one FULL_INFO snapshot: 1 found, 0 not,
 * -errno on failure. */
static int target(int fd, uint32_t sub_id, struct mptcpk_bpf_req *req)
{
    struct mptcpk_full_info hdr;
    socklen_t len = sizeof(hdr);
    uint16_t family, port;

    memset(&hdr, 0, sizeof(hdr));
    hdr.size_tcpinfo_user = sizeof(struct mptcpk_tcp_info);
    hdr.size_sfinfo_user = sizeof(struct mptcpk_subflow_info);
    hdr.size_arrays_user = CB_CAP;
    hdr.subflow_info = (uint64_t)(uintptr_t)cb_sf;
    hdr.tcp_info = (uint64_t)(uintptr_t)cb_ti;
    if (getsockopt(fd, SOL_MPTCP, MPTCP_FULL_INFO, &hdr, &len) != 0)
        return -errno;
    for (uint32_t i = 0; i < hdr.num_subflows && i < CB_CAP; i++) {
        const uint8_t *local = (const uint8_t *)&cb_sf[i].addrs.local;
        const uint8_t *remote = (const uint8_t *)&cb_sf[i].addrs.remote;
        if (cb_sf[i].id != sub_id)
            continue;
        memcpy(&family, local, 2);
        req->family = family;
        if (family == AF_INET) {
            memcpy(req->saddr, local + 4, 4);
            memcpy(req->daddr, remote + 4, 4);
        } else {
            memcpy(req->saddr, local + 8, 16);
            memcpy(req->daddr, remote + 8, 16);
        }
        memcpy(&port, local + 2, 2);
        req->sport = ntohs(port);
        memcpy(&port, remote + 2, 2);
        req->dport = ntohs(port);
        req->token = hdr.mptcp_info.token;
        return 1;
    }
    return 0;
}

/* n reads of SOL_SOCKET/SO_MARK of subflow sub_id; elapsed ns, or -errno (-ENOENT
 * when the subflow was not found). */
int64_t cb_get_mark_loop(int fd, uint32_t sub_id, int64_t n)
{
    struct mptcpk_bpf_req req;
    int64_t t0 = now_ns();
    for (int64_t i = 0; i < n; i++) {
        memset(&req, 0, sizeof(req));
        req.op = MPTCPK_BPF_OP_GET;
        req.level = SOL_SOCKET;
        req.optname = SO_MARK;
        req.optlen = sizeof(int);
        int rc = target(fd, sub_id, &req);
        if (rc <= 0)
            return rc < 0 ? rc : -ENOENT;
        rc = mbpf_call(&cb_bpf, &req, -1, &cb_err);
        if (rc < 0)
            return rc;
        if (req.matched != 1 || req.ret != 0)
            return -ENOENT;
    }
    return now_ns() - t0;
}
