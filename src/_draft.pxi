# The draft socket API (draft-hesmans-mptcp-socket) of the research-fork kernels
# (structs and option numbers in include/mptcp_sockopt.h). Included by _mptcp.pyx. Raw calls into stack buffers, the
# GIL released around each syscall; the Python side (mptcp/_backends/draft.py) owns policy.
#
# Errors go through a hook of their own (``_register_draft``): the same errno means
# different things per call here (EINVAL is "unknown id" for GET_SUB_TUPLE but a
# refused tuple for OPEN_SUB_TUPLE), so the hook gets the call name and maps it.

cdef extern from "<netinet/in.h>" nogil:
    int IPPROTO_TCP
    struct sockaddr_in:
        uint16_t sin_family
        uint16_t sin_port
    struct sockaddr_in6:
        uint16_t sin6_family
        uint16_t sin6_port
        uint32_t sin6_scope_id

cdef extern from "<errno.h>" nogil:
    int EPROTO_ "EPROTO"

cdef extern from *:
    """
    #include <netinet/in.h>
    _Static_assert(MPTCPK_SUB_IDS_MAX_LEN == 512, "draft GET_SUB_IDS buffer");
    _Static_assert(MPTCPK_SUB_TUPLE_LEN_V4 == 1 + 2 * sizeof(struct sockaddr_in), "tuple v4");
    _Static_assert(MPTCPK_SUB_TUPLE_LEN_V6 == 1 + 2 * sizeof(struct sockaddr_in6), "tuple v6");
    #define MPTCPK_SIN_ADDR_OFF offsetof(struct sockaddr_in, sin_addr)
    #define MPTCPK_SIN6_ADDR_OFF offsetof(struct sockaddr_in6, sin6_addr)
    """
    const size_t SIN_ADDR_OFF "MPTCPK_SIN_ADDR_OFF"
    const size_t SIN6_ADDR_OFF "MPTCPK_SIN6_ADDR_OFF"

DEF DRAFT_IDS_LEN = 512        # MPTCPK_SUB_IDS_MAX_LEN: 2 + 2 * 255, u8 sub_count
DEF DRAFT_TUPLE_LEN = 57       # MPTCPK_SUB_TUPLE_LEN_V6: holds either family

# The status bits the fork really sets; slave_sk and low_prio are uninitialised memory.
DRAFT_STATUS_MASK = (MPTCPK_SUB_STATUS_FULLY_ESTABLISHED | MPTCPK_SUB_STATUS_ATTACHED
                     | MPTCPK_SUB_STATUS_PRE_ESTABLISHED)
cdef uint8_t status_mask = DRAFT_STATUS_MASK

cdef object draft_error_hook = None


def _register_draft(hook):
    """Give the core the draft backend's hook: hook(errno, call, fd) -> exception."""
    global draft_error_hook
    draft_error_hook = hook


cdef int draft_raise(int err, str call, int fd) except -1:
    if draft_error_hook is None:
        return raise_errno(err, call, fd)
    raise draft_error_hook(err, call, fd)


cdef inline int sockopt_set(int fd, int level, int name, const void *buf,
                            socklen_t length) noexcept nogil:
    """setsockopt retried on EINTR; returns 0 or errno."""
    while True:
        if setsockopt(fd, level, name, buf, length) == 0:
            return 0
        if errno != EINTR:
            return errno


# --------------------------------------------------------------------------------
# Decoders (shared by the syscalls and the bytes API)
# --------------------------------------------------------------------------------
cdef list decode_sub_ids(const uint8_t *buf, size_t length, bint with_status):
    """[(id, status bits)] or [id] in the kernel's order, from a GET_SUB_IDS reply."""
    cdef size_t n, i
    cdef list out = PyList_New(0)
    if length < 2:
        return out
    n = buf[0]
    if n > (length - 2) // 2:
        n = (length - 2) // 2
    for i in range(n):
        if with_status:
            PyList_Append(out, (buf[2 + 2 * i], buf[3 + 2 * i] & status_mask))
        else:
            PyList_Append(out, buf[2 + 2 * i])
    return out


