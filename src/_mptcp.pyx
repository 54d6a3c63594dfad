# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""mptcp._mptcp: the compiled core.

Raw kernel calls into reusable or stack buffers, and decoders that turn kernel bytes
into the package's records. No policy lives here: the Python layer registers the
record classes (``_register_records``) and the errno-to-exception hook
(``_register_hook``) at import, and every failure goes through that hook, so
callers only ever see ``mptcp`` exceptions.
"""

from cpython.object cimport PyObject, PyTypeObject
from cpython.ref cimport Py_INCREF, Py_XDECREF
from cpython.tuple cimport PyTuple_SET_ITEM
from cpython.list cimport PyList_New, PyList_Append, PyList_SET_ITEM
from cpython.mem cimport PyMem_Malloc, PyMem_Free
from cpython.unicode cimport PyUnicode_DecodeASCII

cdef extern from "Python.h":
    void PyObject_GC_UnTrack(void *op)

include "_abi.pxi"

cdef extern from *:
    """
    #define MPTCPK_TI_END(f) (offsetof(struct mptcpk_tcp_info, f) + sizeof(((struct mptcpk_tcp_info *)0)->f))
    #define MPTCPK_MI_END(f) (offsetof(struct mptcpk_info, f) + sizeof(((struct mptcpk_info *)0)->f))
    /* A tuple-subclass instance with n empty items, allocated the way CPython's own
     * tuple_subtype_new does; the caller fills every item. */
    static PyObject *mptcpk_alloc_record(PyObject *cls, Py_ssize_t n) {
        PyTypeObject *tp = (PyTypeObject *)cls;
        return tp->tp_alloc(tp, n);
    }
    static Py_ssize_t mptcpk_basicsize(PyObject *cls) {
        return ((PyTypeObject *)cls)->tp_basicsize;
    }
    /* 1 when the calling thread holds the only Python thread state of the only
     * interpreter: then no thread can be waiting for the GIL. Called with the GIL
     * held. It reads only our own thread state's list links (never another
     * thread's state, which may be freed concurrently); a thread state created
     * meanwhile by PyGILState_Ensure in a C thread merely waits for the syscall. */
    static int mptcpk_only_python_thread(void) {
        PyThreadState *ts = PyThreadState_Get();
        PyInterpreterState *interp = PyThreadState_GetInterpreter(ts);
        return ts->prev == NULL && ts->next == NULL
            && PyInterpreterState_Head() == interp
            && PyInterpreterState_Next(interp) == NULL;
    }
    """
    object mptcpk_alloc_record(object cls, Py_ssize_t n)
    Py_ssize_t mptcpk_basicsize(object cls)
    bint only_python_thread "mptcpk_only_python_thread"() noexcept
    # tcp_info grew over the years: a field exists when its end <= what the kernel wrote.
    const size_t TI_END_TOTAL_RETRANS "MPTCPK_TI_END(total_retrans)"
    const size_t TI_END_PACING_RATE "MPTCPK_TI_END(pacing_rate)"
    const size_t TI_END_BYTES_RECEIVED "MPTCPK_TI_END(bytes_received)"
    const size_t TI_END_SEGS_IN "MPTCPK_TI_END(segs_in)"
    const size_t TI_END_MIN_RTT "MPTCPK_TI_END(min_rtt)"
    const size_t TI_END_DELIVERY_RATE "MPTCPK_TI_END(delivery_rate)"
    const size_t TI_END_BUSY_TIME "MPTCPK_TI_END(busy_time)"
    const size_t TI_END_DELIVERED "MPTCPK_TI_END(delivered)"
    const size_t TI_END_BYTES_RETRANS "MPTCPK_TI_END(bytes_retrans)"
    const size_t TI_END_SND_WND "MPTCPK_TI_END(snd_wnd)"
    const size_t TI_END_RCV_WND "MPTCPK_TI_END(rcv_wnd)"
    const size_t MI_END_CSUM "MPTCPK_MI_END(csum_enabled)"
    const size_t MI_END_BYTES_ACKED "MPTCPK_MI_END(bytes_acked)"
    const size_t MI_END_SUBFLOWS_TOTAL "MPTCPK_MI_END(subflows_total)"
    const size_t MI_END_ENDP "MPTCPK_MI_END(endp_fullmesh_max)"
    const size_t MI_END_LAST_ACK_RECV "MPTCPK_MI_END(last_ack_recv)"
    const size_t MI_END_TOKEN "MPTCPK_MI_END(token)"
    const size_t MI_END_RCV_NXT "MPTCPK_MI_END(rcv_nxt)"

DEF TCP_CLOSE = 7
DEF TCP_LISTEN = 10
DEF STACK_SUBFLOWS = 8          # subflows() handles this many without a heap buffer
DEF FULL_INFO_HDR = 40

# Field order of the records; the Python layer checks its NamedTuples against these.
MPTCP_INFO_FIELDS = (
    "subflows", "add_addr_signal", "add_addr_accepted", "subflows_max",
    "add_addr_signal_max", "add_addr_accepted_max", "flags", "token",
    "write_seq", "snd_una", "rcv_nxt", "local_addr_used", "local_addr_max",
    "csum_enabled", "retransmits", "bytes_retrans", "bytes_sent", "bytes_received",
    "bytes_acked", "subflows_total", "endp_laminar_max", "endp_fullmesh_max",
    "last_data_sent", "last_data_recv", "last_ack_recv", "fallback",
)
SUBFLOW_INFO_FIELDS = (
    "id", "local", "remote", "state", "backup", "ca_state", "rto_us", "snd_mss",
    "rcv_mss", "unacked", "lost", "retrans", "total_retrans", "rtt_us", "rttvar_us",
    "min_rtt_us", "snd_cwnd", "snd_ssthresh", "pmtu", "pacing_rate", "delivery_rate",
    "bytes_acked", "bytes_received", "bytes_sent", "bytes_retrans", "segs_out",
    "segs_in", "notsent_bytes", "snd_wnd", "rcv_wnd", "last_data_sent_ms",
    "last_data_recv_ms", "busy_time_us", "delivered",
)
SUBFLOW_FIELDS = ("id", "local", "remote", "prio", "backup", "status")

DEF N_INFO = 26
DEF N_SUBFLOW_INFO = 34
DEF N_SUBFLOW = 6

SIZEOF_TCP_INFO = sizeof(mptcpk_tcp_info)
SIZEOF_SUBFLOW_INFO = sizeof(mptcpk_subflow_info)
SIZEOF_MPTCP_INFO = sizeof(mptcpk_info)
SIZEOF_SUBFLOW_ADDRS = sizeof(mptcpk_subflow_addrs)
SIZEOF_FULL_INFO = sizeof(mptcpk_full_info)

# Kernel constants the Python layer needs, from include/mptcp_sockopt.h (their one
# definition), as attributes of the class `abi` (a class body cannot see C names).
abi = type("abi", (), dict(
    __doc__="Kernel constants from include/mptcp_sockopt.h.",
    __module__="mptcp._mptcp",
    IPPROTO_MPTCP=IPPROTO_MPTCP,
    SOL_MPTCP=SOL_MPTCP,
    MPTCP_INFO=MPTCP_INFO,
    MPTCP_FULL_INFO=MPTCP_FULL_INFO,
    TCP_IS_MPTCP=TCP_IS_MPTCP,
    MPTCP_GET_SUB_IDS=MPTCP_GET_SUB_IDS,
    MPTCP_ENABLED=MPTCP_ENABLED,
    PM_FAMILY_NAME=MPTCP_PM_NAME.decode(),
    PM_EVENTS_GROUP=MPTCP_PM_EV_GRP_NAME.decode(),
    PM_ADDR_FLAG_SIGNAL=MPTCP_PM_ADDR_FLAG_SIGNAL,
    PM_ADDR_FLAG_SUBFLOW=MPTCP_PM_ADDR_FLAG_SUBFLOW,
    PM_ADDR_FLAG_BACKUP=MPTCP_PM_ADDR_FLAG_BACKUP,
    PM_ADDR_FLAG_FULLMESH=MPTCP_PM_ADDR_FLAG_FULLMESH,
    PM_ADDR_FLAG_IMPLICIT=MPTCP_PM_ADDR_FLAG_IMPLICIT,
    PM_ADDR_FLAG_LAMINAR=MPTCP_PM_ADDR_FLAG_LAMINAR,
))

# --------------------------------------------------------------------------------
# Registration by the Python layer
# --------------------------------------------------------------------------------
cdef type MPTCPInfoT = tuple
cdef type SubflowInfoT = tuple
cdef type SubflowT = tuple
cdef object SubflowStatusT = int
cdef object error_hook = None


def _register_records(mptcp_info, subflow_info, subflow, subflow_status):
    """Give the core the record classes it fills (mptcp._records does, at import)."""
    global MPTCPInfoT, SubflowInfoT, SubflowT, SubflowStatusT
    for cls, n in ((mptcp_info, N_INFO), (subflow_info, N_SUBFLOW_INFO), (subflow, N_SUBFLOW)):
        if not issubclass(cls, tuple) or len(cls._fields) != n:
            raise TypeError(f"{cls!r} is not a {n}-field tuple subclass")
        if mptcpk_basicsize(cls) != mptcpk_basicsize(tuple):
            raise TypeError(f"{cls!r} must not add instance storage (__slots__ = ())")
    MPTCPInfoT = mptcp_info
    SubflowInfoT = subflow_info
    SubflowT = subflow
    SubflowStatusT = subflow_status


def _register_hook(hook):
    """Give the core the errno-to-exception hook (mptcp._errors does, at import)."""
    global error_hook
    error_hook = hook


cdef int raise_errno(int err, str call, int fd) except -1:
    if error_hook is None:
        raise OSError(err, call)
    raise error_hook(err, call, fd)


cdef inline object new_record(type cls, Py_ssize_t n):
    # A tuple subclass instance allocated like tuple_subtype_new does; items are
    # stolen references set by set_item. The registered classes add no storage.
    return mptcpk_alloc_record(cls, n)


cdef inline object new_value_record(type cls, Py_ssize_t n):
    # A record that will hold values only (numbers, strings, enum members, address
    # tuples) is in no reference cycle, so the collector need not track it: CPython
    # untracks such tuples itself, but only at their first collection, and thousands
    # of them made connections() trigger repeated full collections.
    rec = mptcpk_alloc_record(cls, n)
    PyObject_GC_UnTrack(<void *>rec)
    return rec


cdef inline void set_item(object rec, Py_ssize_t i, object value) noexcept:
    Py_INCREF(value)
    PyTuple_SET_ITEM(rec, i, value)


# --------------------------------------------------------------------------------
# Addresses: a small cache so polling the same subflows allocates no new tuples
# --------------------------------------------------------------------------------
# Two ways per set: the four addresses of a two-subflow connection never evict one
# another (a direct-mapped table made about one run in ten 25 % slower at random).
DEF ADDR_SETS = 64
DEF ADDR_CACHE = 2 * ADDR_SETS

cdef struct AddrKey:
    uint16_t family
    uint16_t port        # network order
    uint8_t addr[16]

cdef struct AddrSlot:
    AddrKey key
    PyObject *value

cdef AddrSlot addr_cache[ADDR_CACHE]
memset(addr_cache, 0, sizeof(addr_cache))


cdef object decode_sockaddr(const uint8_t *sa, size_t avail):
    """(host, port) of a sockaddr_in/in6 at sa, or None for another family."""
    cdef AddrKey key
    cdef uint16_t family
    cdef char text[64]
    cdef unsigned int h, i
    cdef AddrSlot swap
    cdef object value
    if avail < 2:
        return None
    memset(&key, 0, sizeof(key))
    memcpy(&family, sa, 2)
    if family == AF_INET and avail >= 8:
        memcpy(&key.port, sa + 2, 2)
        memcpy(key.addr, sa + 4, 4)
    elif family == AF_INET6 and avail >= 24:
        memcpy(&key.port, sa + 2, 2)
        memcpy(key.addr, sa + 8, 16)
    else:
        return None
    key.family = family
    h = key.port
    for i in range(16):
        h = h * 31 + key.addr[i]
    h = 2 * ((h ^ (h >> 7)) % ADDR_SETS)
    if addr_cache[h].value != NULL and memcmp(&addr_cache[h].key, &key, sizeof(key)) == 0:
        return <object>addr_cache[h].value
    if addr_cache[h + 1].value != NULL and memcmp(&addr_cache[h + 1].key, &key, sizeof(key)) == 0:
        # Least recently used goes first: the hit becomes the first way, so the next
        # miss in this set evicts the other entry, not the one just used.
        swap = addr_cache[h]
        addr_cache[h] = addr_cache[h + 1]
        addr_cache[h + 1] = swap
        return <object>addr_cache[h].value
    if inet_ntop(family, key.addr, text, sizeof(text)) == NULL:
        return None
    value = (PyUnicode_DecodeASCII(text, strlen_(text), NULL), ntohs(key.port))
    PyObject_GC_UnTrack(<void *>value)  # a str and an int: in no cycle
    # The set's least recently used entry goes; the other moves to the second way.
    Py_XDECREF(addr_cache[h + 1].value)
    addr_cache[h + 1] = addr_cache[h]
    Py_INCREF(value)
    addr_cache[h].value = <PyObject *>value
    addr_cache[h].key = key
    return value


cdef inline size_t strlen_(const char *s) noexcept nogil:
    cdef size_t n = 0
    while s[n]:
        n += 1
    return n


# --------------------------------------------------------------------------------
# Decoders: kernel bytes -> records. Shared by the syscall paths and the bytes API.
# --------------------------------------------------------------------------------
cdef inline object opt(bint present, object value):
    return value if present else None


# Python ints for the counters of the records, reused while a field keeps its value.
# Polling the same connections mostly sees unchanged tokens, sequence numbers and
# counters: reusing the int objects saves most of a record's allocations. Each field
# keeps a few values (one per subflow polled in turn); guarded by the GIL.
DEF INT_FIELDS = 64
DEF INT_WAYS = 4
cdef PyObject *int_obj[INT_FIELDS][INT_WAYS]
cdef uint64_t int_val[INT_FIELDS][INT_WAYS]
cdef uint8_t int_next[INT_FIELDS]


cdef inline object big(int field, uint64_t v):
    cdef int w
    if v < 256:
        return v  # CPython's small-int cache already shares these
    for w in range(INT_WAYS):
        if int_obj[field][w] != NULL and int_val[field][w] == v:
            return <object>int_obj[field][w]
    obj = <object>v
    w = int_next[field]
    int_next[field] = (w + 1) % INT_WAYS
    Py_XDECREF(int_obj[field][w])
    Py_INCREF(obj)
    int_obj[field][w] = <PyObject *>obj
    int_val[field][w] = v
    return obj


cdef object info_record(const uint8_t *buf, size_t length):
    """MPTCPInfo from the first `length` bytes the kernel wrote."""
    cdef mptcpk_info mi
    memset(&mi, 0, sizeof(mi))
    memcpy(&mi, buf, length if length < sizeof(mi) else sizeof(mi))
    rec = new_value_record(MPTCPInfoT, N_INFO)
    cdef bint base = length >= MI_END_RCV_NXT
    cdef bint tok = length >= MI_END_TOKEN
    cdef bint has_flags = length >= 12
    set_item(rec, 0, opt(length >= 1, big(0, mi.subflows)))
    set_item(rec, 1, opt(length >= 2, big(1, mi.add_addr_signal)))
    set_item(rec, 2, opt(length >= 3, big(2, mi.add_addr_accepted)))
    set_item(rec, 3, opt(length >= 4, big(3, mi.subflows_max)))
    set_item(rec, 4, opt(length >= 5, big(4, mi.add_addr_signal_max)))
    set_item(rec, 5, opt(length >= 6, big(5, mi.add_addr_accepted_max)))
    set_item(rec, 6, opt(has_flags, big(6, mi.flags)))
    set_item(rec, 7, opt(tok, big(7, mi.token)))
    set_item(rec, 8, opt(length >= 24, big(8, mi.write_seq)))
    set_item(rec, 9, opt(length >= 32, big(9, mi.snd_una)))
    set_item(rec, 10, opt(base, big(10, mi.rcv_nxt)))
    set_item(rec, 11, opt(length >= MI_END_RCV_NXT + 1, big(11, mi.local_addr_used)))
    set_item(rec, 12, opt(length >= MI_END_RCV_NXT + 2, big(12, mi.local_addr_max)))
    set_item(rec, 13, opt(length >= MI_END_CSUM, big(13, mi.csum_enabled)))
    cdef bint v65 = length >= MI_END_BYTES_ACKED
    set_item(rec, 14, opt(v65, big(14, mi.retransmits)))
    set_item(rec, 15, opt(v65, big(15, mi.bytes_retrans)))
    set_item(rec, 16, opt(v65, big(16, mi.bytes_sent)))
    set_item(rec, 17, opt(v65, big(17, mi.bytes_received)))
    set_item(rec, 18, opt(v65, big(18, mi.bytes_acked)))
    set_item(rec, 19, opt(length >= MI_END_SUBFLOWS_TOTAL, big(19, mi.subflows_total)))
    cdef bint endp = length >= MI_END_ENDP
    set_item(rec, 20, opt(endp, big(20, mi.endp_laminar_max)))
    set_item(rec, 21, opt(endp, big(21, mi.endp_fullmesh_max)))
    cdef bint last = length >= MI_END_LAST_ACK_RECV
    set_item(rec, 22, opt(last, big(22, mi.last_data_sent)))
    set_item(rec, 23, opt(last, big(23, mi.last_data_recv)))
    set_item(rec, 24, opt(last, big(24, mi.last_ack_recv)))
    set_item(rec, 25, opt(has_flags, bool(mi.flags & MPTCP_INFO_FLAG_FALLBACK)))
    return rec


cdef object subflow_info_record(object sub_id, object local, object remote,
                                const uint8_t *tcpi, size_t avail):
    """SubflowInfo from one tcp_info element of which `avail` bytes are valid."""
    cdef mptcpk_tcp_info ti
    memset(&ti, 0, sizeof(ti))
    memcpy(&ti, tcpi, avail if avail < sizeof(ti) else sizeof(ti))
    rec = new_value_record(SubflowInfoT, N_SUBFLOW_INFO)
    cdef bint base = avail >= TI_END_TOTAL_RETRANS
    set_item(rec, 0, sub_id)
    set_item(rec, 1, local)
    set_item(rec, 2, remote)
    set_item(rec, 3, opt(avail >= 1, big(25, ti.state)))
    set_item(rec, 4, None)
    set_item(rec, 5, opt(avail >= 2, big(26, ti.ca_state)))
    set_item(rec, 6, opt(base, big(27, ti.rto)))
    set_item(rec, 7, opt(base, big(28, ti.snd_mss)))
    set_item(rec, 8, opt(base, big(29, ti.rcv_mss)))
    set_item(rec, 9, opt(base, big(30, ti.unacked)))
    set_item(rec, 10, opt(base, big(31, ti.lost)))
    set_item(rec, 11, opt(base, big(32, ti.retrans)))
    set_item(rec, 12, opt(base, big(33, ti.total_retrans)))
    set_item(rec, 13, opt(base, big(34, ti.rtt)))
    set_item(rec, 14, opt(base, big(35, ti.rttvar)))
    set_item(rec, 15, opt(avail >= TI_END_MIN_RTT, big(36, ti.min_rtt)))
    set_item(rec, 16, opt(base, big(37, ti.snd_cwnd)))
    set_item(rec, 17, opt(base, big(38, ti.snd_ssthresh)))
    set_item(rec, 18, opt(base, big(39, ti.pmtu)))
    set_item(rec, 19, opt(avail >= TI_END_PACING_RATE, big(40, ti.pacing_rate)))
    set_item(rec, 20, opt(avail >= TI_END_DELIVERY_RATE, big(41, ti.delivery_rate)))
    cdef bint bytes41 = avail >= TI_END_BYTES_RECEIVED
    set_item(rec, 21, opt(bytes41, big(42, ti.bytes_acked)))
    set_item(rec, 22, opt(bytes41, big(43, ti.bytes_received)))
    cdef bint sent = avail >= TI_END_BYTES_RETRANS
    set_item(rec, 23, opt(sent, big(44, ti.bytes_sent)))
    set_item(rec, 24, opt(sent, big(45, ti.bytes_retrans)))
    cdef bint segs = avail >= TI_END_SEGS_IN
    set_item(rec, 25, opt(segs, big(46, ti.segs_out)))
    set_item(rec, 26, opt(segs, big(47, ti.segs_in)))
    set_item(rec, 27, opt(avail >= TI_END_MIN_RTT, big(48, ti.notsent_bytes)))
    set_item(rec, 28, opt(avail >= TI_END_SND_WND, big(49, ti.snd_wnd)))
    set_item(rec, 29, opt(avail >= TI_END_RCV_WND, big(50, ti.rcv_wnd)))
    set_item(rec, 30, opt(base, big(51, ti.last_data_sent)))
    set_item(rec, 31, opt(base, big(52, ti.last_data_recv)))
    set_item(rec, 32, opt(avail >= TI_END_BUSY_TIME, big(53, ti.busy_time)))
    set_item(rec, 33, opt(avail >= TI_END_DELIVERED, big(54, ti.delivered)))
    return rec


cdef inline bint is_live(const uint8_t *tcpi, size_t avail) noexcept nogil:
    # A destroyed initial subflow can linger in TCP_CLOSE, and a listener reports
    # its own LISTEN subflow: neither is a subflow of a connection.
    if avail < 1:
        return True
    return tcpi[0] != TCP_CLOSE and tcpi[0] != TCP_LISTEN


cdef inline size_t elem_avail(uint32_t size_kernel, uint32_t size_user) noexcept nogil:
    return size_kernel if size_kernel < size_user else size_user


cdef object decode_full_arrays(const mptcpk_full_info *hdr, const uint8_t *sfinfo,
                               size_t sfinfo_len, const uint8_t *tcpinfo,
                               size_t tcpinfo_len, bint live_only, bint ids_only):
    """Subflow records (or ids) from the arrays a FULL_INFO call filled."""
    cdef uint32_t n = hdr.num_subflows
    cdef size_t sf_stride = hdr.size_sfinfo_user
    cdef size_t ti_stride = hdr.size_tcpinfo_user
    cdef size_t sf_avail = elem_avail(hdr.size_sfinfo_kernel, hdr.size_sfinfo_user)
    cdef size_t ti_avail = elem_avail(hdr.size_tcpinfo_kernel, hdr.size_tcpinfo_user)
    cdef size_t i
    cdef const uint8_t *sf
    cdef const uint8_t *ti
    cdef uint32_t sub_id
    if n > hdr.size_arrays_user:
        n = hdr.size_arrays_user
    if sf_stride == 0 or ti_stride == 0:
        n = 0
    else:
        if n > sfinfo_len // sf_stride:
            n = sfinfo_len // sf_stride
        if n > tcpinfo_len // ti_stride:
            n = tcpinfo_len // ti_stride
    out = PyList_New(0)
    for i in range(n):
        sf = sfinfo + i * sf_stride
        ti = tcpinfo + i * ti_stride
        if live_only and not is_live(ti, ti_avail):
            continue
        if sf_avail < 4:
            continue
        memcpy(&sub_id, sf, 4)
        if ids_only:
            PyList_Append(out, sub_id)
            continue
        local = decode_sockaddr(sf + 8, sf_avail - 8) if sf_avail > 8 else None
        remote = decode_sockaddr(sf + 136, sf_avail - 136) if sf_avail > 136 else None
        PyList_Append(out, subflow_info_record(sub_id, local, remote, ti, ti_avail))
    return out


# --------------------------------------------------------------------------------
# The bytes API: the same decoders over caller-provided bytes (tests, fuzzing)
# --------------------------------------------------------------------------------
def decode_mptcp_info(const unsigned char[:] data not None):
    """MPTCPInfo from the bytes MPTCP_INFO returned (any historical length)."""
    if data.shape[0] == 0:
        return info_record(<const uint8_t *>"", 0)
    return info_record(&data[0], data.shape[0])


def decode_full_info(const unsigned char[:] header not None,
                     const unsigned char[:] sfinfo not None,
                     const unsigned char[:] tcpinfo not None, bint live_only=True):
    """(MPTCPInfo, [SubflowInfo]) from a FULL_INFO header (+ mptcp_info) and arrays."""
    cdef mptcpk_full_info hdr
    cdef size_t hl = header.shape[0]
    if hl < FULL_INFO_HDR:
        raise ValueError(f"FULL_INFO header needs {FULL_INFO_HDR} bytes, got {hl}")
    memset(&hdr, 0, sizeof(hdr))
    memcpy(&hdr, &header[0], hl if hl < sizeof(hdr) else sizeof(hdr))
    info = info_record(<const uint8_t *>&hdr.mptcp_info, hl - FULL_INFO_HDR)
    subs = decode_full_arrays(&hdr, _ptr(sfinfo), sfinfo.shape[0], _ptr(tcpinfo),
                              tcpinfo.shape[0], live_only, False)
    return info, subs


def decode_full_info_ids(const unsigned char[:] header not None,
                         const unsigned char[:] sfinfo not None,
                         const unsigned char[:] tcpinfo not None):
    """get_sub_ids' decoder over bytes: ascending live ids of a FULL_INFO reply whose
    arrays use this core's element sizes (SIZEOF_SUBFLOW_INFO, SIZEOF_TCP_INFO)."""
    cdef mptcpk_full_info hdr
    cdef size_t hl = header.shape[0]
    cdef size_t entries
    if hl < FULL_INFO_HDR:
        raise ValueError(f"FULL_INFO header needs {FULL_INFO_HDR} bytes, got {hl}")
    memset(&hdr, 0, sizeof(hdr))
    memcpy(&hdr, &header[0], hl if hl < sizeof(hdr) else sizeof(hdr))
    if (hdr.size_sfinfo_user != sizeof(mptcpk_subflow_info)
            or hdr.size_tcpinfo_user != sizeof(mptcpk_tcp_info)):
        raise ValueError("decode_full_info_ids needs this core's element sizes")
    entries = min(sfinfo.shape[0] // sizeof(mptcpk_subflow_info),
                  tcpinfo.shape[0] // sizeof(mptcpk_tcp_info))
    return live_ids_sorted(&hdr, _ptr(sfinfo), _ptr(tcpinfo), <uint32_t>min(entries, 0xFFFFFFFF))


def decode_subflow_data(const unsigned char[:] data not None, str kind):
    """Elements of an MPTCP_TCPINFO ("tcpinfo") or MPTCP_SUBFLOW_ADDRS ("addrs") reply.

    Returns (num_subflows, [element]) where an element is a SubflowInfo (id None,
    no addresses) for tcpinfo and a (local, remote) pair for addrs.
    """
    cdef mptcpk_subflow_data hdr
    cdef size_t length = data.shape[0]
    if kind not in ("tcpinfo", "addrs"):
        raise ValueError("kind is 'tcpinfo' or 'addrs'")
    if length < sizeof(hdr):
        raise ValueError(f"subflow_data header needs {sizeof(hdr)} bytes, got {length}")
    memcpy(&hdr, &data[0], sizeof(hdr))
    return hdr.num_subflows, decode_subflow_data_elems(&hdr, &data[0], length, kind == "addrs")


cdef inline const uint8_t *_ptr(const unsigned char[:] view):
    if view.shape[0] == 0:
        return <const uint8_t *>""
    return &view[0]


cdef list decode_subflow_data_elems(const mptcpk_subflow_data *hdr, const uint8_t *base,
                                    size_t length, bint addrs):
    cdef size_t start = hdr.size_subflow_data
    cdef size_t stride = hdr.size_user
    cdef size_t avail = elem_avail(hdr.size_kernel, hdr.size_user)
    cdef size_t i, n
    cdef const uint8_t *p
    out = []
    if stride == 0 or start > length:
        return out
    n = (length - start) // stride
    if n > hdr.num_subflows:
        n = hdr.num_subflows
    for i in range(n):
        p = base + start + i * stride
        if addrs:
            out.append((decode_sockaddr(p, avail) if avail else None,
                        decode_sockaddr(p + 128, avail - 128) if avail > 128 else None))
        else:
            out.append(subflow_info_record(None, None, None, p, avail))
    return out


# --------------------------------------------------------------------------------
# Syscalls
# --------------------------------------------------------------------------------
cdef inline int as_fd(object sock) except? -1:
    """The int fd of an int, or of anything with fileno(); bool is a TypeError.

    Done here rather than in Python because it is most of a hot call's overhead.
    A closed socket's fileno() is -1: passed on, so the kernel answers EBADF.
    """
    if type(sock) is int:
        return sock
    if isinstance(sock, bool):
        raise TypeError("sock must be a socket, an object with fileno() or an int fd, not bool")
    if isinstance(sock, int):
        return sock
    try:
        fd = sock.fileno()  # Cython calls the method without creating a bound method
    except AttributeError:
        if hasattr(sock, "fileno"):
            raise
        raise TypeError(f"sock must be a socket, an object with fileno() or an int fd, "
                        f"not {type(sock).__name__}") from None
    if type(fd) is not int:
        raise TypeError(f"{type(sock).__name__}.fileno() returned {fd!r}, not an int")
    return fd


def fileno(sock):
    """The int fd of a socket, an object with fileno(), or an int (never dup'ed)."""
    return as_fd(sock)
cdef inline int sockopt_get(int fd, int level, int name, void *buf, socklen_t *length) noexcept nogil:
    """getsockopt retried on EINTR; returns 0 or errno."""
    cdef int rc
    while True:
        rc = getsockopt(fd, level, name, buf, length)
        if rc == 0:
            return 0
        if errno != EINTR:
            return errno


cdef inline int sockopt_read(int fd, int level, int name, void *buf, socklen_t *length) noexcept:
    """sockopt_get for a short read, called with the GIL: released around the syscall
    whenever another Python thread exists (the call can sleep on the socket lock while
    a sender holds it), kept when this is the only one, where handing the GIL off and
    back would be pure cost (60 to 100 ns measured, up to a sixth of a FULL_INFO call)."""
    cdef int err
    if only_python_thread():
        return sockopt_get(fd, level, name, buf, length)
    with nogil:
        err = sockopt_get(fd, level, name, buf, length)
    return err


def peer_name(int fd, str call="getpeername"):
    """(host, port) of the socket's peer (getpeername), None for a family other
    than IPv4/IPv6; raises through the hook (ENOTCONN: not connected)."""
    cdef mptcpk_sockaddr_storage sa
    cdef socklen_t length = sizeof(sa)
    if getpeername(fd, <sockaddr *>&sa, &length) != 0:
        raise_errno(errno, call, fd)
    return decode_sockaddr(<const uint8_t *>&sa, length)


def sock_name(int fd, str call="getsockname"):
    """(host, port) the socket is bound to (getsockname), None for a family other than
    IPv4/IPv6; raises through the hook."""
    cdef mptcpk_sockaddr_storage sa
    cdef socklen_t length = sizeof(sa)
    if getsockname(fd, <sockaddr *>&sa, &length) != 0:
        raise_errno(errno, call, fd)
    return decode_sockaddr(<const uint8_t *>&sa, length)


def is_only_python_thread():
    """Whether the short sockopt reads would keep the GIL right now (for tests)."""
    return only_python_thread()


def sockopt_int(int fd, int level, int name):
    """An int getsockopt; raises through the hook."""
    cdef int value = 0
    cdef socklen_t length = sizeof(value)
    cdef int err = sockopt_read(fd, level, name, &value, &length)
    if err:
        raise_errno(err, "getsockopt", fd)
    return value


def sockopt_errno(int fd, int level, int name):
    """0 if an int getsockopt succeeds, else its errno (a probe: never raises)."""
    cdef int value = 0
    cdef socklen_t length = sizeof(value)
    return sockopt_read(fd, level, name, &value, &length)


def info(sock, str call="info"):
    """MPTCPInfo of a connection through MPTCP_INFO (5.16); sock: int or fileno().
    ``call`` names the user's call in errors (info also serves token lookups)."""
    cdef int fd = as_fd(sock)
    cdef mptcpk_info mi
    cdef socklen_t length = sizeof(mi)
    cdef int err = sockopt_read(fd, SOL_MPTCP, MPTCP_INFO, &mi, &length)
    if err:
        raise_errno(err, call, fd)
    return info_record_cached(<const uint8_t *>&mi, length)


# The last few MPTCP_INFO replies and their records: records are immutable, so the
# same kernel bytes (an idle connection polled again) give back the same record
# instead of a new one. Guarded by the GIL.
DEF INFO_CACHE = 4
cdef mptcpk_info info_cache_raw[INFO_CACHE]
cdef size_t info_cache_len[INFO_CACHE]
cdef PyObject *info_cache_rec[INFO_CACHE]
cdef int info_cache_next = 0


cdef object info_record_cached(const uint8_t *buf, size_t length):
    global info_cache_next
    cdef int k
    if length > sizeof(mptcpk_info):
        length = sizeof(mptcpk_info)
    for k in range(INFO_CACHE):
        if (info_cache_rec[k] != NULL and info_cache_len[k] == length
                and memcmp(&info_cache_raw[k], buf, length) == 0):
            return <object>info_cache_rec[k]
    rec = info_record(buf, length)
    k = info_cache_next
    info_cache_next = (k + 1) % INFO_CACHE
    Py_XDECREF(info_cache_rec[k])
    Py_INCREF(rec)
    info_cache_rec[k] = <PyObject *>rec
    info_cache_len[k] = length
    memcpy(&info_cache_raw[k], buf, length)
    return rec


cdef int full_info_call(int fd, mptcpk_full_info *hdr, uint8_t *sfinfo, uint8_t *tcpinfo,
                        uint32_t cap, socklen_t *length) noexcept:
    # Only the 40-byte header is read by the kernel, and it must see zeros in its
    # output fields; the mptcp_info after it is output only.
    hdr.size_tcpinfo_kernel = 0
    hdr.size_sfinfo_kernel = 0
    hdr.num_subflows = 0
    hdr.size_tcpinfo_user = sizeof(mptcpk_tcp_info)
    hdr.size_sfinfo_user = sizeof(mptcpk_subflow_info)
    hdr.size_arrays_user = cap
    hdr.subflow_info = <uint64_t><size_t>sfinfo
    hdr.tcp_info = <uint64_t><size_t>tcpinfo
    length[0] = sizeof(mptcpk_full_info)
    return sockopt_read(fd, SOL_MPTCP, MPTCP_FULL_INFO, hdr, length)


cdef list live_ids_sorted(const mptcpk_full_info *hdr, const uint8_t *sf, const uint8_t *ti,
                          uint32_t entries):
    """Ascending ids of the live subflows of a FULL_INFO reply made with our element
    sizes; `entries` is how many elements both arrays hold."""
    cdef size_t ti_avail = elem_avail(hdr.size_tcpinfo_kernel, hdr.size_tcpinfo_user)
    cdef uint32_t n = hdr.num_subflows
    cdef uint32_t i, j, k = 0, v
    cdef uint32_t ids[STACK_SUBFLOWS]
    cdef uint32_t *buf = ids
    cdef list out
    cdef object item  # typed: an untyped `item = buf[i]` would be a C uint32 here
    if n > hdr.size_arrays_user:
        n = hdr.size_arrays_user
    if n > entries:
        n = entries
    if n > STACK_SUBFLOWS:
        buf = <uint32_t *>PyMem_Malloc(n * sizeof(uint32_t))
        if buf == NULL:
            raise MemoryError()
    for i in range(n):
        if is_live(ti + i * sizeof(mptcpk_tcp_info), ti_avail):
            memcpy(&v, sf + i * sizeof(mptcpk_subflow_info), 4)
            j = k  # insertion sort: the kernel lists them nearly in order already
            while j > 0 and buf[j - 1] > v:
                buf[j] = buf[j - 1]
                j -= 1
            buf[j] = v
            k += 1
    out = PyList_New(k)
    for i in range(k):
        item = buf[i]
        Py_INCREF(item)
        PyList_SET_ITEM(out, i, item)
    if buf != ids:
        PyMem_Free(buf)
    return out


cdef int full_info_fetch(int fd, mptcpk_full_info *hdr, uint8_t **sf, uint8_t **ti,
                         uint32_t *cap, socklen_t *length, void **heap, str call) except -1:
    """One FULL_INFO snapshot (6.5) into *sf/*ti, the caller's arrays of *cap entries;
    with more subflows than that, grown once onto the heap (*heap: the caller frees it)
    to the reported total, plus room for one joining meanwhile, and asked again."""
    cdef int err
    while True:
        err = full_info_call(fd, hdr, sf[0], ti[0], cap[0], length)
        if err:
            raise_errno(err, call, fd)
        if hdr.num_subflows <= cap[0]:
            return 0
        cap[0] = hdr.num_subflows + 4
        PyMem_Free(heap[0])
        heap[0] = PyMem_Malloc(cap[0] * (sizeof(mptcpk_subflow_info) + sizeof(mptcpk_tcp_info)))
        if heap[0] == NULL:
            raise MemoryError()
        sf[0] = <uint8_t *>heap[0]
        ti[0] = sf[0] + cap[0] * sizeof(mptcpk_subflow_info)


cdef object full_info(int fd, bint ids_only, bint with_info, str call):
    """One FULL_INFO snapshot (6.5): subflow records or ids, and optionally MPTCPInfo."""
    cdef mptcpk_full_info hdr
    cdef mptcpk_subflow_info sf_stack[STACK_SUBFLOWS]
    cdef mptcpk_tcp_info ti_stack[STACK_SUBFLOWS]
    cdef uint8_t *sf = <uint8_t *>sf_stack
    cdef uint8_t *ti = <uint8_t *>ti_stack
    cdef uint32_t cap = STACK_SUBFLOWS
    cdef socklen_t length
    cdef void *heap = NULL
    try:
        full_info_fetch(fd, &hdr, &sf, &ti, &cap, &length, &heap, call)
        if ids_only:
            return live_ids_sorted(&hdr, sf, ti, cap)
        subs = decode_full_arrays(&hdr, sf, cap * sizeof(mptcpk_subflow_info), ti,
                                  cap * sizeof(mptcpk_tcp_info), True, False)
        if with_info:
            return info_record(<const uint8_t *>&hdr.mptcp_info,
                               length - FULL_INFO_HDR if length > FULL_INFO_HDR else 0), subs
        return subs
    finally:
        PyMem_Free(heap)


def subflows(sock):
    """Live subflows as SubflowInfo records, one FULL_INFO snapshot (6.5)."""
    return full_info(as_fd(sock), False, False, "subflows")


def snapshot(int fd, str call="subflows"):
    """(MPTCPInfo, [SubflowInfo]) from one FULL_INFO snapshot (6.5)."""
    return full_info(fd, False, True, call)


def sub_ids(sock):
    """Ids of the live subflows, ascending (FULL_INFO, 6.5)."""
    return full_info(as_fd(sock), True, False, "get_sub_ids")


def subflows_legacy(int fd):
    """Live subflows through MPTCP_TCPINFO + MPTCP_SUBFLOW_ADDRS (5.16), ids None.

    Two calls, not one snapshot: if the subflow count differs between them the
    pair is read again, so records never pair one subflow's addresses with
    another's tcp_info.
    """
    cdef int attempt
    for attempt in range(8):
        n_ti, tis = _subflow_data_call(fd, MPTCP_TCPINFO, sizeof(mptcpk_tcp_info))
        n_ad, ads = _subflow_data_call(fd, MPTCP_SUBFLOW_ADDRS, sizeof(mptcpk_subflow_addrs))
        if n_ti == n_ad and len(tis) == len(ads) == n_ti:
            break
    else:
        raise_errno(EINVAL, "subflows (subflow set kept changing)", fd)
    out = []
    for rec, (local, remote) in zip(tis, ads):
        if rec[3] in (TCP_CLOSE, TCP_LISTEN):
            continue
        out.append(SubflowInfoT._make((None, local, remote) + tuple(rec)[3:]))
    return out


cdef tuple _subflow_data_call(int fd, int optname, uint32_t elem):
    cdef uint32_t cap = STACK_SUBFLOWS
    cdef size_t size
    cdef socklen_t length
    cdef int err
    cdef uint8_t *buf = NULL
    cdef mptcpk_subflow_data *hdr
    try:
        while True:
            size = sizeof(mptcpk_subflow_data) + cap * elem
            PyMem_Free(buf)
            buf = <uint8_t *>PyMem_Malloc(size)
            if buf == NULL:
                raise MemoryError()
            hdr = <mptcpk_subflow_data *>buf
            memset(buf, 0, size)
            hdr.size_subflow_data = sizeof(mptcpk_subflow_data)
            hdr.size_user = elem
            length = <socklen_t>size
            err = sockopt_read(fd, SOL_MPTCP, optname, buf, &length)
            if err:
                raise_errno(err, "subflows", fd)
            if hdr.num_subflows <= cap:
                break
            cap = hdr.num_subflows + 4
        return hdr.num_subflows, decode_subflow_data_elems(hdr, buf, length, optname == MPTCP_SUBFLOW_ADDRS)
    finally:
        PyMem_Free(buf)


def full_info_errno(int fd):
    """errno of one FULL_INFO call on fd (0 on success): the capability probe."""
    cdef mptcpk_full_info hdr
    cdef socklen_t length
    return full_info_call(fd, &hdr, NULL, NULL, 0, &length)


def info_errno(int fd):
    """errno of one MPTCP_INFO call on fd (0 on success): the capability probe."""
    cdef mptcpk_info mi
    cdef socklen_t length = sizeof(mi)
    return sockopt_read(fd, SOL_MPTCP, MPTCP_INFO, &mi, &length)


def make_subflow(sub_id, local, remote, prio, status):
    """A Subflow record; backup is derived from prio."""
    rec = new_record(SubflowT, N_SUBFLOW)
    set_item(rec, 0, sub_id)
    set_item(rec, 1, local)
    set_item(rec, 2, remote)
    set_item(rec, 3, prio)
    set_item(rec, 4, None if prio is None else bool(prio))
    set_item(rec, 5, status)
    return rec


include "_poller.pxi"
include "_draft.pxi"
include "_diag.pxi"
include "_bpf.pxi"
