# sock_diag: the system-wide view (NETLINK_SOCK_DIAG). Included by _mptcp.pyx.
#
# Messages are walked by offset in one receive buffer; an inet_diag_msg and its
# attributes are parsed into a C struct (DiagMsg) and only then turned into records,
# so no Python object is made per attribute, and none at all for TCP sockets that
# are not MPTCP subflows. Malformed input never reads out of bounds: a netlink
# message whose length does not fit ends the walk of that buffer, a short
# inet_diag_msg is skipped, and a bad attribute ends the walk of its message.

from cpython.dict cimport PyDict_GetItem, PyDict_SetItem
from cpython.ref cimport Py_DECREF
from cpython.tuple cimport PyTuple_GET_ITEM

cdef extern from *:
    """
    /* Our copies of the netlink framing (linux/netlink.h), fixed by the kernel ABI. */
    struct mptcpk_sockaddr_nl {
        uint16_t nl_family;
        uint16_t nl_pad;
        uint32_t nl_pid;
        uint32_t nl_groups;
    };
    _Static_assert(sizeof(struct mptcpk_sockaddr_nl) == 12, "sockaddr_nl is 12");
    #include <sys/socket.h>
    static ssize_t mptcpk_send_kernel(int fd, const void *buf, size_t n) {
        struct mptcpk_sockaddr_nl kernel = { AF_NETLINK, 0, 0, 0 };
        return sendto(fd, buf, n, 0, (const struct sockaddr *)&kernel, sizeof(kernel));
    }
    """
    struct mptcpk_sockaddr_nl:
        uint16_t nl_family
        uint16_t nl_pad
        uint32_t nl_pid
        uint32_t nl_groups
    long mptcpk_send_kernel(int fd, const void *buf, size_t n) nogil

cdef extern from "<sys/socket.h>" nogil:
    ctypedef long diag_ssize_t "ssize_t"
    int diag_c_socket "socket"(int domain, int type, int protocol)
    diag_ssize_t diag_c_recv "recv"(int fd, void *buf, size_t n, int flags)
    int AF_NETLINK
    int SOCK_RAW
    int SOCK_CLOEXEC
    int MSG_TRUNC

cdef extern from "<unistd.h>" nogil:
    int diag_c_close "close"(int fd)

cdef extern from "<errno.h>" nogil:
    int EPROTO
    int EMSGSIZE

cdef extern from "mptcp_sockopt.h" nogil:
    int NETLINK_SOCK_DIAG
    int SOCK_DIAG_BY_FAMILY
    int TCPDIAG_GETSOCK
    int MPTCPK_INET_DIAG_REQ_BYTECODE
    int MPTCPK_INET_DIAG_REQ_PROTOCOL
    int MPTCPK_INET_DIAG_INFO
    int MPTCPK_INET_DIAG_ULP_INFO
    int MPTCPK_INET_ULP_INFO_NAME
    int MPTCPK_INET_ULP_INFO_MPTCP
    int MPTCPK_SUBFLOW_ATTR_TOKEN_REM
    int MPTCPK_SUBFLOW_ATTR_TOKEN_LOC
    int MPTCPK_SUBFLOW_ATTR_RELWRITE_SEQ
    int MPTCPK_SUBFLOW_ATTR_MAP_SEQ
    int MPTCPK_SUBFLOW_ATTR_MAP_SFSEQ
    int MPTCPK_SUBFLOW_ATTR_SSN_OFFSET
    int MPTCPK_SUBFLOW_ATTR_MAP_DATALEN
    int MPTCPK_SUBFLOW_ATTR_FLAGS
    int MPTCPK_SUBFLOW_ATTR_ID_REM
    int MPTCPK_SUBFLOW_ATTR_ID_LOC
    unsigned int MPTCPK_SUBFLOW_FLAG_BKUP_LOC

    struct mptcpk_inet_diag_sockid:
        uint16_t sport
        uint16_t dport
        uint32_t src[4]
        uint32_t dst[4]
        uint32_t if_index
        uint32_t cookie[2]

    struct mptcpk_inet_diag_req_v2:
        uint8_t family
        uint8_t protocol
        uint8_t ext
        uint8_t pad
        uint32_t states
        mptcpk_inet_diag_sockid id

    struct mptcpk_inet_diag_req:
        uint8_t family
        uint8_t ext
        mptcpk_inet_diag_sockid id
        uint32_t states

