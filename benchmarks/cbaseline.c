/*
 * cbaseline.c - the C baseline for benchmarks/bench_read.py.
 *
 * The same getsockopt calls the library makes, with the same header and buffer
 * sizes, looped N times inside C so the only cost is the syscall and the buffer
 * setup any C caller needs too. bench_read.py compiles this with
 * `gcc -O2 -shared -fPIC -I include` and calls it once per round through ctypes.
 *
 * Uses our own ABI header, never <linux/mptcp.h>.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "mptcp_sockopt.h"

/* The library's arrays hold 8 entries (STACK_SUBFLOWS / POLLER_INITIAL). */
#define CB_CAP 8

static struct mptcpk_subflow_info cb_sf[CB_CAP];
static struct mptcpk_tcp_info cb_ti[CB_CAP];

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* One FULL_INFO call exactly as the library's full_info_call() makes it: a zeroed
 * 136-byte header (the kernel rejects non-zero *_kernel / num_subflows inputs, so
 * every caller must reset it), our element sizes, capacity 8, separate arrays. */
static inline int full_info_once(int fd, struct mptcpk_full_info *hdr, socklen_t *len)
{
    memset(hdr, 0, sizeof(*hdr));
    hdr->size_tcpinfo_user = sizeof(struct mptcpk_tcp_info);
    hdr->size_sfinfo_user = sizeof(struct mptcpk_subflow_info);
    hdr->size_arrays_user = CB_CAP;
    hdr->subflow_info = (uint64_t)(uintptr_t)cb_sf;
    hdr->tcp_info = (uint64_t)(uintptr_t)cb_ti;
    *len = sizeof(*hdr);
    return getsockopt(fd, SOL_MPTCP, MPTCP_FULL_INFO, hdr, len);
}

/* n FULL_INFO calls; returns elapsed ns, or -errno on the first failure. */
int64_t cb_full_info_loop(int fd, int64_t n)
{
    struct mptcpk_full_info hdr;
    socklen_t len;
    int64_t t0 = now_ns();
    for (int64_t i = 0; i < n; i++) {
        if (full_info_once(fd, &hdr, &len) != 0)
            return -(int64_t)errno;
    }
    return now_ns() - t0;
}

/* n MPTCP_INFO calls into a 96-byte buffer (what mptcp.info() asks for). */
int64_t cb_mptcp_info_loop(int fd, int64_t n)
{
    struct mptcpk_info mi;
    socklen_t len;
    int64_t t0 = now_ns();
    for (int64_t i = 0; i < n; i++) {
        len = sizeof(mi);
        if (getsockopt(fd, SOL_MPTCP, MPTCP_INFO, &mi, &len) != 0)
            return -(int64_t)errno;
    }
    return now_ns() - t0;
}

/* One FULL_INFO call for a sanity check: out[0] = num_subflows, out[1] = optlen,
 * out[2] = size_tcpinfo_kernel, out[3] = size_sfinfo_kernel, out[4..] = subflow ids.
 * Returns 0 or -errno. */
int cb_full_info_probe(int fd, uint32_t *out, int nout)
{
    struct mptcpk_full_info hdr;
    socklen_t len;
    if (nout < 4)
        return -EINVAL;
    if (full_info_once(fd, &hdr, &len) != 0)
        return -errno;
    out[0] = hdr.num_subflows;
    out[1] = (uint32_t)len;
    out[2] = hdr.size_tcpinfo_kernel;
    out[3] = hdr.size_sfinfo_kernel;
    for (int i = 0; i < CB_CAP && 4 + i < nout; i++)
        out[4 + i] = (uint32_t)i < hdr.num_subflows ? cb_sf[i].id : 0;
    return 0;
}

/* Size checks the Python side compares with the library's. */
uint32_t cb_sizeof_full_info(void) { return sizeof(struct mptcpk_full_info); }
uint32_t cb_sizeof_tcp_info(void) { return sizeof(struct mptcpk_tcp_info); }
uint32_t cb_sizeof_subflow_info(void) { return sizeof(struct mptcpk_subflow_info); }
uint32_t cb_sizeof_mptcp_info(void) { return sizeof(struct mptcpk_info); }
