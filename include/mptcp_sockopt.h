/*
 * mptcp_sockopt.h - the kernel ABI that the mptcp package relies on, in our own copy.
 *
 * Builds never include <linux/mptcp.h>: build hosts ship headers of every age, and the
 * draft-API structs were never in any mainline header. Every kernel constant is under
 * #ifndef so a host definition (same value) wins silently (our own MPTCPK_ names need
 * no guard); every struct layout is pinned by _Static_assert so a wrong copy fails
 * the build instead of decoding garbage.
 *
 * Sources: uapi linux/mptcp.h, linux/mptcp_pm.h, linux/tcp.h, linux/inet_diag.h,
 * linux/sock_diag.h, linux/bpf.h, linux/btf.h (mainline 6.18), and the
 * draft-hesmans-mptcp-socket research fork.
 */
#ifndef MPTCP_SOCKOPT_H
#define MPTCP_SOCKOPT_H

#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------------------------
 * 1. Upstream socket options at SOL_MPTCP
 * ------------------------------------------------------------------------------- */
#ifndef IPPROTO_MPTCP
#define IPPROTO_MPTCP 262
#endif
#ifndef SOL_MPTCP
#define SOL_MPTCP 284
#endif
#ifndef MPTCP_INFO
#define MPTCP_INFO 1          /* 5.16: struct mptcp_info */
#endif
#ifndef MPTCP_TCPINFO
#define MPTCP_TCPINFO 2       /* 5.16: mptcp_subflow_data + tcp_info[] */
#endif
#ifndef MPTCP_SUBFLOW_ADDRS
#define MPTCP_SUBFLOW_ADDRS 3 /* 5.16: mptcp_subflow_data + mptcp_subflow_addrs[] */
#endif
#ifndef MPTCP_FULL_INFO
#define MPTCP_FULL_INFO 4     /* 6.5: all of the above with subflow ids, one snapshot */
#endif
#ifndef TCP_IS_MPTCP
#define TCP_IS_MPTCP 43       /* SOL_TCP, 6.10 */
#endif

#ifndef MPTCP_INFO_FLAG_FALLBACK
#define MPTCP_INFO_FLAG_FALLBACK (1u << 0)
#endif
#ifndef MPTCP_INFO_FLAG_REMOTE_KEY_RECEIVED
#define MPTCP_INFO_FLAG_REMOTE_KEY_RECEIVED (1u << 1)
#endif

/* Fields were appended over the kernel's life: a field is present when
 * offsetof(field) < the optlen the kernel wrote back. */
struct mptcpk_info {
    uint8_t  subflows;
    uint8_t  add_addr_signal;
    uint8_t  add_addr_accepted;
    uint8_t  subflows_max;
    uint8_t  add_addr_signal_max;
    uint8_t  add_addr_accepted_max;
    uint16_t hole0;
    uint32_t flags;
    uint32_t token;
    uint64_t write_seq;
    uint64_t snd_una;
    uint64_t rcv_nxt;
    uint8_t  local_addr_used;
    uint8_t  local_addr_max;
    uint8_t  csum_enabled;
    uint8_t  hole1;
    uint32_t retransmits;       /* 6.5 */
    uint64_t bytes_retrans;     /* 6.5 */
    uint64_t bytes_sent;        /* 6.5 */
    uint64_t bytes_received;    /* 6.5 */
    uint64_t bytes_acked;       /* 6.5 */
    uint8_t  subflows_total;    /* 6.8 */
    uint8_t  endp_laminar_max;  /* 6.18 */
    uint8_t  endp_fullmesh_max; /* 6.18 */
    uint8_t  reserved;
    uint32_t last_data_sent;    /* 6.10 */
    uint32_t last_data_recv;    /* 6.10 */
    uint32_t last_ack_recv;     /* 6.10 */
};

struct mptcpk_subflow_data {
    uint32_t size_subflow_data; /* in: sizeof(struct mptcpk_subflow_data) */
    uint32_t num_subflows;      /* in: 0; out: the real total */
    uint32_t size_kernel;       /* in: 0; out: the kernel's element size */
    uint32_t size_user;         /* in: our element size; out: clamped */
} __attribute__((aligned(8)));

/* sockaddr_storage-sized slots, so we need no libc socket headers here. */
struct mptcpk_sockaddr_storage {
    uint16_t family;
    uint8_t  data[126];
} __attribute__((aligned(8)));

struct mptcpk_subflow_addrs {
    struct mptcpk_sockaddr_storage local;
    struct mptcpk_sockaddr_storage remote;
};

struct mptcpk_subflow_info {
    uint32_t id;
    uint32_t pad;
    struct mptcpk_subflow_addrs addrs;
};