DEF DIAG_BUFSIZE = 65536      # dump datagrams are at most 32 KiB (netlink caps them)
DEF NLMSG_HDRLEN = 16
DEF NLM_F_REQUEST = 0x01
DEF NLM_F_DUMP = 0x300
DEF NLMSG_ERROR_T = 2
DEF NLMSG_DONE_T = 3
DEF NLA_TYPE_MASK = 0x3fff
DEF DIAG_MSG_LEN = 72         # sizeof(struct inet_diag_msg), attributes follow
DEF REQ_V2_LEN = 56
DEF IPPROTO_TCP_ = 6
DEF BC_S_EQ = 11
DEF BC_D_EQ = 12

# TCP states: 1 ESTABLISHED .. 12 NEW_SYN_RECV
DEF ST_SYN_RECV = 3
DEF ST_FIN_WAIT1 = 4
DEF ST_FIN_WAIT2 = 5
DEF ST_TIME_WAIT = 6
DEF ST_CLOSE = 7
DEF ST_LAST_ACK = 9
DEF ST_LISTEN = 10
DEF ST_CLOSING = 11
DEF ST_NEW_SYN_RECV = 12
DEF ST_ALL = 0x1ffe

# present-bits of DiagMsg.present
DEF P_TOKEN_REM = 0x001
DEF P_TOKEN_LOC = 0x002
DEF P_RELWRITE_SEQ = 0x004
DEF P_MAP_SEQ = 0x008
DEF P_MAP_SFSEQ = 0x010
DEF P_SSN_OFFSET = 0x020
DEF P_MAP_DATALEN = 0x040
DEF P_FLAGS = 0x080
DEF P_ID_REM = 0x100
DEF P_ID_LOC = 0x200

DEF N_CONNECTION = 11
DEF N_DIAG_SUBFLOW = 13

CONNECTION_FIELDS = (
    "token", "local", "remote", "state", "info", "subflows", "subflow_diag",
    "family", "if_index", "uid", "inode",
)
DIAG_SUBFLOW_FIELDS = (
    "local", "remote", "token", "token_rem", "loc_id", "rem_id", "flags", "if_index",
    "relwrite_seq", "map_seq", "map_sfseq", "ssn_offset", "map_datalen",
)

# What connections() asks for, like ss's default: every state but LISTEN, CLOSE,
# TIME_WAIT and SYN_RECV (request sockets and time-wait sockets are no subflows).
DIAG_STATES_CONNECTED = ST_ALL & ~((1 << ST_LISTEN) | (1 << ST_CLOSE) | (1 << ST_TIME_WAIT)
                                   | (1 << ST_SYN_RECV) | (1 << ST_NEW_SYN_RECV))

# The states a subflow is left in once its MPTCP socket closed it (tcp_close): a
# subflow in one of them whose token matches no MPTCP socket outlives its
# connection. One in any other state with an unknown token belongs to a connection
# opened between the MPTCP and the TCP dump: not an orphan, left out.
DEF ORPHAN_STATES = ((1 << ST_FIN_WAIT1) | (1 << ST_FIN_WAIT2) | (1 << ST_CLOSING)
                     | (1 << ST_LAST_ACK))
DIAG_STATES_ORPHAN = ORPHAN_STATES

cdef type ConnectionT = tuple
cdef type DiagSubflowT = tuple
cdef object SubflowFlagsT = int
cdef tuple tcp_states = ()
cdef list flag_cache = [None] * 512


def _register_diag(connection, diag_subflow, subflow_flags, tcp_state):
    """Give the core the sock_diag record classes and the flag/state enums."""
    global ConnectionT, DiagSubflowT, SubflowFlagsT, tcp_states, flag_cache
    for cls, n in ((connection, N_CONNECTION), (diag_subflow, N_DIAG_SUBFLOW)):
        if not issubclass(cls, tuple) or len(cls._fields) != n:
            raise TypeError(f"{cls!r} is not a {n}-field tuple subclass")
        if mptcpk_basicsize(cls) != mptcpk_basicsize(tuple):
            raise TypeError(f"{cls!r} must not add instance storage (__slots__ = ())")
    ConnectionT = connection
    DiagSubflowT = diag_subflow
    SubflowFlagsT = subflow_flags
    tcp_states = tuple(tcp_state(i) if i in tcp_state._value2member_map_ else i
                       for i in range(256))
    flag_cache = [None] * 512


cdef struct DiagMsg:
    uint8_t family
    uint8_t state
    const uint8_t *sockid
    uint32_t if_index
    uint32_t uid
    uint32_t inode
    const uint8_t *info
    size_t info_len
    bint has_info
    bint mptcp_ulp
    uint32_t present
    uint32_t token_rem
    uint32_t token_loc
    uint32_t relwrite_seq
    uint32_t map_sfseq
    uint32_t ssn_offset
    uint32_t flags
    uint64_t map_seq
    uint16_t map_datalen
    uint8_t id_rem
    uint8_t id_loc


