# One subflow's socket options through a BPF iter/tcp program (src/mptcp_bpf.c).
# Included by _mptcp.pyx.
#
# The program is loaded once per process, on first use, and kept; its fds never
# leave this file. A call fills the program's request (the subflow's 4-tuple, family
# and token, from one MPTCP_FULL_INFO snapshot when the caller has the socket),
# runs the iterator without the GIL and hands back the helper's answer. What an
# answer means (which exception, which words) is the Python layer's business: it
# registers the hook failures go through (_register_bpf).

cdef extern from "mptcp_bpf.h" nogil:
    enum: MBPF_STAGE_NETNS
    struct mbpf_btf_info:
        uint32_t id_rdonly_cast
    struct mbpf:
        int map_fd, prog_fd, link_fd
        int use_kfunc
        int insn_cnt
        mbpf_btf_info btf
        uint64_t ns_btf, ns_map, ns_prog, ns_link
    struct mbpf_error:
        int stage
        char message[256]
    void mbpf_init(mbpf *st)
    int mbpf_open(mbpf *st, unsigned flags, mbpf_error *err)
    int mbpf_call(mbpf *st, mptcpk_bpf_req *req, int netns_fd, mbpf_error *err)
    void mbpf_close(mbpf *st)
    void mbpf_forget(mbpf *st)

cdef extern from "mptcp_sockopt.h" nogil:
    int MPTCPK_BPF_VALUE_MAX
    int MPTCPK_BPF_OP_GET
    int MPTCPK_BPF_OP_SET
    struct mptcpk_bpf_req:
        uint32_t family
        uint32_t token
        uint8_t saddr[16]
        uint8_t daddr[16]
        uint16_t sport
        uint16_t dport
        int32_t op
        int32_t level
        int32_t optname
        int32_t optlen
        int32_t ret
        uint32_t matched
        uint8_t value[128]
    int MPTCPK_SO_NETNS_COOKIE
    unsigned long MPTCPK_SIOCGSKNS
    int SO_MAX_PACING_RATE
    int SO_BINDTOIFINDEX
    int SO_TXREHASH
    int TCP_THIN_LINEAR_TIMEOUTS
    int TCP_SAVE_SYN
    int TCP_RTO_MAX_MS
    int TCP_BPF_IW
    int TCP_BPF_SNDCWND_CLAMP
    int TCP_BPF_DELACK_MAX
    int TCP_BPF_RTO_MIN
    int IPV6_AUTOFLOWLABEL


cdef extern from "<sys/ioctl.h>" nogil:
    int ioctl(int fd, unsigned long request, ...)

cdef extern from "<sys/socket.h>" nogil:
    int bpf_c_socket "socket"(int domain, int type, int protocol)
    int SOCK_DGRAM

cdef extern from "<unistd.h>" nogil:
    int bpf_c_close "close"(int fd)

BPF_STAGES = ("none", "btf_open", "btf_parse", "btf_lookup", "map_create", "prog_load",
              "link_create", "map_update", "netns", "iter_create", "iter_read", "map_lookup",
              "args")
BPF_VALUE_MAX = MPTCPK_BPF_VALUE_MAX
# The option numbers Python's socket module lacks (with the header's other constants
# in the class abi; a class body cannot see C names, hence this dict).
cdef dict bpf_option_numbers = dict(
    SO_MAX_PACING_RATE=SO_MAX_PACING_RATE,
    SO_BINDTOIFINDEX=SO_BINDTOIFINDEX,
    SO_TXREHASH=SO_TXREHASH,
    TCP_THIN_LINEAR_TIMEOUTS=TCP_THIN_LINEAR_TIMEOUTS,
    TCP_SAVE_SYN=TCP_SAVE_SYN,
    TCP_RTO_MAX_MS=TCP_RTO_MAX_MS,
    TCP_BPF_IW=TCP_BPF_IW,
    TCP_BPF_SNDCWND_CLAMP=TCP_BPF_SNDCWND_CLAMP,
    TCP_BPF_DELACK_MAX=TCP_BPF_DELACK_MAX,
    TCP_BPF_RTO_MIN=TCP_BPF_RTO_MIN,
    IPV6_AUTOFLOWLABEL=IPV6_AUTOFLOWLABEL,
)
for _name, _value in bpf_option_numbers.items():
    setattr(abi, _name, _value)

cdef mbpf bpf_state
mbpf_init(&bpf_state)
cdef object bpf_hook = None


def _register_bpf(hook):
    """Give the core the hook failures go through: (errno, stage, message, call) ->
    exception."""
    global bpf_hook
    bpf_hook = hook


