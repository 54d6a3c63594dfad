/*
 * mptcp_bpf.h - set or read a socket option on exactly one subflow of an upstream
 * Linux MPTCP connection, through a BPF iter/tcp program loaded with the raw bpf(2)
 * syscall (no libbpf, no clang). Part of the compiled core (mptcp._mptcp); also
 * compiled into benchmarks/bench_sockopt.py's C baseline.
 *
 * The program (about 75 instructions, built at run time with every offset read from
 * /sys/kernel/btf/vmlinux) runs once per TCP socket of the iterator's network
 * namespace, under that socket's lock. It acts only on a socket whose family and
 * whole 4-tuple are the request's AND that is an MPTCP subflow (tcp_sock.is_mptcp)
 * of the connection with the request's token (icsk_ulp_data -> conn -> token).
 *
 * Security: whoever holds the map and link fds can run the program without any
 * capability and change any TCP socket of a namespace they can create an iterator
 * in. The fds are close-on-exec (the kernel makes them so) and never handed out;
 * mbpf_forget() drops them in a forked child (the Python layer calls it from an
 * os.register_at_fork hook, registered before the program is first loaded).
 */
#ifndef MPTCP_BPF_H
#define MPTCP_BPF_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "mptcp_sockopt.h"

/* Where a failure happened: decides what the Python layer says. */
enum mbpf_stage {
    MBPF_STAGE_NONE = 0,
    MBPF_STAGE_BTF_OPEN,     /* open/read /sys/kernel/btf/vmlinux (ENOENT: no BTF) */
    MBPF_STAGE_BTF_PARSE,    /* malformed BTF (EINVAL) */
    MBPF_STAGE_BTF_LOOKUP,   /* a type or member is missing (EOPNOTSUPP) */
    MBPF_STAGE_MAP_CREATE,   /* EPERM: no CAP_BPF */
    MBPF_STAGE_PROG_LOAD,    /* EPERM: no CAP_PERFMON; EINVAL/EACCES: the verifier */
    MBPF_STAGE_LINK_CREATE,
    MBPF_STAGE_MAP_UPDATE,
    MBPF_STAGE_NETNS,        /* entering the socket's network namespace */
    MBPF_STAGE_ITER_CREATE,
    MBPF_STAGE_ITER_READ,
    MBPF_STAGE_MAP_LOOKUP,
    MBPF_STAGE_ARGS,         /* a bad request (EINVAL) */
};

/* What the program needs from vmlinux BTF. */
struct mbpf_btf_info {
    uint32_t id_iter_tcp;          /* FUNC bpf_iter_tcp: the attach_btf_id */
    uint32_t id_rdonly_cast;       /* FUNC bpf_rdonly_cast (kfunc), 0 if absent */
    uint32_t id_subflow_ctx;       /* STRUCT mptcp_subflow_context */
    uint32_t id_mptcp_sock;        /* STRUCT mptcp_sock */
    int32_t ctx_sk_common;         /* byte offsets, anonymous members flattened */
    int32_t skc_daddr, skc_rcv_saddr, skc_dport, skc_num;
    int32_t skc_family, skc_state, skc_v6_daddr, skc_v6_rcv_saddr;
    int32_t tp_is_mptcp, tp_ulp_data, sf_conn, msk_token;
    uint8_t sz_family, sz_state, sz_dport, sz_num, sz_is_mptcp, sz_token;
    uint8_t is_mptcp_bit_shift, is_mptcp_bit_size;  /* 0/0 unless a bitfield */
};

struct mbpf {
    int map_fd, prog_fd, link_fd;  /* -1 when not loaded */
    unsigned flags;                /* of the last load (a reload after mbpf_close) */
    int use_kfunc;                 /* 1: bpf_rdonly_cast, 0: bpf_probe_read_kernel */
    int insn_cnt;
    struct mbpf_btf_info btf;
    uint64_t ns_btf, ns_map, ns_prog, ns_link;   /* mbpf_open's steps, nanoseconds */
    pthread_mutex_t lock;          /* one request at a time: the map has one entry */
};

/* Why one mbpf_open or mbpf_call failed: the caller's own, so that threads never
 * read each other's failures. */
struct mbpf_error {
    int stage;                     /* enum mbpf_stage */
    char message[256];             /* in words (the verifier's last line), or "" */
};

/* Initialise st (not loaded). */
void mbpf_init(struct mbpf *st);

/* Read BTF, create the map, load the program, create the link, unless loaded.
 * Returns 0 or -errno; on error err says where and why.
 * flags: 1 = bpf_probe_read_kernel even where the kfunc exists (tests). Thread-safe. */
int mbpf_open(struct mbpf *st, unsigned flags, struct mbpf_error *err);

/* Run the program once (loading it again if mbpf_close ran since it was loaded).
 * The iterator walks the network namespace of the calling thread, or of netns_fd
 * (an fd of /proc/PID/ns/net or from SIOCGSKNS) when it is >= 0: a short-lived
 * thread enters that namespace to create the iterator, so the caller's thread never
 * changes namespace. req is copied in and the answer copied back over it. Returns 0
 * (then see req->matched and req->ret) or -errno with err set. Thread-safe; blocks
 * (call without the GIL). */
int mbpf_call(struct mbpf *st, struct mptcpk_bpf_req *req, int netns_fd,
              struct mbpf_error *err);

/* Close the fds (unload). */
void mbpf_close(struct mbpf *st);

/* In a forked child: close the parent's fds and reset the lock, which another
 * parent thread may have held at fork(). */
void mbpf_forget(struct mbpf *st);

/* Pieces the tests use on their own. */
int mbpf_btf_read(const char *path, struct mbpf_btf_info *out, char *err, size_t errlen);
int mbpf_build_prog(const struct mbpf_btf_info *b, int map_fd, int use_kfunc,
                    struct mptcpk_bpf_insn *out, int max);

#endif /* MPTCP_BPF_H */
