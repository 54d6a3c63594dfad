# Poller: one FULL_INFO getsockopt per poll() into buffers the object owns, and view
# objects that read fields straight out of those buffers. Included by _mptcp.pyx.

DEF POLLER_INITIAL = 8


cdef class Poller:
    """Poll a connection's subflows at high rate (FULL_INFO, Linux 6.5).

    ``poll()`` is one getsockopt into buffers this object owns and allocates no
    Python object in steady state; ``poller[i]`` is the same view object for slot
    ``i`` on every poll. Use one Poller per thread.
    """

    cdef int fd
    cdef object sock
    cdef mptcpk_full_info hdr
    cdef socklen_t length
    cdef uint8_t *sf
    cdef uint8_t *ti
    cdef uint32_t *live
    cdef uint32_t cap
    cdef uint32_t count
    cdef size_t ti_avail
    cdef bint busy
    cdef bint polled
    cdef list views
    cdef InfoView info_view

    def __cinit__(self, *args, **kwargs):
        # The Python subclass validates its arguments and calls _attach.
        self.fd = -1
        self.views = []
        self.info_view = InfoView.__new__(InfoView)
        self.info_view.poller = self
        self._alloc(POLLER_INITIAL)

    def _attach(self, int fd, object sock):
        self.fd = fd
        self.sock = sock  # keeps the caller's socket object alive; never closed here

    def __dealloc__(self):
        PyMem_Free(self.sf)
        PyMem_Free(self.live)

    cdef int _alloc(self, uint32_t cap) except -1:
        cdef size_t per = sizeof(mptcpk_subflow_info) + sizeof(mptcpk_tcp_info)
        cdef uint8_t *mem = <uint8_t *>PyMem_Malloc(cap * per)
        cdef uint32_t *live = <uint32_t *>PyMem_Malloc(cap * sizeof(uint32_t))
        if mem == NULL or live == NULL:
            PyMem_Free(mem)
            PyMem_Free(live)
            raise MemoryError()
        PyMem_Free(self.sf)
        PyMem_Free(self.live)
        memset(mem, 0, cap * per)
        self.sf = mem
        self.ti = mem + cap * sizeof(mptcpk_subflow_info)
        self.live = live
        self.cap = cap
        self.count = 0
        return 0

    cpdef int poll(self) except -1:
        """Take a new snapshot; returns the number of live subflows."""
        cdef int err
        cdef uint32_t i, n
        if self.fd < 0:
            raise ValueError("poll() on a closed or unattached Poller")
        if self.busy:
            raise RuntimeError("Poller.poll() called from two threads at once: use one Poller per thread")
        self.busy = True
        while True:
            err = full_info_call(self.fd, &self.hdr, self.sf, self.ti, self.cap, &self.length)
            if err or self.hdr.num_subflows <= self.cap:
                break
            try:
                self._alloc(self.hdr.num_subflows + 4)
            except MemoryError:
                self.busy = False
                raise
        self.busy = False  # cleared by hand: a try/finally costs measurably per poll
        if err:
            self.count = 0
            raise_errno(err, "Poller.poll", self.fd)
        self.ti_avail = elem_avail(self.hdr.size_tcpinfo_kernel, self.hdr.size_tcpinfo_user)
        n = 0
        for i in range(self.hdr.num_subflows):
            if is_live(self.ti + i * sizeof(mptcpk_tcp_info), self.ti_avail):
                self.live[n] = i
                n += 1
        self.count = n
        self.polled = True
        return n

    def __len__(self):
        return self.count

    def __getitem__(self, Py_ssize_t i):
        cdef SubflowView view
        if i < 0:
            i += self.count
        if i < 0 or i >= self.count:
            raise IndexError(f"subflow slot {i} out of range ({self.count} live subflows)")
        while len(self.views) <= i:
            view = SubflowView.__new__(SubflowView)
            view.poller = self
            view.slot = len(self.views)
            self.views.append(view)
        return self.views[i]

    def __iter__(self):
        for i in range(self.count):
            yield self[i]

    @property
    def info(self):
        """A view of the connection's mptcp_info from the last poll."""
        return self.info_view

    @property
    def fd(self):
        return self.fd

    def snapshot(self):
        """Copy the last poll out as a list of SubflowInfo records (allocates)."""
        cdef uint32_t k, i
        cdef mptcpk_subflow_info *sf
        out = []
        for k in range(self.count):
            i = self.live[k]
            sf = <mptcpk_subflow_info *>(self.sf + i * sizeof(mptcpk_subflow_info))
            out.append(subflow_info_record(
                sf.id, decode_sockaddr(<const uint8_t *>&sf.addrs.local, 128),
                decode_sockaddr(<const uint8_t *>&sf.addrs.remote, 128),
                self.ti + i * sizeof(mptcpk_tcp_info), self.ti_avail))
        return out

    def close(self):
        """Forget the socket (it is not closed: it belongs to the caller)."""
        self.fd = -1
        self.count = 0
        self.sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    cdef inline const mptcpk_tcp_info *tcpi(self, uint32_t slot) except NULL:
        if slot >= self.count:
            raise IndexError(f"subflow slot {slot} is gone after the last poll ({self.count} live)")
        return <const mptcpk_tcp_info *>(self.ti + self.live[slot] * sizeof(mptcpk_tcp_info))

    cdef inline const mptcpk_subflow_info *sfinfo(self, uint32_t slot) except NULL:
        if slot >= self.count:
            raise IndexError(f"subflow slot {slot} is gone after the last poll ({self.count} live)")
        return <const mptcpk_subflow_info *>(self.sf + self.live[slot] * sizeof(mptcpk_subflow_info))