struct mptcpk_full_info {
    uint32_t size_tcpinfo_kernel; /* in: 0 */
    uint32_t size_tcpinfo_user;
    uint32_t size_sfinfo_kernel;  /* in: 0 */
    uint32_t size_sfinfo_user;
    uint32_t num_subflows;        /* in: 0; out: the real total */
    uint32_t size_arrays_user;    /* entries our arrays hold */
    uint64_t subflow_info;        /* user pointer to mptcpk_subflow_info[] */
    uint64_t tcp_info;            /* user pointer to mptcpk_tcp_info[] */
    struct mptcpk_info mptcp_info;
};

/* Our copy of struct tcp_info up to tcpi_total_rto_time (6.7). Newer kernels write
 * more (280 bytes on 6.18): we ask for ours and read what size_kernel says came. */
struct mptcpk_tcp_info {
    uint8_t  state, ca_state, retransmits, probes, backoff, options;
    uint8_t  wscale;       /* snd_wscale:4 (low nibble), rcv_wscale:4 */
    uint8_t  app_limited;  /* delivery_rate_app_limited:1, fastopen_client_fail:2 */
    uint32_t rto, ato, snd_mss, rcv_mss;
    uint32_t unacked, sacked, lost, retrans, fackets;
    uint32_t last_data_sent, last_ack_sent, last_data_recv, last_ack_recv;
    uint32_t pmtu, rcv_ssthresh, rtt, rttvar, snd_ssthresh, snd_cwnd, advmss, reordering;
    uint32_t rcv_rtt, rcv_space;
    uint32_t total_retrans;
    uint64_t pacing_rate, max_pacing_rate;
    uint64_t bytes_acked;      /* 4.1 */
    uint64_t bytes_received;   /* 4.1 */
    uint32_t segs_out, segs_in;
    uint32_t notsent_bytes, min_rtt, data_segs_in, data_segs_out;
    uint64_t delivery_rate;
    uint64_t busy_time, rwnd_limited, sndbuf_limited;
    uint32_t delivered, delivered_ce;
    uint64_t bytes_sent, bytes_retrans;
    uint32_t dsack_dups, reord_seen;
    uint32_t rcv_ooopack;
    uint32_t snd_wnd;
    uint32_t rcv_wnd;          /* 6.2 */
    uint32_t rehash;           /* 6.2 */
    uint16_t total_rto, total_rto_recoveries; /* 6.7 */
    uint32_t total_rto_time;   /* 6.7 */
};

/* ---------------------------------------------------------------------------------
 * 2. Upstream generic netlink family "mptcp_pm" (version 1)
 * ------------------------------------------------------------------------------- */
#ifndef MPTCP_PM_NAME
#define MPTCP_PM_NAME "mptcp_pm"
#endif
#ifndef MPTCP_PM_EV_GRP_NAME
#define MPTCP_PM_EV_GRP_NAME "mptcp_pm_events"
#endif
#ifndef MPTCP_PM_VER
#define MPTCP_PM_VER 1
#endif

enum {
    MPTCPK_PM_CMD_ADD_ADDR = 1,
    MPTCPK_PM_CMD_DEL_ADDR = 2,
    MPTCPK_PM_CMD_GET_ADDR = 3,
    MPTCPK_PM_CMD_FLUSH_ADDRS = 4,
    MPTCPK_PM_CMD_SET_LIMITS = 5,
    MPTCPK_PM_CMD_GET_LIMITS = 6,
    MPTCPK_PM_CMD_SET_FLAGS = 7,
    MPTCPK_PM_CMD_ANNOUNCE = 8,
    MPTCPK_PM_CMD_REMOVE = 9,
    MPTCPK_PM_CMD_SUBFLOW_CREATE = 10,
    MPTCPK_PM_CMD_SUBFLOW_DESTROY = 11,
};

enum {
    MPTCPK_PM_ATTR_ADDR = 1,          /* nested */
    MPTCPK_PM_ATTR_RCV_ADD_ADDRS = 2, /* u32 */
    MPTCPK_PM_ATTR_SUBFLOWS = 3,      /* u32 */
    MPTCPK_PM_ATTR_TOKEN = 4,         /* u32 */
    MPTCPK_PM_ATTR_LOC_ID = 5,        /* u8 */
    MPTCPK_PM_ATTR_ADDR_REMOTE = 6,   /* nested */
};