cdef int bpf_raise(int err, const mbpf_error *why, str call) except -1:
    message = why.message.decode(errors="replace")
    name = BPF_STAGES[why.stage] if 0 <= why.stage < len(BPF_STAGES) else "?"
    if bpf_hook is None:
        raise OSError(err, f"{call}: {name}: {message}")
    raise bpf_hook(err, name, message, call)


def bpf_load(str call="load", unsigned flags=0):
    """Load the program unless it is loaded (BTF, map, program, link)."""
    cdef int rc
    cdef mbpf_error why
    if bpf_state.link_fd >= 0:  # the common case, without taking the lock
        return
    with nogil:
        rc = mbpf_open(&bpf_state, flags, &why)
    if rc < 0:
        bpf_raise(-rc, &why, call)


def bpf_loaded():
    """Whether the program is loaded in this process."""
    return bpf_state.link_fd >= 0


def bpf_unload():
    """Close the program's fds (idempotent)."""
    with nogil:
        mbpf_close(&bpf_state)


def bpf_forget():
    """In a forked child: drop the parent's fds and reset the lock."""
    mbpf_forget(&bpf_state)


def bpf_stats():
    """What the last load did: program size and variant, and its steps' times (ns)."""
    return {"insns": bpf_state.insn_cnt, "kfunc": bool(bpf_state.use_kfunc),
            "ns_btf": bpf_state.ns_btf, "ns_map": bpf_state.ns_map,
            "ns_prog": bpf_state.ns_prog, "ns_link": bpf_state.ns_link}


cdef int req_target(mptcpk_bpf_req *req, const uint8_t *local, const uint8_t *remote,
                    uint32_t token) noexcept nogil:
    """Fill the request's family, addresses and ports from two sockaddrs (the local
    and remote of one subflow, as FULL_INFO reports them); 0 for another family."""
    cdef uint16_t family, port
    memcpy(&family, local, 2)
    if family == AF_INET:
        memcpy(req.saddr, local + 4, 4)
        memcpy(req.daddr, remote + 4, 4)
    elif family == AF_INET6:
        memcpy(req.saddr, local + 8, 16)
        memcpy(req.daddr, remote + 8, 16)
    else:
        return 0
    req.family = family
    memcpy(&port, local + 2, 2)
    req.sport = ntohs(port)
    memcpy(&port, remote + 2, 2)
    req.dport = ntohs(port)
    req.token = token
    return 1


cdef int req_from_fd(int fd, uint32_t sub_id, mptcpk_bpf_req *req, str call) except -1:
    """The request's target from one FULL_INFO snapshot of fd: 1, or 0 when no live
    subflow has that id."""
    cdef mptcpk_full_info hdr
    cdef mptcpk_subflow_info sf_stack[STACK_SUBFLOWS]
    cdef mptcpk_tcp_info ti_stack[STACK_SUBFLOWS]
    cdef uint8_t *sf = <uint8_t *>sf_stack
    cdef uint8_t *ti = <uint8_t *>ti_stack
    cdef uint32_t cap = STACK_SUBFLOWS, i, n, sid
    cdef socklen_t length
    cdef void *heap = NULL
    cdef size_t ti_avail
    cdef const uint8_t *entry
    try:
        full_info_fetch(fd, &hdr, &sf, &ti, &cap, &length, &heap, call)
        # The two sockaddrs end at byte 136 + 28 of an entry (6.5 gives 264).
        if elem_avail(hdr.size_sfinfo_kernel, hdr.size_sfinfo_user) < 136 + 28:
            return 0
        ti_avail = elem_avail(hdr.size_tcpinfo_kernel, hdr.size_tcpinfo_user)
        n = hdr.num_subflows if hdr.num_subflows < cap else cap
        for i in range(n):
            entry = sf + i * sizeof(mptcpk_subflow_info)
            memcpy(&sid, entry, 4)
            if sid == sub_id and is_live(ti + i * sizeof(mptcpk_tcp_info), ti_avail):
                return req_target(req, entry + 8, entry + 136, hdr.mptcp_info.token)
        return 0
    finally:
        PyMem_Free(heap)


cdef uint64_t netns_cookie(int fd) noexcept nogil:
    """SO_NETNS_COOKIE of fd (5.14), or of a fresh socket of the calling thread's
    namespace when fd < 0; 0 if unknown."""
    cdef uint64_t cookie = 0
    cdef socklen_t length = sizeof(cookie)
    cdef int own = fd < 0
    if own:
        fd = bpf_c_socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)
        if fd < 0:
            return 0
    if getsockopt(fd, SOL_SOCKET, MPTCPK_SO_NETNS_COOKIE, &cookie, &length) != 0:
        cookie = 0
    if own:
        bpf_c_close(fd)
    return cookie