cdef inline int attr_u32(const uint8_t *p, size_t n, uint32_t *out) noexcept nogil:
    if n < 4:
        return 0
    memcpy(out, p, 4)
    return 1


cdef void parse_subflow_attrs(const uint8_t *p, size_t n, DiagMsg *m) noexcept nogil:
    cdef size_t off = 0
    cdef uint16_t alen, atype
    cdef const uint8_t *pl
    cdef size_t pn
    while off + 4 <= n:
        memcpy(&alen, p + off, 2)
        memcpy(&atype, p + off + 2, 2)
        if alen < 4 or alen > n - off:
            return
        atype &= NLA_TYPE_MASK
        pl = p + off + 4
        pn = alen - 4
        if atype == MPTCPK_SUBFLOW_ATTR_TOKEN_REM:
            if attr_u32(pl, pn, &m.token_rem):
                m.present |= P_TOKEN_REM
        elif atype == MPTCPK_SUBFLOW_ATTR_TOKEN_LOC:
            if attr_u32(pl, pn, &m.token_loc):
                m.present |= P_TOKEN_LOC
        elif atype == MPTCPK_SUBFLOW_ATTR_RELWRITE_SEQ:
            if attr_u32(pl, pn, &m.relwrite_seq):
                m.present |= P_RELWRITE_SEQ
        elif atype == MPTCPK_SUBFLOW_ATTR_MAP_SEQ:
            if pn >= 8:
                memcpy(&m.map_seq, pl, 8)
                m.present |= P_MAP_SEQ
        elif atype == MPTCPK_SUBFLOW_ATTR_MAP_SFSEQ:
            if attr_u32(pl, pn, &m.map_sfseq):
                m.present |= P_MAP_SFSEQ
        elif atype == MPTCPK_SUBFLOW_ATTR_SSN_OFFSET:
            if attr_u32(pl, pn, &m.ssn_offset):
                m.present |= P_SSN_OFFSET
        elif atype == MPTCPK_SUBFLOW_ATTR_MAP_DATALEN:
            if pn >= 2:
                memcpy(&m.map_datalen, pl, 2)
                m.present |= P_MAP_DATALEN
        elif atype == MPTCPK_SUBFLOW_ATTR_FLAGS:
            if attr_u32(pl, pn, &m.flags):
                m.present |= P_FLAGS
        elif atype == MPTCPK_SUBFLOW_ATTR_ID_REM:
            if pn >= 1:
                m.id_rem = pl[0]
                m.present |= P_ID_REM
        elif atype == MPTCPK_SUBFLOW_ATTR_ID_LOC:
            if pn >= 1:
                m.id_loc = pl[0]
                m.present |= P_ID_LOC
        off += (alen + 3) & ~3


cdef void parse_ulp(const uint8_t *p, size_t n, DiagMsg *m) noexcept nogil:
    cdef size_t off = 0
    cdef uint16_t alen, atype
    cdef const uint8_t *pl
    cdef size_t pn
    while off + 4 <= n:
        memcpy(&alen, p + off, 2)
        memcpy(&atype, p + off + 2, 2)
        if alen < 4 or alen > n - off:
            return
        atype &= NLA_TYPE_MASK
        pl = p + off + 4
        pn = alen - 4
        if atype == MPTCPK_INET_ULP_INFO_NAME:
            m.mptcp_ulp = (pn >= 5 and memcmp(pl, b"mptcp", 5) == 0
                           and (pn == 5 or pl[5] == 0))
        elif atype == MPTCPK_INET_ULP_INFO_MPTCP:
            parse_subflow_attrs(pl, pn, m)
        off += (alen + 3) & ~3


cdef int parse_diag_msg(const uint8_t *p, size_t n, DiagMsg *m) noexcept nogil:
    """Fill m from one inet_diag_msg and its attributes; -1 if it is too short."""
    cdef size_t off = DIAG_MSG_LEN
    cdef uint16_t alen, atype
    memset(m, 0, sizeof(DiagMsg))
    if n < DIAG_MSG_LEN:
        return -1
    m.family = p[0]
    m.state = p[1]
    m.sockid = p + 4
    memcpy(&m.if_index, p + 4 + 36, 4)
    memcpy(&m.uid, p + 64, 4)
    memcpy(&m.inode, p + 68, 4)
    while off + 4 <= n:
        memcpy(&alen, p + off, 2)
        memcpy(&atype, p + off + 2, 2)
        if alen < 4 or alen > n - off:
            break
        atype &= NLA_TYPE_MASK
        if atype == MPTCPK_INET_DIAG_INFO:
            m.info = p + off + 4
            m.info_len = alen - 4
            m.has_info = True
        elif atype == MPTCPK_INET_DIAG_ULP_INFO:
            parse_ulp(p + off + 4, alen - 4, m)
        off += (alen + 3) & ~3
    return 0