enum {
    MPTCPK_PM_ADDR_ATTR_FAMILY = 1, /* u16 */
    MPTCPK_PM_ADDR_ATTR_ID = 2,     /* u8 */
    MPTCPK_PM_ADDR_ATTR_ADDR4 = 3,  /* 4 bytes, network order */
    MPTCPK_PM_ADDR_ATTR_ADDR6 = 4,  /* 16 bytes */
    MPTCPK_PM_ADDR_ATTR_PORT = 5,   /* u16, read in HOST order by the kernel */
    MPTCPK_PM_ADDR_ATTR_FLAGS = 6,  /* u32 */
    MPTCPK_PM_ADDR_ATTR_IF_IDX = 7, /* s32 */
};

#ifndef MPTCP_PM_ADDR_FLAG_SIGNAL
#define MPTCP_PM_ADDR_FLAG_SIGNAL   (1u << 0)
#endif
#ifndef MPTCP_PM_ADDR_FLAG_SUBFLOW
#define MPTCP_PM_ADDR_FLAG_SUBFLOW  (1u << 1)
#endif
#ifndef MPTCP_PM_ADDR_FLAG_BACKUP
#define MPTCP_PM_ADDR_FLAG_BACKUP   (1u << 2)
#endif
#ifndef MPTCP_PM_ADDR_FLAG_FULLMESH
#define MPTCP_PM_ADDR_FLAG_FULLMESH (1u << 3)
#endif
#ifndef MPTCP_PM_ADDR_FLAG_IMPLICIT
#define MPTCP_PM_ADDR_FLAG_IMPLICIT (1u << 4)
#endif
#ifndef MPTCP_PM_ADDR_FLAG_LAMINAR
#define MPTCP_PM_ADDR_FLAG_LAMINAR  (1u << 5)
#endif

enum {
    MPTCPK_EVENT_CREATED = 1,
    MPTCPK_EVENT_ESTABLISHED = 2,
    MPTCPK_EVENT_CLOSED = 3,
    MPTCPK_EVENT_ANNOUNCED = 6,
    MPTCPK_EVENT_REMOVED = 7,
    MPTCPK_EVENT_SUB_ESTABLISHED = 10,
    MPTCPK_EVENT_SUB_CLOSED = 11,
    MPTCPK_EVENT_SUB_PRIORITY = 13,
    MPTCPK_EVENT_LISTENER_CREATED = 15,
    MPTCPK_EVENT_LISTENER_CLOSED = 16,
};

enum {
    MPTCPK_ATTR_TOKEN = 1,        /* u32 */
    MPTCPK_ATTR_FAMILY = 2,       /* u16 */
    MPTCPK_ATTR_LOC_ID = 3,       /* u8 */
    MPTCPK_ATTR_REM_ID = 4,       /* u8 */
    MPTCPK_ATTR_SADDR4 = 5,
    MPTCPK_ATTR_SADDR6 = 6,
    MPTCPK_ATTR_DADDR4 = 7,
    MPTCPK_ATTR_DADDR6 = 8,
    MPTCPK_ATTR_SPORT = 9,        /* u16, network order */
    MPTCPK_ATTR_DPORT = 10,       /* u16, network order */
    MPTCPK_ATTR_BACKUP = 11,      /* u8 */
    MPTCPK_ATTR_ERROR = 12,       /* u8 */
    MPTCPK_ATTR_FLAGS = 13,       /* u16 */
    MPTCPK_ATTR_TIMEOUT = 14,     /* u32 */
    MPTCPK_ATTR_IF_IDX = 15,      /* s32 */
    MPTCPK_ATTR_RESET_REASON = 16,/* u32 */
    MPTCPK_ATTR_RESET_FLAGS = 17, /* u32 */
    MPTCPK_ATTR_SERVER_SIDE = 18, /* u8 */
};

/* ---------------------------------------------------------------------------------
 * 3. sock_diag
 * ------------------------------------------------------------------------------- */
#ifndef NETLINK_SOCK_DIAG
#define NETLINK_SOCK_DIAG 4
#endif
#ifndef SOCK_DIAG_BY_FAMILY
#define SOCK_DIAG_BY_FAMILY 20
#endif
/* The inet_diag request from before sock_diag (2.6.x), still served: the kernel
 * answers it with family AF_UNSPEC, so one walk of the TCP hash table returns the
 * IPv4 and IPv6 sockets together, where SOCK_DIAG_BY_FAMILY needs one walk per
 * family (net/ipv4/inet_diag.c, inet_diag_dump_compat). Replies carry this type. */
#ifndef TCPDIAG_GETSOCK
#define TCPDIAG_GETSOCK 18
#endif
#ifndef INET_DIAG_NOCOOKIE
#define INET_DIAG_NOCOOKIE (~0U)
#endif