cdef object decode_sub_tuple(const uint8_t *buf, size_t length):
    """(local, remote) from a GET_SUB_TUPLE reply, or None if it holds no tuple.

    The sockaddrs start at offset 1 (unaligned); decode_sockaddr reads them with
    memcpy and ignores sin_zero, flowinfo and scope_id (garbage on the fork). The
    family at offset 1 says the sockaddr size, whether or not the kernel wrote the
    length back.
    """
    cdef uint16_t family
    cdef size_t salen
    if length < 3:
        return None
    memcpy(&family, buf + 1, 2)
    if family == AF_INET:
        salen = sizeof(sockaddr_in)
    elif family == AF_INET6:
        salen = sizeof(sockaddr_in6)
    else:
        return None
    if length < 1 + 2 * salen:
        return None
    memcpy(&family, buf + 1 + salen, 2)
    if family != (AF_INET if salen == sizeof(sockaddr_in) else AF_INET6):
        return None
    local = decode_sockaddr(buf + 1, salen)
    remote = decode_sockaddr(buf + 1 + salen, salen)
    if local is None or remote is None:
        return None
    return local, remote


def decode_draft_sub_ids(const unsigned char[:] data not None, bint with_status=True):
    """The GET_SUB_IDS decoder over caller bytes (tests, fuzzing)."""
    return decode_sub_ids(_ptr(data), data.shape[0], with_status)


def decode_draft_sub_tuple(const unsigned char[:] data not None):
    """The GET_SUB_TUPLE decoder over caller bytes; ValueError if no tuple is there."""
    res = decode_sub_tuple(_ptr(data), data.shape[0])
    if res is None:
        raise ValueError("not an IPv4 or IPv6 mptcp_sub_tuple")
    return res


# --------------------------------------------------------------------------------
# The calls
# --------------------------------------------------------------------------------
def draft_enabled(int fd):
    """getsockopt(SOL_TCP, MPTCP_ENABLED): 1 on an MPTCP connection, else 0."""
    cdef int value = 0
    cdef socklen_t length = sizeof(value)
    cdef int err
    with nogil:
        err = sockopt_get(fd, IPPROTO_TCP, MPTCP_ENABLED, &value, &length)
    if err:
        draft_raise(err, "mptcp_enabled", fd)
    return value


def draft_sub_ids(int fd, bint with_status=True):
    """One GET_SUB_IDS into a 512-byte stack buffer: [(id, masked status)] or [id]."""
    cdef uint8_t buf[DRAFT_IDS_LEN]
    cdef socklen_t length = DRAFT_IDS_LEN
    cdef int err
    buf[0] = 0
    with nogil:
        err = sockopt_get(fd, IPPROTO_TCP, MPTCP_GET_SUB_IDS, buf, &length)
    if err:
        draft_raise(err, "get_sub_ids", fd)
    return decode_sub_ids(buf, length if length < DRAFT_IDS_LEN else DRAFT_IDS_LEN, with_status)


def draft_sub_status(int fd, uint8_t sub_id):
    """Masked status bits of subflow sub_id from one GET_SUB_IDS, -1 if absent."""
    cdef uint8_t buf[DRAFT_IDS_LEN]
    cdef socklen_t length = DRAFT_IDS_LEN
    cdef int err
    cdef size_t n, i
    buf[0] = 0
    with nogil:
        err = sockopt_get(fd, IPPROTO_TCP, MPTCP_GET_SUB_IDS, buf, &length)
    if err:
        draft_raise(err, "get_sub_ids", fd)
    if length > DRAFT_IDS_LEN:
        length = DRAFT_IDS_LEN
    if length < 2:
        return -1
    n = buf[0]
    if n > (length - 2) // 2:
        n = (length - 2) // 2
    for i in range(n):
        if buf[2 + 2 * i] == sub_id:
            return buf[3 + 2 * i] & status_mask
    return -1


def draft_sub_tuple(int fd, uint8_t sub_id):
    """(local, remote) of subflow sub_id: one GET_SUB_TUPLE with a 57-byte buffer."""
    cdef uint8_t buf[DRAFT_TUPLE_LEN]
    cdef socklen_t length = DRAFT_TUPLE_LEN
    cdef int err
    memset(buf, 0, DRAFT_TUPLE_LEN)
    buf[0] = sub_id
    with nogil:
        err = sockopt_get(fd, IPPROTO_TCP, MPTCP_GET_SUB_TUPLE, buf, &length)
    if err:
        draft_raise(err, "get_sub_tuple", fd)
    res = decode_sub_tuple(buf, length if length < DRAFT_TUPLE_LEN else DRAFT_TUPLE_LEN)
    if res is None:
        draft_raise(EPROTO_, "get_sub_tuple", fd)
    return res