# --------------------------------------------------------------------------------
# DiagMsg -> records
# --------------------------------------------------------------------------------
cdef object diag_addr(const DiagMsg *m, bint remote):
    cdef uint8_t sa[28]
    cdef uint16_t fam = m.family
    cdef const uint8_t *port = m.sockid + (2 if remote else 0)
    cdef const uint8_t *addr = m.sockid + (20 if remote else 4)
    memset(sa, 0, sizeof(sa))
    memcpy(sa, &fam, 2)
    memcpy(sa + 2, port, 2)
    if m.family == AF_INET:
        memcpy(sa + 4, addr, 4)
        return decode_sockaddr(sa, 16)
    if m.family == AF_INET6:
        memcpy(sa + 8, addr, 16)
        return decode_sockaddr(sa, 28)
    return None


cdef inline object state_obj(uint8_t state):
    if <size_t>state < <size_t>len(tcp_states):
        return tcp_states[state]
    return state


cdef object flags_obj(uint32_t flags):
    cdef object v
    if flags < 512:
        v = flag_cache[flags]
        if v is None:
            v = SubflowFlagsT(flags)
            flag_cache[flags] = v
        return v
    return SubflowFlagsT(flags)


cdef inline object opt_u32(const DiagMsg *m, uint32_t bit, uint32_t value):
    return value if m.present & bit else None


cdef object connection_record(const DiagMsg *m):
    info = info_record(m.info, m.info_len) if m.has_info else None
    rec = new_record(ConnectionT, N_CONNECTION)
    set_item(rec, 0, None if info is None else info[7])
    set_item(rec, 1, diag_addr(m, False))
    set_item(rec, 2, diag_addr(m, True))
    set_item(rec, 3, state_obj(m.state))
    set_item(rec, 4, info)
    set_item(rec, 5, [])
    set_item(rec, 6, [])
    set_item(rec, 7, m.family)
    set_item(rec, 8, m.if_index)
    set_item(rec, 9, m.uid)
    set_item(rec, 10, m.inode)
    return rec


cdef object orphan_record(const DiagMsg *m):
    """The Connection entry of subflows whose MPTCP socket is gone: their token,
    state CLOSE, no addresses, no mptcp_info, no inode."""
    rec = new_record(ConnectionT, N_CONNECTION)
    set_item(rec, 0, m.token_loc)
    set_item(rec, 1, None)
    set_item(rec, 2, None)
    set_item(rec, 3, state_obj(ST_CLOSE))
    set_item(rec, 4, None)
    set_item(rec, 5, [])
    set_item(rec, 6, [])
    set_item(rec, 7, m.family)
    set_item(rec, 8, 0)
    set_item(rec, 9, m.uid)
    set_item(rec, 10, 0)
    return rec


cdef inline void replace_item(object rec, Py_ssize_t i, object value):
    # Only for a record we just made and nobody else has seen.
    cdef PyObject *old = PyTuple_GET_ITEM(rec, i)
    Py_INCREF(value)
    PyTuple_SET_ITEM(rec, i, value)
    Py_XDECREF(old)


cdef tuple subflow_records(const DiagMsg *m):
    """(SubflowInfo, DiagSubflow) of one MPTCP subflow message."""
    local = diag_addr(m, False)
    remote = diag_addr(m, True)
    if m.has_info:
        sub = subflow_info_record(None, local, remote, m.info, m.info_len)
    else:
        sub = subflow_info_record(None, local, remote, <const uint8_t *>"", 0)
    if not m.has_info or m.info_len < 1:
        replace_item(sub, 3, m.state)
    if m.present & P_FLAGS:
        replace_item(sub, 4, bool(m.flags & MPTCPK_SUBFLOW_FLAG_BKUP_LOC))
    d = new_value_record(DiagSubflowT, N_DIAG_SUBFLOW)
    set_item(d, 0, local)
    set_item(d, 1, remote)
    set_item(d, 2, opt_u32(m, P_TOKEN_LOC, m.token_loc))
    set_item(d, 3, opt_u32(m, P_TOKEN_REM, m.token_rem))
    set_item(d, 4, opt_u32(m, P_ID_LOC, m.id_loc))
    set_item(d, 5, opt_u32(m, P_ID_REM, m.id_rem))
    set_item(d, 6, flags_obj(m.flags) if m.present & P_FLAGS else None)
    set_item(d, 7, m.if_index)
    set_item(d, 8, opt_u32(m, P_RELWRITE_SEQ, m.relwrite_seq))
    set_item(d, 9, m.map_seq if m.present & P_MAP_SEQ else None)
    set_item(d, 10, opt_u32(m, P_MAP_SFSEQ, m.map_sfseq))
    set_item(d, 11, opt_u32(m, P_SSN_OFFSET, m.ssn_offset))
    set_item(d, 12, m.map_datalen if m.present & P_MAP_DATALEN else None)
    return (sub, d)