enum {
    MPTCPK_INET_DIAG_REQ_BYTECODE = 1,
    MPTCPK_INET_DIAG_REQ_PROTOCOL = 3,
    MPTCPK_INET_DIAG_INFO = 2,
    MPTCPK_INET_DIAG_ULP_INFO = 19,
    MPTCPK_INET_ULP_INFO_NAME = 1,
    MPTCPK_INET_ULP_INFO_MPTCP = 3,
};

enum {
    MPTCPK_SUBFLOW_ATTR_TOKEN_REM = 1,
    MPTCPK_SUBFLOW_ATTR_TOKEN_LOC = 2,
    MPTCPK_SUBFLOW_ATTR_RELWRITE_SEQ = 3,
    MPTCPK_SUBFLOW_ATTR_MAP_SEQ = 4,
    MPTCPK_SUBFLOW_ATTR_MAP_SFSEQ = 5,
    MPTCPK_SUBFLOW_ATTR_SSN_OFFSET = 6,
    MPTCPK_SUBFLOW_ATTR_MAP_DATALEN = 7,
    MPTCPK_SUBFLOW_ATTR_FLAGS = 8,
    MPTCPK_SUBFLOW_ATTR_ID_REM = 9,
    MPTCPK_SUBFLOW_ATTR_ID_LOC = 10,
};

#define MPTCPK_SUBFLOW_FLAG_MCAP_REM          (1u << 0)
#define MPTCPK_SUBFLOW_FLAG_MCAP_LOC          (1u << 1)
#define MPTCPK_SUBFLOW_FLAG_JOIN_REM          (1u << 2)
#define MPTCPK_SUBFLOW_FLAG_JOIN_LOC          (1u << 3)
#define MPTCPK_SUBFLOW_FLAG_BKUP_REM          (1u << 4)
#define MPTCPK_SUBFLOW_FLAG_BKUP_LOC          (1u << 5)
#define MPTCPK_SUBFLOW_FLAG_FULLY_ESTABLISHED (1u << 6)
#define MPTCPK_SUBFLOW_FLAG_CONNECTED         (1u << 7)
#define MPTCPK_SUBFLOW_FLAG_MAPVALID          (1u << 8)

struct mptcpk_inet_diag_sockid {
    uint16_t sport;     /* network order */
    uint16_t dport;     /* network order */
    uint32_t src[4];
    uint32_t dst[4];
    uint32_t if_index;
    uint32_t cookie[2];
};

struct mptcpk_inet_diag_req_v2 {
    uint8_t  family;
    uint8_t  protocol;
    uint8_t  ext;
    uint8_t  pad;
    uint32_t states;
    struct mptcpk_inet_diag_sockid id;
};

struct mptcpk_inet_diag_req {     /* the TCPDIAG_GETSOCK request */
    uint8_t  family;                /* ignored: AF_UNSPEC for a dump */
    uint8_t  src_len;
    uint8_t  dst_len;
    uint8_t  ext;
    struct mptcpk_inet_diag_sockid id;
    uint32_t states;
    uint32_t dbs;
};

struct mptcpk_inet_diag_msg {
    uint8_t  family;
    uint8_t  state;
    uint8_t  timer;
    uint8_t  retrans;
    struct mptcpk_inet_diag_sockid id;
    uint32_t expires;
    uint32_t rqueue;
    uint32_t wqueue;
    uint32_t uid;
    uint32_t inode;
};

/* ---------------------------------------------------------------------------------
 * 4. The draft socket API (research-fork kernels only), all at SOL_TCP
 * ------------------------------------------------------------------------------- */
#ifndef MPTCP_ENABLED
#define MPTCP_ENABLED 42           /* on mainline 42 is TCP_AO_REPAIR: draft only */
#endif
#ifndef MPTCP_GET_SUB_IDS
#define MPTCP_GET_SUB_IDS 66
#endif
#ifndef MPTCP_CLOSE_SUB_ID
#define MPTCP_CLOSE_SUB_ID 67
#endif
#ifndef MPTCP_GET_SUB_TUPLE
#define MPTCP_GET_SUB_TUPLE 68
#endif
#ifndef MPTCP_OPEN_SUB_TUPLE
#define MPTCP_OPEN_SUB_TUPLE 69
#endif
#ifndef MPTCP_SUB_GETSOCKOPT
#define MPTCP_SUB_GETSOCKOPT 71
#endif
#ifndef MPTCP_SUB_SETSOCKOPT
#define MPTCP_SUB_SETSOCKOPT 72
#endif

/* Byte 1 of mptcp_sub_status is a bit-field; these are its x86_64 bit positions.
 * The fork never initialises SLAVE_SK nor LOW_PRIO: never report them. */