cdef class SubflowView:
    """Live view of one Poller slot: every attribute reads the last poll's buffer."""

    cdef Poller poller
    cdef uint32_t slot

    def __repr__(self):
        if self.slot >= self.poller.count:
            return f"<SubflowView slot={self.slot} (gone)>"
        return (f"<SubflowView slot={self.slot} id={self.id} local={self.local} "
                f"remote={self.remote} rtt_us={self.rtt_us} snd_cwnd={self.snd_cwnd}>")

    @property
    def slot(self):
        return self.slot

    @property
    def id(self):
        return self.poller.sfinfo(self.slot).id

    @property
    def local(self):
        return decode_sockaddr(<const uint8_t *>&self.poller.sfinfo(self.slot).addrs.local, 128)

    @property
    def remote(self):
        return decode_sockaddr(<const uint8_t *>&self.poller.sfinfo(self.slot).addrs.remote, 128)

    @property
    def state(self):
        return self.poller.tcpi(self.slot).state

    @property
    def ca_state(self):
        return self.poller.tcpi(self.slot).ca_state

    @property
    def rto_us(self):
        return self.poller.tcpi(self.slot).rto

    @property
    def snd_mss(self):
        return self.poller.tcpi(self.slot).snd_mss

    @property
    def rcv_mss(self):
        return self.poller.tcpi(self.slot).rcv_mss

    @property
    def unacked(self):
        return self.poller.tcpi(self.slot).unacked

    @property
    def lost(self):
        return self.poller.tcpi(self.slot).lost

    @property
    def retrans(self):
        return self.poller.tcpi(self.slot).retrans

    @property
    def total_retrans(self):
        return self.poller.tcpi(self.slot).total_retrans

    @property
    def rtt_us(self):
        return self.poller.tcpi(self.slot).rtt

    @property
    def rttvar_us(self):
        return self.poller.tcpi(self.slot).rttvar

    @property
    def min_rtt_us(self):
        return self._need(TI_END_MIN_RTT, self.poller.tcpi(self.slot).min_rtt)

    @property
    def snd_cwnd(self):
        return self.poller.tcpi(self.slot).snd_cwnd

    @property
    def snd_ssthresh(self):
        return self.poller.tcpi(self.slot).snd_ssthresh

    @property
    def pmtu(self):
        return self.poller.tcpi(self.slot).pmtu

    @property
    def pacing_rate(self):
        return self._need(TI_END_PACING_RATE, self.poller.tcpi(self.slot).pacing_rate)

    @property
    def delivery_rate(self):
        return self._need(TI_END_DELIVERY_RATE, self.poller.tcpi(self.slot).delivery_rate)

    @property
    def bytes_acked(self):
        return self._need(TI_END_BYTES_RECEIVED, self.poller.tcpi(self.slot).bytes_acked)

    @property
    def bytes_received(self):
        return self._need(TI_END_BYTES_RECEIVED, self.poller.tcpi(self.slot).bytes_received)

    @property
    def bytes_sent(self):
        return self._need(TI_END_BYTES_RETRANS, self.poller.tcpi(self.slot).bytes_sent)

    @property
    def bytes_retrans(self):
        return self._need(TI_END_BYTES_RETRANS, self.poller.tcpi(self.slot).bytes_retrans)

    @property
    def segs_out(self):
        return self._need(TI_END_SEGS_IN, self.poller.tcpi(self.slot).segs_out)

    @property
    def segs_in(self):
        return self._need(TI_END_SEGS_IN, self.poller.tcpi(self.slot).segs_in)

    @property
    def notsent_bytes(self):
        return self._need(TI_END_MIN_RTT, self.poller.tcpi(self.slot).notsent_bytes)

    @property
    def snd_wnd(self):
        return self._need(TI_END_SND_WND, self.poller.tcpi(self.slot).snd_wnd)

    @property
    def rcv_wnd(self):
        return self._need(TI_END_RCV_WND, self.poller.tcpi(self.slot).rcv_wnd)

    @property
    def last_data_sent_ms(self):
        return self.poller.tcpi(self.slot).last_data_sent

    @property
    def last_data_recv_ms(self):
        return self.poller.tcpi(self.slot).last_data_recv

    @property
    def busy_time_us(self):
        return self._need(TI_END_BUSY_TIME, self.poller.tcpi(self.slot).busy_time)

    @property
    def delivered(self):
        return self._need(TI_END_DELIVERED, self.poller.tcpi(self.slot).delivered)

    cdef inline object _need(self, size_t end, object value):
        return value if self.poller.ti_avail >= end else None