cdef size_t put_sockaddr(uint8_t *dst, int family, const unsigned char[:] addr,
                         uint16_t port, uint32_t scope_id) except 0:
    """Writes a zeroed sockaddr_in/in6 at dst (unaligned); returns its size."""
    cdef sockaddr_in sin
    cdef sockaddr_in6 sin6
    if family == AF_INET and addr.shape[0] == 4:
        memset(&sin, 0, sizeof(sin))
        sin.sin_family = AF_INET
        sin.sin_port = htons(port)
        memcpy(<uint8_t *>&sin + SIN_ADDR_OFF, &addr[0], 4)
        memcpy(dst, &sin, sizeof(sin))
        return sizeof(sin)
    if family == AF_INET6 and addr.shape[0] == 16:
        memset(&sin6, 0, sizeof(sin6))
        sin6.sin6_family = AF_INET6
        sin6.sin6_port = htons(port)
        sin6.sin6_scope_id = scope_id
        memcpy(<uint8_t *>&sin6 + SIN6_ADDR_OFF, &addr[0], 16)
        memcpy(dst, &sin6, sizeof(sin6))
        return sizeof(sin6)
    raise ValueError(f"family {family} with a {addr.shape[0]}-byte address")


def draft_open_sub(int fd, int family, const unsigned char[:] local_addr not None,
                   uint16_t local_port, const unsigned char[:] remote_addr not None,
                   uint16_t remote_port, uint32_t local_scope=0, uint32_t remote_scope=0):
    """OPEN_SUB_TUPLE with optlen exactly 33 (IPv4) or 57 (IPv6); returns nothing
    (the kernel returns no id). Addresses are packed (4 or 16 bytes), ports host order."""
    cdef uint8_t buf[DRAFT_TUPLE_LEN]
    cdef size_t salen
    cdef socklen_t length
    cdef int err
    memset(buf, 0, DRAFT_TUPLE_LEN)
    salen = put_sockaddr(buf + 1, family, local_addr, local_port, local_scope)
    put_sockaddr(buf + 1 + salen, family, remote_addr, remote_port, remote_scope)
    length = <socklen_t>(1 + 2 * salen)
    with nogil:
        err = sockopt_get(fd, IPPROTO_TCP, MPTCP_OPEN_SUB_TUPLE, buf, &length)
    if err:
        draft_raise(err, "open_sub", fd)


def draft_close_sub(int fd, uint8_t sub_id):
    """CLOSE_SUB_ID with optlen exactly 1 (more overflows the fork's kernel stack)."""
    cdef uint8_t cid = sub_id
    cdef socklen_t length = 1
    cdef int err
    with nogil:
        err = sockopt_get(fd, IPPROTO_TCP, MPTCP_CLOSE_SUB_ID, &cid, &length)
    if err:
        draft_raise(err, "close_sub", fd)


DEF DRAFT_OPT_MAX = 256


def draft_sub_getsockopt(int fd, uint8_t sub_id, int level, int optname, int buflen, str call):
    """Up to ``buflen`` bytes of an option of one subflow (SUB_GETSOCKOPT, 32-byte
    request): the bytes the subflow's getsockopt wrote."""
    cdef mptcpk_sub_getsockopt req
    cdef char value[DRAFT_OPT_MAX]
    cdef uint32_t vlen
    cdef socklen_t length = sizeof(req)
    cdef int err
    if not 0 < buflen <= DRAFT_OPT_MAX:
        raise ValueError(f"buflen must be 1-{DRAFT_OPT_MAX}, not {buflen}")
    vlen = buflen
    memset(&req, 0, sizeof(req))
    memset(value, 0, sizeof(value))
    req.id = sub_id
    req.level = level
    req.optname = optname
    req.optval = value
    req.optlen = &vlen
    with nogil:
        err = sockopt_get(fd, IPPROTO_TCP, MPTCP_SUB_GETSOCKOPT, &req, &length)
    if err:
        draft_raise(err, call, fd)
    return value[:vlen if vlen < <uint32_t>buflen else buflen]


def draft_sub_setsockopt(int fd, uint8_t sub_id, int level, int optname,
                         const unsigned char[:] value not None, str call):
    """Set an option of one subflow (SUB_SETSOCKOPT, 32-byte request) to ``value``.

    Only on a socket MPTCP_ENABLED said is an MPTCP connection: on any other the
    fork leaves the socket locked forever.
    """
    cdef mptcpk_sub_setsockopt req
    cdef int err
    if value.shape[0] == 0:
        raise ValueError("an option value needs at least one byte")
    memset(&req, 0, sizeof(req))
    req.id = sub_id
    req.level = level
    req.optname = optname
    req.optval = <char *>&value[0]
    req.optlen = <uint32_t>value.shape[0]
    with nogil:
        err = sockopt_set(fd, IPPROTO_TCP, MPTCP_SUB_SETSOCKOPT, &req, sizeof(req))
    if err:
        draft_raise(err, call, fd)
