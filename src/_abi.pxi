# Declarations of the parts of include/mptcp_sockopt.h that the core uses.
# The header owns the layouts (and asserts them); this file only names them.

from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int32_t

cdef extern from "<sys/socket.h>" nogil:
    ctypedef unsigned int socklen_t
    int getsockopt(int fd, int level, int optname, void *optval, socklen_t *optlen)
    int setsockopt(int fd, int level, int optname, const void *optval, socklen_t optlen)
    struct sockaddr:
        pass
    int getpeername(int fd, sockaddr *addr, socklen_t *addrlen)
    int getsockname(int fd, sockaddr *addr, socklen_t *addrlen)
    int AF_INET
    int AF_INET6
    int SOL_SOCKET
    int SO_PROTOCOL
    int SO_TYPE
    int SO_DOMAIN

cdef extern from "<arpa/inet.h>" nogil:
    const char *inet_ntop(int af, const void *src, char *dst, socklen_t size)
    uint16_t ntohs(uint16_t)
    uint16_t htons(uint16_t)

cdef extern from "<errno.h>" nogil:
    int errno
    int EINTR
    int EINVAL
    int EOPNOTSUPP

cdef extern from "<string.h>" nogil:
    void *memset(void *s, int c, size_t n)
    void *memcpy(void *dst, const void *src, size_t n)
    int memcmp(const void *a, const void *b, size_t n)

cdef extern from "mptcp_sockopt.h" nogil:
    int IPPROTO_MPTCP
    int SOL_MPTCP
    int MPTCP_INFO
    int MPTCP_TCPINFO
    int MPTCP_SUBFLOW_ADDRS
    int MPTCP_FULL_INFO
    int TCP_IS_MPTCP
    unsigned int MPTCP_INFO_FLAG_FALLBACK
    const char *MPTCP_PM_NAME
    const char *MPTCP_PM_EV_GRP_NAME
    unsigned int MPTCP_PM_ADDR_FLAG_SIGNAL
    unsigned int MPTCP_PM_ADDR_FLAG_SUBFLOW
    unsigned int MPTCP_PM_ADDR_FLAG_BACKUP
    unsigned int MPTCP_PM_ADDR_FLAG_FULLMESH
    unsigned int MPTCP_PM_ADDR_FLAG_IMPLICIT
    unsigned int MPTCP_PM_ADDR_FLAG_LAMINAR

    struct mptcpk_info:
        uint8_t subflows, add_addr_signal, add_addr_accepted, subflows_max
        uint8_t add_addr_signal_max, add_addr_accepted_max
        uint32_t flags, token
        uint64_t write_seq, snd_una, rcv_nxt
        uint8_t local_addr_used, local_addr_max, csum_enabled
        uint32_t retransmits
        uint64_t bytes_retrans, bytes_sent, bytes_received, bytes_acked
        uint8_t subflows_total, endp_laminar_max, endp_fullmesh_max
        uint32_t last_data_sent, last_data_recv, last_ack_recv

    struct mptcpk_subflow_data:
        uint32_t size_subflow_data, num_subflows, size_kernel, size_user

    struct mptcpk_sockaddr_storage:
        uint16_t family

    struct mptcpk_subflow_addrs:
        mptcpk_sockaddr_storage local
        mptcpk_sockaddr_storage remote

    struct mptcpk_subflow_info:
        uint32_t id
        mptcpk_subflow_addrs addrs

    struct mptcpk_full_info:
        uint32_t size_tcpinfo_kernel, size_tcpinfo_user
        uint32_t size_sfinfo_kernel, size_sfinfo_user
        uint32_t num_subflows, size_arrays_user
        uint64_t subflow_info, tcp_info
        mptcpk_info mptcp_info

    struct mptcpk_tcp_info:
        uint8_t state, ca_state, retransmits, probes, backoff, options, wscale
        uint32_t rto, ato, snd_mss, rcv_mss
        uint32_t unacked, sacked, lost, retrans, fackets
        uint32_t last_data_sent, last_ack_sent, last_data_recv, last_ack_recv
        uint32_t pmtu, rcv_ssthresh, rtt, rttvar, snd_ssthresh, snd_cwnd, advmss, reordering
        uint32_t rcv_rtt, rcv_space, total_retrans
        uint64_t pacing_rate, max_pacing_rate, bytes_acked, bytes_received
        uint32_t segs_out, segs_in, notsent_bytes, min_rtt, data_segs_in, data_segs_out
        uint64_t delivery_rate, busy_time, rwnd_limited, sndbuf_limited
        uint32_t delivered, delivered_ce
        uint64_t bytes_sent, bytes_retrans
        uint32_t dsack_dups, reord_seen, rcv_ooopack, snd_wnd, rcv_wnd, rehash
        uint16_t total_rto, total_rto_recoveries
        uint32_t total_rto_time

    # draft API (research-fork kernels)
    int MPTCP_ENABLED
    int MPTCP_GET_SUB_IDS
    int MPTCP_CLOSE_SUB_ID
    int MPTCP_GET_SUB_TUPLE
    int MPTCP_OPEN_SUB_TUPLE
    int MPTCP_SUB_GETSOCKOPT
    int MPTCP_SUB_SETSOCKOPT
    int MPTCPK_SUB_STATUS_FULLY_ESTABLISHED
    int MPTCPK_SUB_STATUS_ATTACHED
    int MPTCPK_SUB_STATUS_PRE_ESTABLISHED
    int MPTCPK_SUB_IDS_MAX_LEN
    int MPTCPK_SUB_TUPLE_LEN_V4
    int MPTCPK_SUB_TUPLE_LEN_V6

    struct mptcpk_sub_getsockopt:
        uint8_t id
        int32_t level
        int32_t optname
        char *optval
        uint32_t *optlen

    struct mptcpk_sub_setsockopt:
        uint8_t id
        int32_t level
        int32_t optname
        char *optval
        uint32_t optlen