#define MPTCPK_SUB_STATUS_SLAVE_SK          0x01
#define MPTCPK_SUB_STATUS_FULLY_ESTABLISHED 0x02
#define MPTCPK_SUB_STATUS_ATTACHED          0x04
#define MPTCPK_SUB_STATUS_LOW_PRIO          0x08
#define MPTCPK_SUB_STATUS_PRE_ESTABLISHED   0x10

struct mptcpk_sub_status {
    uint8_t id;
    uint8_t bits;
};

struct mptcpk_sub_ids {
    uint8_t sub_count;
    uint8_t pad; /* the fork's u16 bit-field aligns sub_status to 2 */
    struct mptcpk_sub_status sub_status[];
};

/* u8 sub_count: 2 + 2 * 255 bytes always hold every id, so one call suffices. */
#define MPTCPK_SUB_IDS_MAX_LEN 512

/* mptcp_sub_tuple { u8 id; u8 addrs[]; }: addrs at offset 1, unaligned. */
#define MPTCPK_SUB_TUPLE_LEN_V4 33 /* 1 + 2 * sizeof(struct sockaddr_in) */
#define MPTCPK_SUB_TUPLE_LEN_V6 57 /* 1 + 2 * sizeof(struct sockaddr_in6) */

struct mptcpk_close_sub_id {
    uint8_t id;
};

struct mptcpk_sub_getsockopt {
    uint8_t   id;
    int32_t   level;
    int32_t   optname;
    char     *optval;
    uint32_t *optlen;
};

struct mptcpk_sub_setsockopt {
    uint8_t  id;
    int32_t  level;
    int32_t  optname;
    char    *optval;
    uint32_t optlen;
};

/* ---------------------------------------------------------------------------------
 * 5. BPF: one subflow's socket options through an iter/tcp program (raw bpf(2))
 *
 * Our copies of the parts of uapi linux/bpf.h and linux/btf.h the loader uses
 * (kernel enums get MPTCPK_ names, so this header can sit beside <linux/bpf.h>),
 * and the request/response record the program shares with us in its array map.
 * ------------------------------------------------------------------------------- */
#ifndef __NR_bpf
#  if defined(__x86_64__)
#    define __NR_bpf 321
#  elif defined(__aarch64__)
#    define __NR_bpf 280
#  endif
#endif

#define MPTCPK_BPF_MAP_CREATE      0
#define MPTCPK_BPF_MAP_LOOKUP_ELEM 1
#define MPTCPK_BPF_MAP_UPDATE_ELEM 2
#define MPTCPK_BPF_PROG_LOAD       5
#define MPTCPK_BPF_LINK_CREATE     28
#define MPTCPK_BPF_ITER_CREATE     33
#define MPTCPK_BPF_MAP_TYPE_ARRAY  2
#define MPTCPK_BPF_PROG_TYPE_TRACING 26
#define MPTCPK_BPF_TRACE_ITER      28

/* instruction classes, sizes, modes and ops (uapi linux/bpf_common.h, linux/bpf.h) */
#define MPTCPK_BPF_LD     0x00
#define MPTCPK_BPF_LDX    0x01
#define MPTCPK_BPF_STX    0x03
#define MPTCPK_BPF_ALU    0x04
#define MPTCPK_BPF_JMP    0x05
#define MPTCPK_BPF_ALU64  0x07
#define MPTCPK_BPF_W      0x00
#define MPTCPK_BPF_H      0x08
#define MPTCPK_BPF_B      0x10
#define MPTCPK_BPF_DW     0x18
#define MPTCPK_BPF_IMM    0x00
#define MPTCPK_BPF_MEM    0x60
#define MPTCPK_BPF_ADD    0x00
#define MPTCPK_BPF_AND    0x50
#define MPTCPK_BPF_RSH    0x70
#define MPTCPK_BPF_MOV    0xb0
#define MPTCPK_BPF_END    0xd0
#define MPTCPK_BPF_TO_BE  0x08
#define MPTCPK_BPF_K      0x00
#define MPTCPK_BPF_X      0x08
#define MPTCPK_BPF_JA     0x00
#define MPTCPK_BPF_JEQ    0x10
#define MPTCPK_BPF_JGT    0x20
#define MPTCPK_BPF_JNE    0x50
#define MPTCPK_BPF_JLT    0xa0
#define MPTCPK_BPF_CALL   0x80
#define MPTCPK_BPF_EXIT   0x90
#define MPTCPK_BPF_PSEUDO_MAP_VALUE 2
#define MPTCPK_BPF_PSEUDO_KFUNC_CALL 2
#define MPTCPK_BPF_ANY    0