# --------------------------------------------------------------------------------
# Collectors: what to do with each inet_diag_msg of a dump
# --------------------------------------------------------------------------------
DEF KIND_MPTCP = 0
DEF KIND_TCP = 1

DEF MODE_CONNECTIONS = 0   # group subflows under connections
DEF MODE_MESSAGES = 1      # every message as a record (bytes API, tests)
DEF MODE_LOOKUP = 2        # find one subflow by exact 4-tuple


cdef class DiagCollector:
    cdef int mode
    cdef bint listening
    cdef bint orphans
    cdef list out
    cdef dict by_token
    cdef dict orphan_by_token
    # MODE_LOOKUP
    cdef uint8_t family
    cdef uint16_t sport, dport   # network order
    cdef uint8_t src[16]
    cdef uint8_t dst[16]
    cdef object found

    def __cinit__(self):
        self.out = []
        self.by_token = {}
        self.orphan_by_token = {}
        self.found = None

    cdef int feed(self, int kind, const uint8_t *p, size_t n) except -1:
        cdef DiagMsg m
        if parse_diag_msg(p, n, &m) < 0:
            return 0
        if self.mode == MODE_LOOKUP:
            return self.feed_lookup(&m)
        if kind == KIND_MPTCP:
            rec = connection_record(&m)
            self.out.append(rec)
            if m.state != ST_LISTEN and rec[0] is not None:
                PyDict_SetItem(self.by_token, rec[0], rec)
            return 0
        if not m.mptcp_ulp:
            return 0
        if self.mode == MODE_MESSAGES:
            self.out.append(subflow_records(&m))
            return 0
        if not (m.present & P_TOKEN_LOC) or m.state == ST_LISTEN:
            return 0
        cdef PyObject *conn = PyDict_GetItem(self.by_token, m.token_loc)
        if conn == NULL:
            if not self.orphans or m.state > ST_NEW_SYN_RECV or not ((1 << m.state) & ORPHAN_STATES):
                return 0
            conn = PyDict_GetItem(self.orphan_by_token, m.token_loc)
            if conn == NULL:
                rec = orphan_record(&m)
                self.out.append(rec)
                PyDict_SetItem(self.orphan_by_token, rec[0], rec)
                conn = <PyObject *>rec
        pair = subflow_records(&m)
        conn_rec = <object>conn
        (<list>conn_rec[5]).append(pair[0])
        (<list>conn_rec[6]).append(pair[1])
        return 0

    cdef int feed_lookup(self, DiagMsg *m) except -1:
        cdef size_t alen = 4 if self.family == AF_INET else 16
        if self.found is not None or m.family != self.family or not m.mptcp_ulp:
            return 0
        if (m.present & (P_FLAGS | P_ID_LOC | P_ID_REM | P_TOKEN_LOC)) != (
                P_FLAGS | P_ID_LOC | P_ID_REM | P_TOKEN_LOC):
            return 0
        if memcmp(m.sockid, &self.sport, 2) != 0 or memcmp(m.sockid + 2, &self.dport, 2) != 0:
            return 0
        if memcmp(m.sockid + 4, self.src, alen) != 0 or memcmp(m.sockid + 20, self.dst, alen) != 0:
            return 0
        self.found = (m.flags, m.id_loc, m.id_rem, m.token_loc)
        return 0