cdef class InfoView:
    """Live view of the connection's mptcp_info from the Poller's last poll."""

    cdef Poller poller

    cdef inline const mptcpk_info *mi(self) except NULL:
        if not self.poller.polled:
            raise ValueError("Poller.info is empty until the first poll()")
        return &self.poller.hdr.mptcp_info

    cdef inline size_t avail(self):
        return self.poller.length - FULL_INFO_HDR if self.poller.length > FULL_INFO_HDR else 0

    def __repr__(self):
        if not self.poller.polled:
            return "<InfoView (not polled)>"
        return f"<InfoView token={self.token:#x} subflows={self.subflows} bytes_sent={self.bytes_sent}>"

    def copy(self):
        """The last poll's mptcp_info as an MPTCPInfo record (allocates)."""
        return info_record(<const uint8_t *>self.mi(), self.avail())

    @property
    def subflows(self):
        return self.mi().subflows

    @property
    def add_addr_signal(self):
        return self.mi().add_addr_signal

    @property
    def add_addr_accepted(self):
        return self.mi().add_addr_accepted

    @property
    def subflows_max(self):
        return self.mi().subflows_max

    @property
    def add_addr_signal_max(self):
        return self.mi().add_addr_signal_max

    @property
    def add_addr_accepted_max(self):
        return self.mi().add_addr_accepted_max

    @property
    def flags(self):
        return self.mi().flags

    @property
    def fallback(self):
        return bool(self.mi().flags & MPTCP_INFO_FLAG_FALLBACK)

    @property
    def token(self):
        return self.mi().token

    @property
    def write_seq(self):
        return self.mi().write_seq

    @property
    def snd_una(self):
        return self.mi().snd_una

    @property
    def rcv_nxt(self):
        return self.mi().rcv_nxt

    @property
    def local_addr_used(self):
        return self.mi().local_addr_used

    @property
    def local_addr_max(self):
        return self.mi().local_addr_max

    @property
    def csum_enabled(self):
        return self.mi().csum_enabled

    @property
    def retransmits(self):
        return self._need(MI_END_BYTES_ACKED, self.mi().retransmits)

    @property
    def bytes_retrans(self):
        return self._need(MI_END_BYTES_ACKED, self.mi().bytes_retrans)

    @property
    def bytes_sent(self):
        return self._need(MI_END_BYTES_ACKED, self.mi().bytes_sent)

    @property
    def bytes_received(self):
        return self._need(MI_END_BYTES_ACKED, self.mi().bytes_received)

    @property
    def bytes_acked(self):
        return self._need(MI_END_BYTES_ACKED, self.mi().bytes_acked)

    @property
    def subflows_total(self):
        return self._need(MI_END_SUBFLOWS_TOTAL, self.mi().subflows_total)

    @property
    def endp_laminar_max(self):
        return self._need(MI_END_ENDP, self.mi().endp_laminar_max)

    @property
    def endp_fullmesh_max(self):
        return self._need(MI_END_ENDP, self.mi().endp_fullmesh_max)

    @property
    def last_data_sent(self):
        return self._need(MI_END_LAST_ACK_RECV, self.mi().last_data_sent)

    @property
    def last_data_recv(self):
        return self._need(MI_END_LAST_ACK_RECV, self.mi().last_data_recv)

    @property
    def last_ack_recv(self):
        return self._need(MI_END_LAST_ACK_RECV, self.mi().last_ack_recv)

    cdef inline object _need(self, size_t end, object value):
        return value if self.avail() >= end else None