/* Socket options the per-subflow path supports that libc or Python may lack. */
#ifndef SO_MAX_PACING_RATE
#define SO_MAX_PACING_RATE 47      /* SOL_SOCKET */
#endif
#ifndef SO_BINDTOIFINDEX
#define SO_BINDTOIFINDEX 62        /* SOL_SOCKET, 5.0 */
#endif
#ifndef SO_TXREHASH
#define SO_TXREHASH 74             /* SOL_SOCKET, 5.18 */
#endif
#ifndef TCP_THIN_LINEAR_TIMEOUTS
#define TCP_THIN_LINEAR_TIMEOUTS 16 /* SOL_TCP */
#endif
#ifndef TCP_SAVE_SYN
#define TCP_SAVE_SYN 27            /* SOL_TCP */
#endif
#ifndef TCP_RTO_MAX_MS
#define TCP_RTO_MAX_MS 44          /* SOL_TCP, 6.15 */
#endif
#ifndef TCP_BPF_IW
#define TCP_BPF_IW 1001            /* SOL_TCP, BPF only */
#endif
#ifndef TCP_BPF_SNDCWND_CLAMP
#define TCP_BPF_SNDCWND_CLAMP 1002 /* SOL_TCP, BPF only */
#endif
#ifndef TCP_BPF_DELACK_MAX
#define TCP_BPF_DELACK_MAX 1003    /* SOL_TCP, BPF only, 6.1 */
#endif
#ifndef TCP_BPF_RTO_MIN
#define TCP_BPF_RTO_MIN 1004       /* SOL_TCP, BPF only, 6.1 */
#endif
#ifndef IPV6_AUTOFLOWLABEL
#define IPV6_AUTOFLOWLABEL 70      /* SOL_IPV6 */
#endif

/* The socket's network namespace, to run the iterator in it (5.14; SIOCGSKNS 4.9). */
#define MPTCPK_SO_NETNS_COOKIE 71
#define MPTCPK_SIOCGSKNS 0x894C

/* helper ids (enum bpf_func_id) */
#define MPTCPK_BPF_FN_SETSOCKOPT        49
#define MPTCPK_BPF_FN_GETSOCKOPT        57
#define MPTCPK_BPF_FN_PROBE_READ_KERNEL 113
#define MPTCPK_BPF_FN_SKC_TO_TCP_SOCK   137

struct mptcpk_bpf_insn {
    uint8_t code;
    uint8_t dst_reg:4;
    uint8_t src_reg:4;
    int16_t off;
    int32_t imm;
};

/* bpf_attr subsets, one per command: the kernel takes a shorter attr than its own
 * as long as the bytes it does not get would be zero. */
struct mptcpk_bpf_map_create {
    uint32_t map_type, key_size, value_size, max_entries, map_flags;
    uint32_t inner_map_fd, numa_node;
    char map_name[16];
    uint32_t map_ifindex, btf_fd, btf_key_type_id, btf_value_type_id;
    uint32_t btf_vmlinux_value_type_id;
    uint64_t map_extra;
};

struct mptcpk_bpf_map_elem {
    uint32_t map_fd;
    uint32_t pad;
    uint64_t key;
    uint64_t value;
    uint64_t flags;
};

struct mptcpk_bpf_prog_load {
    uint32_t prog_type, insn_cnt;
    uint64_t insns, license;
    uint32_t log_level, log_size;
    uint64_t log_buf;
    uint32_t kern_version, prog_flags;
    char prog_name[16];
    uint32_t prog_ifindex, expected_attach_type;
    uint32_t prog_btf_fd, func_info_rec_size;
    uint64_t func_info;
    uint32_t func_info_cnt, line_info_rec_size;
    uint64_t line_info;
    uint32_t line_info_cnt, attach_btf_id;
    uint32_t attach_btf_obj_fd, core_relo_cnt;
    uint64_t fd_array, core_relos;
    uint32_t core_relo_rec_size, log_true_size;
};

struct mptcpk_bpf_link_create {
    uint32_t prog_fd, target_fd, attach_type, flags;
    uint64_t iter_info;
    uint32_t iter_info_len, pad;
};

struct mptcpk_bpf_iter_create {
    uint32_t link_fd, flags;
};