cdef int walk_messages(const uint8_t *buf, size_t n, uint32_t seq, bint check_seq,
                       DiagCollector c, int kind, str call) except -1:
    """Feed every socket message in buf to c (SOCK_DIAG_BY_FAMILY, or TCPDIAG_GETSOCK
    for the compat request); 1 once NLMSG_DONE is seen."""
    cdef size_t off = 0
    cdef uint32_t mlen, mseq
    cdef uint16_t mtype
    cdef int32_t code
    while off + NLMSG_HDRLEN <= n:
        memcpy(&mlen, buf + off, 4)
        memcpy(&mtype, buf + off + 4, 2)
        memcpy(&mseq, buf + off + 8, 4)
        if mlen < NLMSG_HDRLEN or mlen > n - off:
            return 0
        if not check_seq or mseq == seq:
            if mtype == NLMSG_DONE_T:
                if mlen >= NLMSG_HDRLEN + 4:
                    memcpy(&code, buf + off + NLMSG_HDRLEN, 4)
                    if code < 0:
                        raise_errno(EPROTO if code == -2147483648 else -code, call, -1)
                return 1
            if mtype == NLMSG_ERROR_T:
                code = -EPROTO
                if mlen >= NLMSG_HDRLEN + 4:
                    memcpy(&code, buf + off + NLMSG_HDRLEN, 4)
                if code < 0:
                    raise_errno(EPROTO if code == -2147483648 else -code, call, -1)
            elif mtype == SOCK_DIAG_BY_FAMILY or mtype == TCPDIAG_GETSOCK:
                c.feed(kind, buf + off + NLMSG_HDRLEN, mlen - NLMSG_HDRLEN)
        off += (mlen + 3) & ~3
    return 0


# --------------------------------------------------------------------------------
# Syscalls
# --------------------------------------------------------------------------------
cdef size_t build_request(uint8_t *out, uint32_t seq, uint8_t family, uint8_t protocol,
                          uint32_t mptcp_proto, uint32_t states,
                          const uint8_t *bc, size_t bclen) noexcept nogil:
    """nlmsghdr + inet_diag_req_v2 (+ INET_DIAG_REQ_PROTOCOL) (+ bytecode); its length."""
    cdef mptcpk_inet_diag_req_v2 req
    cdef size_t off = NLMSG_HDRLEN + REQ_V2_LEN
    cdef uint16_t alen, atype, mflags = NLM_F_REQUEST | NLM_F_DUMP
    cdef uint16_t mtype = SOCK_DIAG_BY_FAMILY
    cdef uint32_t len32
    memset(&req, 0, sizeof(req))
    req.family = family
    req.protocol = protocol
    req.ext = 1 << (MPTCPK_INET_DIAG_INFO - 1)
    req.states = states
    req.id.cookie[0] = 0xffffffffu
    req.id.cookie[1] = 0xffffffffu
    memcpy(out + NLMSG_HDRLEN, &req, REQ_V2_LEN)
    if mptcp_proto:
        alen = 8
        atype = MPTCPK_INET_DIAG_REQ_PROTOCOL
        memcpy(out + off, &alen, 2)
        memcpy(out + off + 2, &atype, 2)
        memcpy(out + off + 4, &mptcp_proto, 4)
        off += 8
    if bclen:
        alen = <uint16_t>(4 + bclen)
        atype = MPTCPK_INET_DIAG_REQ_BYTECODE
        memcpy(out + off, &alen, 2)
        memcpy(out + off + 2, &atype, 2)
        memcpy(out + off + 4, bc, bclen)
        off += (4 + bclen + 3) & ~3
    len32 = <uint32_t>off
    memset(out, 0, NLMSG_HDRLEN)
    memcpy(out, &len32, 4)
    memcpy(out + 4, &mtype, 2)
    memcpy(out + 6, &mflags, 2)
    memcpy(out + 8, &seq, 4)
    return off


cdef size_t build_tcp_request(uint8_t *out, uint32_t seq, uint32_t states) noexcept nogil:
    """nlmsghdr + the compat inet_diag_req: every TCP socket of both families in one
    walk of the hash table (the table is shared by all namespaces and sized by the
    host's memory, 262144 buckets at 24 GiB: each walk costs about 1.5 ms whatever
    the namespace holds, the recorder's largest cost per sample)."""
    cdef mptcpk_inet_diag_req req
    cdef size_t off = NLMSG_HDRLEN + sizeof(mptcpk_inet_diag_req)
    cdef uint16_t mflags = NLM_F_REQUEST | NLM_F_DUMP
    cdef uint16_t mtype = TCPDIAG_GETSOCK
    cdef uint32_t len32 = <uint32_t>off
    memset(&req, 0, sizeof(req))
    req.ext = 1 << (MPTCPK_INET_DIAG_INFO - 1)
    req.states = states
    req.id.cookie[0] = 0xffffffffu
    req.id.cookie[1] = 0xffffffffu
    memcpy(out + NLMSG_HDRLEN, &req, sizeof(req))
    memset(out, 0, NLMSG_HDRLEN)
    memcpy(out, &len32, 4)
    memcpy(out + 4, &mtype, 2)
    memcpy(out + 6, &mflags, 2)
    memcpy(out + 8, &seq, 4)
    return off


