/*
 * mptcp_sockopt.h - the kernel ABI that the mptcp package relies on, in our own copy.
 *
 * Builds never include <linux/mptcp.h>: build hosts ship headers of every age, and the
 * draft-API structs were never in any mainline header. Every constant is under #ifndef
 * so a host definition (same value) wins silently; every struct layout is pinned by
 * _Static_assert so a wrong copy fails the build instead of decoding garbage.
 *
 * Sources: uapi linux/mptcp.h, linux/mptcp_pm.h, linux/tcp.h, linux/inet_diag.h,
 * linux/sock_diag.h (mainline 6.18), and the draft-hesmans-mptcp-socket research fork.
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
_Static_assert(sizeof(struct mptcpk_inet_diag_msg) == 72, "inet_diag_msg is 72");
_Static_assert(sizeof(struct mptcpk_sub_status) == 2, "mptcp_sub_status is 2 bytes");
_Static_assert(offsetof(struct mptcpk_sub_ids, sub_status) == 2, "sub_ids header is 2");
#if defined(__LP64__)
_Static_assert(sizeof(struct mptcpk_sub_getsockopt) == 32, "sub_getsockopt is 32 on LP64");
_Static_assert(sizeof(struct mptcpk_sub_setsockopt) == 32, "sub_setsockopt is 32 on LP64");
_Static_assert(offsetof(struct mptcpk_sub_getsockopt, optval) == 16, "optval at 16");
_Static_assert(offsetof(struct mptcpk_sub_getsockopt, optlen) == 24, "optlen at 24");
#endif

#endif /* MPTCP_SOCKOPT_H */