cdef tuple bpf_run(mptcpk_bpf_req *req, int sock_fd, str call):
    """Run the request. When nothing matched and sock_fd is a socket of another
    network namespace than the calling thread's, run it again in that namespace
    (SIOCGSKNS + setns, CAP_NET_ADMIN + CAP_SYS_ADMIN): never a false "not found"."""
    cdef int rc, nsfd
    cdef mbpf_error why
    with nogil:
        rc = mbpf_call(&bpf_state, req, -1, &why)
    if rc < 0:
        bpf_raise(-rc, &why, call)
    if req.matched == 0 and sock_fd >= 0:
        with nogil:
            rc = netns_cookie(sock_fd) != netns_cookie(-1)
        if rc:
            nsfd = ioctl(sock_fd, MPTCPK_SIOCGSKNS)
            if nsfd < 0:
                rc = errno  # before anything else can change it
                why.stage = MBPF_STAGE_NETNS
                msg = (b"SIOCGSKNS: the socket is in another network namespace than the "
                       b"calling thread")
                memcpy(why.message, <const char *>msg, len(msg) + 1)
                bpf_raise(rc, &why, call)
            try:
                with nogil:
                    rc = mbpf_call(&bpf_state, req, nsfd, &why)
                if rc < 0:
                    bpf_raise(-rc, &why, call)
            finally:
                bpf_c_close(nsfd)
    return req.ret, req.matched


cdef int req_option(mptcpk_bpf_req *req, int op, int level, int optname, object value,
                    int buflen) except -1:
    cdef const unsigned char[::1] data
    cdef int n
    req.op = op
    req.level = level
    req.optname = optname
    memset(req.value, 0, sizeof(req.value))
    if op == MPTCPK_BPF_OP_SET:
        data = value
        n = data.shape[0]
        if n < 1 or n > MPTCPK_BPF_VALUE_MAX:
            raise ValueError(f"an option value is 1-{MPTCPK_BPF_VALUE_MAX} bytes, not {n}")
        memcpy(req.value, &data[0], n)
        req.optlen = n
    else:
        if buflen < 1 or buflen > MPTCPK_BPF_VALUE_MAX:
            raise ValueError(f"buflen must be 1-{MPTCPK_BPF_VALUE_MAX}, not {buflen}")
        req.optlen = buflen
    return 0


def bpf_sub_sockopt(int fd, uint32_t sub_id, bint set_, int level, int optname, value,
                    int buflen, str call):
    """One option of subflow ``sub_id`` of the connection on fd: (helper return,
    sockets matched, value bytes read (``buflen`` of them) or None, the subflow's
    family). Matched 0: no such live subflow."""
    cdef mptcpk_bpf_req req
    memset(&req, 0, sizeof(req))
    req_option(&req, MPTCPK_BPF_OP_SET if set_ else MPTCPK_BPF_OP_GET, level, optname,
               value, buflen)
    if not req_from_fd(fd, sub_id, &req, call):
        return 0, 0, None, 0
    ret, matched = bpf_run(&req, fd, call)
    return ret, matched, None if set_ else (<char *>req.value)[:req.optlen], req.family


def bpf_tuple_sockopt(uint32_t token, int family, const unsigned char[::1] saddr not None,
                      uint16_t sport, const unsigned char[::1] daddr not None, uint16_t dport,
                      bint set_, int level, int optname, value, int buflen, int sock_fd,
                      str call):
    """The same for the subflow with this family and 4-tuple of connection ``token``
    (searched in the calling thread's namespace, or sock_fd's when it is a socket)."""
    cdef mptcpk_bpf_req req
    cdef Py_ssize_t alen = 4 if family == AF_INET else 16
    memset(&req, 0, sizeof(req))
    if (family != AF_INET and family != AF_INET6) or saddr.shape[0] != alen \
            or daddr.shape[0] != alen:
        raise ValueError("addresses must be 4 (AF_INET) or 16 (AF_INET6) bytes")
    req_option(&req, MPTCPK_BPF_OP_SET if set_ else MPTCPK_BPF_OP_GET, level, optname,
               value, buflen)
    req.family = family
    req.token = token
    memcpy(req.saddr, &saddr[0], alen)
    memcpy(req.daddr, &daddr[0], alen)
    req.sport = sport
    req.dport = dport
    ret, matched = bpf_run(&req, sock_fd, call)
    return ret, matched, None if set_ else (<char *>req.value)[:req.optlen], family