cdef int diag_open(str call) except -1:
    cdef int fd, err = 0
    with nogil:
        fd = diag_c_socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG)
        if fd < 0:
            err = errno
    if fd < 0:
        raise_errno(err, call, -1)
    return fd


cdef int diag_send(int fd, const uint8_t *req, size_t n, str call) except -1:
    cdef long rc
    cdef int err = 0
    with nogil:
        while True:
            rc = mptcpk_send_kernel(fd, req, n)
            if rc >= 0:
                break
            err = errno
            if err != EINTR:
                break
    if rc < 0:
        raise_errno(err, call, -1)
    return 0


cdef class DiagBuffer:
    """The receive buffer of one call; grown if the kernel ever sends more."""
    cdef uint8_t *buf
    cdef size_t cap

    def __cinit__(self, size_t cap=DIAG_BUFSIZE):
        self.buf = <uint8_t *>PyMem_Malloc(cap)
        if self.buf == NULL:
            raise MemoryError()
        self.cap = cap

    def __dealloc__(self):
        PyMem_Free(self.buf)

    cdef int grow(self, size_t cap) except -1:
        cdef uint8_t *mem = <uint8_t *>PyMem_Malloc(cap)
        if mem == NULL:
            raise MemoryError()
        PyMem_Free(self.buf)
        self.buf = mem
        self.cap = cap
        return 0