/* BTF (uapi linux/btf.h) */
#define MPTCPK_BTF_MAGIC 0xeB9F
struct mptcpk_btf_header {
    uint16_t magic;
    uint8_t version, flags;
    uint32_t hdr_len, type_off, type_len, str_off, str_len;
};
struct mptcpk_btf_type {
    uint32_t name_off;
    uint32_t info;          /* vlen bits 0-15, kind 24-28, kind_flag 31 */
    uint32_t size_or_type;
};
/* what follows a btf_type, by kind (all but member and array only skipped) */
struct mptcpk_btf_member { uint32_t name_off, type, offset; };
struct mptcpk_btf_array { uint32_t type, index_type, nelems; };
struct mptcpk_btf_enum { uint32_t name_off; int32_t val; };
struct mptcpk_btf_param { uint32_t name_off, type; };
struct mptcpk_btf_var_secinfo { uint32_t type, offset, size; };
struct mptcpk_btf_enum64 { uint32_t name_off, val_lo32, val_hi32; };
enum {
    MPTCPK_BTF_KIND_INT = 1, MPTCPK_BTF_KIND_PTR, MPTCPK_BTF_KIND_ARRAY,
    MPTCPK_BTF_KIND_STRUCT, MPTCPK_BTF_KIND_UNION, MPTCPK_BTF_KIND_ENUM,
    MPTCPK_BTF_KIND_FWD, MPTCPK_BTF_KIND_TYPEDEF, MPTCPK_BTF_KIND_VOLATILE,
    MPTCPK_BTF_KIND_CONST, MPTCPK_BTF_KIND_RESTRICT, MPTCPK_BTF_KIND_FUNC,
    MPTCPK_BTF_KIND_FUNC_PROTO, MPTCPK_BTF_KIND_VAR, MPTCPK_BTF_KIND_DATASEC,
    MPTCPK_BTF_KIND_FLOAT, MPTCPK_BTF_KIND_DECL_TAG, MPTCPK_BTF_KIND_TYPE_TAG,
    MPTCPK_BTF_KIND_ENUM64,
};

/* The program's array map value: which subflow and what to do (in), what the
 * helper said (out). The family is the subflow socket's as the kernel reports it
 * (an AF_INET6 subflow to ::ffff:a.b.c.d is AF_INET6 with mapped addresses). */
#define MPTCPK_BPF_VALUE_MAX 128   /* TCP_CONGESTION 16, SO_BINDTODEVICE 16 */
#define MPTCPK_BPF_OP_GET 0
#define MPTCPK_BPF_OP_SET 1
struct mptcpk_bpf_req {
    uint32_t family;            /* AF_INET / AF_INET6 */
    uint32_t token;             /* this side's MPTCP_INFO token */
    uint8_t saddr[16];          /* local address, network order (4 bytes for AF_INET) */
    uint8_t daddr[16];          /* remote address */
    uint16_t sport;             /* local port, host order */
    uint16_t dport;             /* remote port, host order */
    int32_t op;                 /* MPTCPK_BPF_OP_GET / _SET */
    int32_t level;
    int32_t optname;
    int32_t optlen;             /* 1..MPTCPK_BPF_VALUE_MAX (4 for an int) */
    int32_t ret;                /* out: the helper's return (0 or -errno) */
    uint32_t matched;           /* out: sockets that matched (0: no such subflow) */
    uint32_t reserved;
    uint8_t value[MPTCPK_BPF_VALUE_MAX];  /* in for SET, out for GET */
};

/* ---------------------------------------------------------------------------------
 * Layout checks
 * ------------------------------------------------------------------------------- */
_Static_assert(sizeof(struct mptcpk_info) == 96, "mptcp_info is 96 bytes (6.18)");
_Static_assert(offsetof(struct mptcpk_info, token) == 12, "mptcpi_token at 12");
_Static_assert(offsetof(struct mptcpk_info, retransmits) == 44, "mptcpi_retransmits at 44");
_Static_assert(offsetof(struct mptcpk_info, bytes_acked) == 72, "mptcpi_bytes_acked at 72");
_Static_assert(offsetof(struct mptcpk_info, subflows_total) == 80, "mptcpi_subflows_total at 80");
_Static_assert(offsetof(struct mptcpk_info, last_data_sent) == 84, "mptcpi_last_data_sent at 84");
_Static_assert(sizeof(struct mptcpk_subflow_data) == 16, "mptcp_subflow_data is 16 bytes");
_Static_assert(sizeof(struct mptcpk_sockaddr_storage) == 128, "sockaddr_storage is 128 bytes");
_Static_assert(sizeof(struct mptcpk_subflow_addrs) == 256, "mptcp_subflow_addrs is 256 bytes");
_Static_assert(sizeof(struct mptcpk_subflow_info) == 264, "mptcp_subflow_info is 264 bytes");
_Static_assert(offsetof(struct mptcpk_subflow_info, addrs) == 8, "addrs at 8");
_Static_assert(offsetof(struct mptcpk_full_info, mptcp_info) == 40, "full_info header is 40");
_Static_assert(sizeof(struct mptcpk_full_info) == 136, "full_info is 40 + 96");
_Static_assert(offsetof(struct mptcpk_tcp_info, rtt) == 68, "tcpi_rtt at 68");
_Static_assert(offsetof(struct mptcpk_tcp_info, snd_cwnd) == 80, "tcpi_snd_cwnd at 80");
_Static_assert(offsetof(struct mptcpk_tcp_info, bytes_acked) == 120, "tcpi_bytes_acked at 120");
_Static_assert(offsetof(struct mptcpk_tcp_info, delivery_rate) == 160, "tcpi_delivery_rate at 160");
_Static_assert(offsetof(struct mptcpk_tcp_info, bytes_sent) == 200, "tcpi_bytes_sent at 200");
_Static_assert(offsetof(struct mptcpk_tcp_info, snd_wnd) == 228, "tcpi_snd_wnd at 228");
_Static_assert(offsetof(struct mptcpk_tcp_info, total_rto) == 240, "tcpi_total_rto at 240");
_Static_assert(sizeof(struct mptcpk_tcp_info) == 248, "tcp_info up to total_rto_time");
_Static_assert(sizeof(struct mptcpk_inet_diag_sockid) == 48, "inet_diag_sockid is 48");
_Static_assert(sizeof(struct mptcpk_inet_diag_req_v2) == 56, "inet_diag_req_v2 is 56");
_Static_assert(sizeof(struct mptcpk_inet_diag_req) == 60, "inet_diag_req is 60");
_Static_assert(sizeof(struct mptcpk_inet_diag_msg) == 72, "inet_diag_msg is 72");
_Static_assert(sizeof(struct mptcpk_sub_status) == 2, "mptcp_sub_status is 2 bytes");
_Static_assert(offsetof(struct mptcpk_sub_ids, sub_status) == 2, "sub_ids header is 2");
#if defined(__LP64__)
_Static_assert(sizeof(struct mptcpk_sub_getsockopt) == 32, "sub_getsockopt is 32 on LP64");
_Static_assert(sizeof(struct mptcpk_sub_setsockopt) == 32, "sub_setsockopt is 32 on LP64");
_Static_assert(offsetof(struct mptcpk_sub_getsockopt, optval) == 16, "optval at 16");
_Static_assert(offsetof(struct mptcpk_sub_getsockopt, optlen) == 24, "optlen at 24");
#endif

_Static_assert(sizeof(struct mptcpk_bpf_insn) == 8, "bpf_insn is 8 bytes");
_Static_assert(offsetof(struct mptcpk_bpf_map_create, map_name) == 28, "map_name at 28");
_Static_assert(offsetof(struct mptcpk_bpf_map_create, map_extra) == 64, "map_extra at 64");
_Static_assert(sizeof(struct mptcpk_bpf_map_elem) == 32, "map_elem attr is 32 bytes");
_Static_assert(offsetof(struct mptcpk_bpf_prog_load, prog_name) == 48, "prog_name at 48");
_Static_assert(offsetof(struct mptcpk_bpf_prog_load, expected_attach_type) == 68, "expected_attach_type at 68");
_Static_assert(offsetof(struct mptcpk_bpf_prog_load, attach_btf_id) == 108, "attach_btf_id at 108");
_Static_assert(sizeof(struct mptcpk_bpf_prog_load) == 144, "prog_load attr is 144 bytes");
_Static_assert(offsetof(struct mptcpk_bpf_link_create, iter_info) == 16, "iter_info at 16");
_Static_assert(sizeof(struct mptcpk_bpf_iter_create) == 8, "iter_create attr is 8 bytes");
_Static_assert(sizeof(struct mptcpk_btf_header) == 24, "btf_header is 24 bytes");
_Static_assert(sizeof(struct mptcpk_btf_type) == 12, "btf_type is 12 bytes");
_Static_assert(sizeof(struct mptcpk_btf_member) == 12, "btf_member is 12 bytes");
_Static_assert(sizeof(struct mptcpk_btf_enum) == 8, "btf_enum is 8 bytes");
_Static_assert(sizeof(struct mptcpk_btf_param) == 8, "btf_param is 8 bytes");
_Static_assert(sizeof(struct mptcpk_btf_var_secinfo) == 12, "btf_var_secinfo is 12 bytes");
_Static_assert(sizeof(struct mptcpk_btf_enum64) == 12, "btf_enum64 is 12 bytes");
_Static_assert(offsetof(struct mptcpk_bpf_req, sport) == 40, "req.sport at 40");
_Static_assert(offsetof(struct mptcpk_bpf_req, ret) == 60, "req.ret at 60");
_Static_assert(offsetof(struct mptcpk_bpf_req, value) == 72, "req.value at 72");
_Static_assert(sizeof(struct mptcpk_bpf_req) == 72 + MPTCPK_BPF_VALUE_MAX, "bpf_req size");

#endif /* MPTCP_SOCKOPT_H */