cdef int diag_dump(int fd, uint32_t seq, const uint8_t *req, size_t reqlen, DiagBuffer b,
                   DiagCollector c, int kind, str call) except -1:
    """One dump request and its replies; 1 if a datagram was truncated (start over)."""
    cdef diag_ssize_t n
    cdef int err = 0
    diag_send(fd, req, reqlen, call)
    while True:
        with nogil:
            while True:
                n = diag_c_recv(fd, b.buf, b.cap, MSG_TRUNC)
                if n >= 0:
                    break
                err = errno
                if err != EINTR:
                    break
        if n < 0:
            raise_errno(err, call, -1)
        if n == 0:
            raise_errno(EPROTO, call, -1)
        if <size_t>n > b.cap:
            # The rest of that datagram is lost: the caller repeats the whole call
            # with a buffer that fits.
            b.grow(((<size_t>n + 4095) // 4096) * 4096)
            return 1
        if walk_messages(b.buf, <size_t>n, seq, True, c, kind, call):
            return 0


cdef object run_connections(bint listening, bint orphans, str call):
    cdef uint8_t req[128]
    cdef size_t reqlen
    cdef uint32_t states = DIAG_STATES_CONNECTED
    cdef uint32_t seq = 0
    cdef int fd, attempt, fam_i, truncated
    cdef int families[2]
    cdef DiagBuffer b = DiagBuffer()
    cdef DiagCollector c
    families[0] = AF_INET
    families[1] = AF_INET6
    if listening:
        states |= 1 << ST_LISTEN
    for attempt in range(4):
        c = DiagCollector()
        c.mode = MODE_CONNECTIONS
        c.listening = listening
        c.orphans = orphans
        truncated = 0
        fd = diag_open(call)
        try:
            for fam_i in range(2):
                seq += 1
                reqlen = build_request(req, seq, families[fam_i], 0, IPPROTO_MPTCP, states, NULL, 0)
                truncated = diag_dump(fd, seq, req, reqlen, b, c, KIND_MPTCP, call)
                if truncated:
                    break
            # Without a connection, only orphans can be among the TCP sockets.
            if not truncated and (c.by_token or orphans):
                seq += 1
                reqlen = build_tcp_request(req, seq, DIAG_STATES_CONNECTED)
                truncated = diag_dump(fd, seq, req, reqlen, b, c, KIND_TCP, call)
        finally:
            diag_c_close(fd)
        if not truncated:
            return c.out
    raise_errno(EMSGSIZE, call, -1)


def diag_connections(bint listening=False, bint orphans=False):
    """Every MPTCP connection of the calling thread's netns, subflows grouped by token
    (with orphans, also entries for closing subflows whose MPTCP socket is gone)."""
    return run_connections(listening, orphans, "connections")


def diag_subflow(int family, const unsigned char[:] src not None, int sport,
                 const unsigned char[:] dst not None, int dport):
    """(flags, loc_id, rem_id, token_loc) of the MPTCP subflow with that exact 4-tuple, or None.

    src/dst are packed addresses (4 or 16 bytes), ports in host order. One TCP dump
    filtered by the kernel on both ports (bytecode), so device-bound subflows are found.
    """
    cdef uint8_t req[128]
    cdef uint8_t bc[16]
    cdef size_t reqlen, alen = 4 if family == AF_INET else 16
    cdef uint16_t hport
    cdef int fd, attempt, truncated
    cdef DiagBuffer b
    cdef DiagCollector c
    if family != AF_INET and family != AF_INET6:
        raise ValueError("family is AF_INET or AF_INET6")
    if <size_t>src.shape[0] != alen or <size_t>dst.shape[0] != alen:
        raise ValueError(f"addresses of this family are {alen} bytes")
    if not (0 <= sport <= 0xffff and 0 <= dport <= 0xffff):
        raise ValueError("ports are 0-65535")
    # S_EQ sport AND D_EQ dport: {code, yes, no} then {0, 0, port} per test. A failed
    # test jumps past the end (len < 0) and rejects the socket.
    memset(bc, 0, sizeof(bc))
    bc[0] = BC_S_EQ
    bc[1] = 8
    hport = 20
    memcpy(bc + 2, &hport, 2)
    hport = <uint16_t>sport
    memcpy(bc + 6, &hport, 2)
    bc[8] = BC_D_EQ
    bc[9] = 8
    hport = 12
    memcpy(bc + 10, &hport, 2)
    hport = <uint16_t>dport
    memcpy(bc + 14, &hport, 2)
    b = DiagBuffer(16384)
    for attempt in range(4):
        c = DiagCollector()
        c.mode = MODE_LOOKUP
        c.family = <uint8_t>family
        c.sport = htons(<uint16_t>sport)
        c.dport = htons(<uint16_t>dport)
        memset(c.src, 0, 16)
        memset(c.dst, 0, 16)
        memcpy(c.src, &src[0], alen)
        memcpy(c.dst, &dst[0], alen)
        reqlen = build_request(req, 1, <uint8_t>family, IPPROTO_TCP_, 0,
                               ST_ALL & ~((1 << ST_TIME_WAIT) | (1 << ST_NEW_SYN_RECV)),
                               bc, sizeof(bc))
        fd = diag_open("subflow_diag")
        try:
            truncated = diag_dump(fd, 1, req, reqlen, b, c, KIND_TCP, "subflow_diag")
        finally:
            diag_c_close(fd)
        if not truncated:
            return c.found
    raise_errno(EMSGSIZE, "subflow_diag", -1)


# --------------------------------------------------------------------------------
# The bytes API: the same walk over caller-provided bytes (tests, fuzzing)
# --------------------------------------------------------------------------------
def decode_diag_messages(const unsigned char[:] data not None, bint tcp):
    """Records of every SOCK_DIAG_BY_FAMILY message in data (netlink messages back to back).

    MPTCP dumps (tcp=False) give Connection records with empty subflow lists; TCP
    dumps give (SubflowInfo, DiagSubflow) pairs for MPTCP subflows only.
    NLMSG_ERROR raises through the hook; a truncated message ends the walk.
    """
    cdef DiagCollector c = DiagCollector()
    c.mode = MODE_MESSAGES
    walk_messages(_ptr(data), data.shape[0], 0, False, c, KIND_TCP if tcp else KIND_MPTCP,
                  "decode_diag")
    return c.out


def decode_diag_connections(const unsigned char[:] mptcp_data not None,
                            const unsigned char[:] tcp_data not None, bint orphans=False):
    """Connections from MPTCP dump bytes with subflows from TCP dump bytes (grouped)."""
    cdef DiagCollector c = DiagCollector()
    c.mode = MODE_CONNECTIONS
    c.orphans = orphans
    walk_messages(_ptr(mptcp_data), mptcp_data.shape[0], 0, False, c, KIND_MPTCP, "decode_diag")
    walk_messages(_ptr(tcp_data), tcp_data.shape[0], 0, False, c, KIND_TCP, "decode_diag")
    return c.out


def diag_request(int family, bint mptcp, uint32_t states, uint32_t seq=1,
                 const unsigned char[:] bytecode=None):
    """The request bytes the dumps send (tests compare them with a reference)."""
    cdef uint8_t req[256]
    cdef size_t bclen = 0 if bytecode is None else bytecode.shape[0]
    cdef const uint8_t *bcp = NULL
    if bclen > 128:
        raise ValueError("bytecode longer than 128 bytes")
    if bclen:
        bcp = &bytecode[0]
    n = build_request(req, seq, <uint8_t>family, 0 if mptcp else IPPROTO_TCP_,
                      IPPROTO_MPTCP if mptcp else 0, states, bcp, bclen)
    return bytes(req[:n])
