/*
 * draft_double.c - LD_PRELOAD test double of a research-fork kernel that
 * implements the draft MPTCP socket API (draft-hesmans-mptcp-socket).
 *
 * No such kernel is available, so the library's draft backend is tested against
 * this double at the libc boundary: it interposes getsockopt() and setsockopt()
 * and answers the draft options (SOL_TCP 42 and 66-72) the way the fork does,
 * as the fork's source does (each case is described where it is answered below,
 * structs in include/mptcp_sockopt.h), including its error cases and
 * its omissions (no id returned by OPEN_SUB_TUPLE, uninitialised status bits,
 * garbage sockaddr padding, the stack overflow and the lock-up traps).
 *
 * Mapping onto a mainline kernel:
 *  - The fork's MPTCP connection is a TCP socket with MPTCP switched on; here a
 *    real IPPROTO_MPTCP (262) socket stands in for it (SO_PROTOCOL tells).
 *  - The fork only sets mptcp(tp) on the meta socket once the MP_CAPABLE
 *    handshake completed.  So an MPTCP socket counts as an MPTCP connection only
 *    if it is connected (getpeername succeeds: not for CLOSE/SYN_SENT/LISTEN)
 *    and did not fall back to TCP (mainline TCP_IS_MPTCP answers 0 after a
 *    fallback).  Otherwise it behaves like the fork's non-MPTCP TCP socket.
 *  - There are no real subflows: each connection gets a table of fake subflows
 *    (id 1 = the real socket's tuple), and per-subflow socket options are
 *    forwarded to the real socket.
 *
 * Anything that is not SOL_TCP + one of the draft optnames, and any socket that
 * is neither TCP nor MPTCP (UDP, unix, not a socket, bad fd) goes to the real
 * call untouched, so the kernel's own errno comes back.
 *
 * Build: gcc -O2 -Wall -Wextra -fPIC -shared -o draft_double.so draft_double.c
 *        -ldl -lpthread
 * Env:   DRAFT_DOUBLE_SLEEP_MS=N  every intercepted draft call sleeps N ms first
 *        DRAFT_DOUBLE_LOG=1       one stderr line per intercepted call
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- the fork's ABI: our own copy, never <linux/mptcp.h> --------------- */

#define DD_SOL_TCP 6
#define DD_IPPROTO_MPTCP 262
#define DD_TCP_IS_MPTCP 43 /* mainline only: tells a fallen-back socket */

#define MPTCP_ENABLED 42
#define MPTCP_GET_SUB_IDS 66
#define MPTCP_CLOSE_SUB_ID 67
#define MPTCP_GET_SUB_TUPLE 68
#define MPTCP_OPEN_SUB_TUPLE 69
#define MPTCP_DRAFT_UNUSED_70 70 /* no operation, but still "draft" to the fork */
#define MPTCP_SUB_GETSOCKOPT 71
#define MPTCP_SUB_SETSOCKOPT 72

/* Byte 1 of struct mptcp_sub_status (u16 bit-fields after a u8 on x86_64). */
#define SUB_SLAVE_SK 0x01
#define SUB_FULLY_ESTABLISHED 0x02
#define SUB_ATTACHED 0x04
#define SUB_LOW_PRIO 0x08
#define SUB_PRE_ESTABLISHED 0x10

struct mptcp_sub_status {
	uint8_t id;
	uint16_t slave_sk : 1, fully_established : 1, attached : 1, low_prio : 1,
		pre_established : 1;
};

struct mptcp_sub_ids {
	uint8_t sub_count;
	struct mptcp_sub_status sub_status[];
};

struct mptcp_sub_tuple {
	uint8_t id;
	uint8_t addrs[];
};

struct mptcp_close_sub_id {
	uint8_t id;
};

struct mptcp_sub_getsockopt {
	uint8_t id;
	int level;
	int optname;
	char *optval;
	unsigned int *optlen;
};

struct mptcp_sub_setsockopt {
	uint8_t id;
	int level;
	int optname;
	char *optval;
	unsigned int optlen;
};

/* The offsets the library (and docs) rely on; fail the build if they drift. */
_Static_assert(sizeof(struct mptcp_sub_status) == 2, "sub_status is 2 bytes");
_Static_assert(offsetof(struct mptcp_sub_ids, sub_status) == 2, "sub_status@2");
_Static_assert(offsetof(struct mptcp_sub_tuple, addrs) == 1, "addrs@1");
_Static_assert(sizeof(struct mptcp_close_sub_id) == 1, "close_sub_id is 1");
_Static_assert(offsetof(struct mptcp_sub_getsockopt, level) == 4, "level@4");
_Static_assert(offsetof(struct mptcp_sub_getsockopt, optname) == 8, "optname@8");
_Static_assert(offsetof(struct mptcp_sub_getsockopt, optval) == 16, "optval@16");
_Static_assert(offsetof(struct mptcp_sub_getsockopt, optlen) == 24, "optlen@24");
_Static_assert(sizeof(struct mptcp_sub_getsockopt) == 32, "sub_getsockopt 32");
_Static_assert(offsetof(struct mptcp_sub_setsockopt, optlen) == 24, "optlen@24");
_Static_assert(sizeof(struct mptcp_sub_setsockopt) == 32, "sub_setsockopt 32");
_Static_assert(sizeof(struct sockaddr_in) == 16, "sockaddr_in 16");
_Static_assert(sizeof(struct sockaddr_in6) == 28, "sockaddr_in6 28");

#define TUPLE_LEN(salen) (sizeof(struct mptcp_sub_tuple) + 2 * (salen))

/* ---- state --------------------------------------------------------------- */

enum sub_state {
	SUB_ESTABLISHED,    /* fully_established | attached */
	SUB_JUST_OPENED,    /* next GET_SUB_IDS: pre_established | attached */
};

struct subflow {
	uint8_t id;
	enum sub_state state;
	struct sockaddr_storage local, remote;
	struct subflow *next;
};

/* One per connection.  Keyed by the socket inode, not the fd: an fd number is
 * reused after close() and must not inherit a stale table.  Tables of closed
 * sockets are never freed (we do not interpose close()); a test process makes
 * few connections, and sockfs inode numbers are not reused in practice. */
struct conn {
	dev_t dev;
	ino_t ino;
	int family;
	unsigned next_id; /* ids are u8, start at 1 and are never reused */
	struct subflow *subs; /* in id order */
	struct conn *next;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct conn *conns;
static uint64_t rng_state;

static int (*real_getsockopt)(int, int, int, void *, socklen_t *);
static int (*real_setsockopt)(int, int, int, const void *, socklen_t);
static long sleep_ms;
static int log_calls;

__attribute__((constructor)) static void dd_init(void)
{
	const char *s;

	real_getsockopt = dlsym(RTLD_NEXT, "getsockopt");
	real_setsockopt = dlsym(RTLD_NEXT, "setsockopt");
	if (!real_getsockopt || !real_setsockopt) {
		fprintf(stderr, "draft_double: dlsym(RTLD_NEXT) failed: %s\n", dlerror());
		abort();
	}
	s = getenv("DRAFT_DOUBLE_SLEEP_MS");
	sleep_ms = s ? strtol(s, NULL, 10) : 0;
	s = getenv("DRAFT_DOUBLE_LOG");
	log_calls = s && *s && strcmp(s, "0") != 0;
	rng_state = (uint64_t)getpid() * 0x9E3779B97F4A7C15ull ^ (uint64_t)time(NULL);
	if (!rng_state)
		rng_state = 1;
}

/* xorshift64; callers hold `lock`.  The "uninitialised kernel memory" the
 * double emulates must vary between calls so a client reading it is caught. */
static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* Garbage that is never all zero, so "it happened to be 0" can't hide a bug. */
static void garbage(void *p, size_t n)
{
	uint8_t *b = p;
	size_t i;

	for (i = 0; i < n; i++)
		b[i] = (uint8_t)rnd();
	if (n)
		b[0] |= 0x80;
}

static const char *optname_str(int optname)
{
	switch (optname) {
	case MPTCP_ENABLED: return "MPTCP_ENABLED";
	case MPTCP_GET_SUB_IDS: return "GET_SUB_IDS";
	case MPTCP_CLOSE_SUB_ID: return "CLOSE_SUB_ID";
	case MPTCP_GET_SUB_TUPLE: return "GET_SUB_TUPLE";
	case MPTCP_OPEN_SUB_TUPLE: return "OPEN_SUB_TUPLE";
	case MPTCP_SUB_GETSOCKOPT: return "SUB_GETSOCKOPT";
	case MPTCP_SUB_SETSOCKOPT: return "SUB_SETSOCKOPT";
	default: return "?";
	}
}

static int is_draft_getopt(int level, int optname)
{
	return level == DD_SOL_TCP &&
	       (optname == MPTCP_ENABLED ||
		(optname >= MPTCP_GET_SUB_IDS && optname <= MPTCP_SUB_SETSOCKOPT));
}

/* ---- classification ------------------------------------------------------ */

enum kind {
	K_OTHER,      /* not ours: forward to the real call */
	K_NON_MPTCP,  /* the fork's TCP socket without MPTCP */
	K_MPTCP,      /* the fork's MPTCP connection (meta socket, mpc set) */
};

static enum kind classify(int fd)
{
	int proto = 0, type = 0, domain = 0, is_mptcp = 1;
	socklen_t l = sizeof(int);
	struct sockaddr_storage peer;
	socklen_t plen = sizeof(peer);

	if (real_getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &l) < 0)
		return K_OTHER; /* EBADF / ENOTSOCK: let the kernel say so */
	l = sizeof(int);
	if (real_getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l) < 0)
		return K_OTHER;
	l = sizeof(int);
	if (real_getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &l) < 0)
		return K_OTHER;
	if (type != SOCK_STREAM || (domain != AF_INET && domain != AF_INET6))
		return K_OTHER;
	if (proto == IPPROTO_TCP)
		return K_NON_MPTCP;
	if (proto != DD_IPPROTO_MPTCP)
		return K_OTHER;
	/* mptcp(tp) is only true after the MP_CAPABLE handshake. */
	if (getpeername(fd, (struct sockaddr *)&peer, &plen) < 0)
		return K_NON_MPTCP;
	/* A fallback to plain TCP clears it too; pre-6.10 kernels lack 43. */
	l = sizeof(int);
	if (real_getsockopt(fd, DD_SOL_TCP, DD_TCP_IS_MPTCP, &is_mptcp, &l) == 0 &&
	    !is_mptcp)
		return K_NON_MPTCP;
	return K_MPTCP;
}

/* Find or lazily create the table of fd's connection; caller holds `lock`. */
static struct conn *conn_get(int fd)
{
	struct stat st;
	struct conn *c;
	struct subflow *s;
	socklen_t len;

	if (fstat(fd, &st) < 0)
		return NULL;
	for (c = conns; c; c = c->next)
		if (c->dev == st.st_dev && c->ino == st.st_ino)
			return c;
	c = calloc(1, sizeof(*c));
	s = calloc(1, sizeof(*s));
	if (!c || !s)
		goto fail;
	len = sizeof(s->local);
	if (getsockname(fd, (struct sockaddr *)&s->local, &len) < 0)
		goto fail;
	len = sizeof(s->remote);
	if (getpeername(fd, (struct sockaddr *)&s->remote, &len) < 0)
		goto fail;
	c->dev = st.st_dev;
	c->ino = st.st_ino;
	c->family = s->local.ss_family;
	s->id = 1;
	s->state = SUB_ESTABLISHED;
	c->subs = s;
	c->next_id = 2;
	c->next = conns;
	conns = c;
	return c;
fail:
	free(c);
	free(s);
	return NULL;
}

static struct subflow *sub_find(struct conn *c, uint8_t id)
{
	struct subflow *s;

	for (s = c->subs; s; s = s->next)
		if (s->id == id)
			return s;
	return NULL;
}

static unsigned sub_count(struct conn *c)
{
	unsigned n = 0;
	struct subflow *s;

	for (s = c->subs; s; s = s->next)
		n++;
	return n;
}

static socklen_t sa_len(int family)
{
	return family == AF_INET6 ? sizeof(struct sockaddr_in6)
				  : sizeof(struct sockaddr_in);
}

static uint16_t sa_port(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET6)
		return ((const struct sockaddr_in6 *)ss)->sin6_port;
	return ((const struct sockaddr_in *)ss)->sin_port;
}

static void sa_set_port(struct sockaddr_storage *ss, uint16_t port)
{
	if (ss->ss_family == AF_INET6)
		((struct sockaddr_in6 *)ss)->sin6_port = port;
	else
		((struct sockaddr_in *)ss)->sin_port = port;
}

/* Same address and port (not flowinfo/scope/padding). */
static int sa_same(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family || sa_port(a) != sa_port(b))
		return 0;
	if (a->ss_family == AF_INET6)
		return !memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
			       &((const struct sockaddr_in6 *)b)->sin6_addr,
			       sizeof(struct in6_addr));
	return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
	       ((const struct sockaddr_in *)b)->sin_addr.s_addr;
}

/* ---- the operations (caller holds `lock`; return 0 or a positive errno) -- */

/* Kernel int-option semantics: copies min(len, 4) bytes, writes len back. */
static int put_int(int val, void *optval, socklen_t *optlen)
{
	socklen_t len = *optlen < sizeof(int) ? *optlen : sizeof(int);

	memcpy(optval, &val, len);
	*optlen = len;
	return 0;
}

static int get_sub_ids(struct conn *c, void *optval, socklen_t *optlen)
{
	unsigned n = sub_count(c), i = 0;
	struct mptcp_sub_ids *ids = optval;
	uint8_t *out = optval;
	struct subflow *s;

	/* The fork does not tell the caller how much it needed. */
	if (*optlen < 2 + 2 * n)
		return EINVAL;
	ids->sub_count = (uint8_t)n;
	out[1] = 0; /* padding before sub_status[] */
	for (s = c->subs; s; s = s->next, i++) {
		/* slave_sk and low_prio are never initialised by the fork. */
		uint8_t bits = (uint8_t)rnd() & (SUB_SLAVE_SK | SUB_LOW_PRIO);

		if (s->state == SUB_JUST_OPENED) {
			bits |= SUB_PRE_ESTABLISHED | SUB_ATTACHED;
			s->state = SUB_ESTABLISHED;
		} else {
			bits |= SUB_FULLY_ESTABLISHED | SUB_ATTACHED;
		}
		out[2 + 2 * i] = s->id;
		out[2 + 2 * i + 1] = bits;
	}
	*optlen = 2 + 2 * n;
	return 0;
}

/* Writes one sockaddr the way the fork copies it: with its padding garbage. */
static void put_sa(uint8_t *dst, const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET6) {
		struct sockaddr_in6 sin6;

		memcpy(&sin6, ss, sizeof(sin6));
		garbage(&sin6.sin6_flowinfo, sizeof(sin6.sin6_flowinfo));
		garbage(&sin6.sin6_scope_id, sizeof(sin6.sin6_scope_id));
		memcpy(dst, &sin6, sizeof(sin6));
	} else {
		struct sockaddr_in sin;

		memcpy(&sin, ss, sizeof(sin));
		garbage(sin.sin_zero, sizeof(sin.sin_zero));
		memcpy(dst, &sin, sizeof(sin));
	}
}

/*
 * The size check is per family: 1 + 2*sizeof(sockaddr_in) = 33 for an IPv4
 * subflow, 1 + 2*sizeof(sockaddr_in6) = 57 for IPv6 (the fork refuses a shorter
 * buffer with EINVAL).  A 57-byte buffer always works.
 */
static int get_sub_tuple(struct conn *c, void *optval, socklen_t *optlen)
{
	struct mptcp_sub_tuple *t = optval;
	struct subflow *s;
	socklen_t salen;

	if (*optlen < sizeof(struct mptcp_sub_tuple))
		return EINVAL; /* not even room for the id */
	s = sub_find(c, t->id);
	if (!s)
		return EINVAL;
	salen = sa_len(s->local.ss_family);
	if (*optlen < TUPLE_LEN(salen))
		return EINVAL;
	put_sa(t->addrs, &s->local);
	put_sa(t->addrs + salen, &s->remote);
	*optlen = TUPLE_LEN(salen);
	return 0;
}

/* Is this local (addr, port) taken by a fake subflow of any connection?  On
 * the fork every subflow is a real bound socket, so bind() would say so. */
static int local_in_use(const struct sockaddr_storage *local)
{
	struct conn *c;
	struct subflow *s;

	for (c = conns; c; c = c->next)
		for (s = c->subs; s; s = s->next)
			if (sa_same(&s->local, local))
				return 1;
	return 0;
}

/*
 * optlen picks the family (33 = IPv4, 57 = IPv6).  Choice: both sockaddrs'
 * family fields must name that family and it must be the connection's family,
 * else EINVAL (the double does not model IPv4 subflows of an IPv6 meta socket).
 * The local address is checked by a real bind() of a throwaway TCP socket, so
 * EADDRNOTAVAIL / EADDRINUSE / EACCES are the kernel's own.  Nothing is written
 * back: the fork returns no id.
 */
static int open_sub_tuple(struct conn *c, int fd, void *optval, socklen_t *optlen)
{
	struct mptcp_sub_tuple *t = optval;
	struct sockaddr_storage local, remote;
	struct subflow *s, **tail;
	socklen_t salen, len;
	int family, probe, err = 0;

	if (*optlen == TUPLE_LEN(sizeof(struct sockaddr_in)))
		family = AF_INET;
	else if (*optlen == TUPLE_LEN(sizeof(struct sockaddr_in6)))
		family = AF_INET6;
	else
		return EINVAL;
	salen = sa_len(family);
	memset(&local, 0, sizeof(local));
	memset(&remote, 0, sizeof(remote));
	memcpy(&local, t->addrs, salen);
	memcpy(&remote, t->addrs + salen, salen);
	if (local.ss_family != family || remote.ss_family != family ||
	    family != c->family)
		return EINVAL;
	if (c->next_id > 255)
		return ENOSPC; /* the double's limit (u8 ids, never reused) */

	if (sa_port(&local) && local_in_use(&local))
		return EADDRINUSE;
	probe = socket(family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
	if (probe < 0)
		return errno;
	if (bind(probe, (struct sockaddr *)&local, salen) < 0) {
		err = errno;
	} else if (!sa_port(&local)) {
		/* Ephemeral port: take the one the kernel just picked. */
		struct sockaddr_storage bound;

		len = sizeof(bound);
		if (getsockname(probe, (struct sockaddr *)&bound, &len) < 0)
			err = errno;
		else
			sa_set_port(&local, sa_port(&bound));
	}
	close(probe);
	if (err)
		return err;
	if (!sa_port(&remote)) {
		struct sockaddr_storage peer;

		len = sizeof(peer);
		if (getpeername(fd, (struct sockaddr *)&peer, &len) < 0)
			return errno;
		sa_set_port(&remote, sa_port(&peer));
	}

	s = calloc(1, sizeof(*s));
	if (!s)
		return ENOMEM;
	s->id = (uint8_t)c->next_id++;
	s->state = SUB_JUST_OPENED;
	s->local = local;
	s->remote = remote;
	for (tail = &c->subs; *tail; tail = &(*tail)->next)
		;
	*tail = s;
	return 0;
}

/* Closing id 1 (the initial subflow) or the last subflow is allowed. */
static int close_sub_id(struct conn *c, const void *optval, socklen_t optlen)
{
	const struct mptcp_close_sub_id *cs = optval;
	struct subflow **pp, *s;

	if (optlen != sizeof(struct mptcp_close_sub_id)) {
		/* The fork copies optlen bytes into a 1-byte stack variable. */
		if (optlen > sizeof(struct mptcp_close_sub_id))
			fprintf(stderr,
				"draft_double: CLOSE_SUB_ID optlen %u would overflow "
				"the fork's kernel stack\n", (unsigned)optlen);
		return EINVAL;
	}
	for (pp = &c->subs; (s = *pp); pp = &s->next) {
		if (s->id == cs->id) {
			*pp = s->next;
			free(s);
			return 0;
		}
	}
	return EINVAL;
}

/*
 * The fork forwards to the subflow's tcp_getsockopt / tcp_setsockopt, which
 * only knows SOL_TCP and (through icsk_af_ops) IPPROTO_IP / IPPROTO_IPV6:
 * anything else, SOL_SOCKET included, is ENOPROTOOPT.  The double has no
 * per-subflow sockets, so those levels go to the real connection socket;
 * mainline's MPTCP socket supports fewer SOL_TCP options than a subflow, so an
 * unusual option may get mainline's EOPNOTSUPP instead of the fork's answer.
 */
static int sub_level_ok(int level)
{
	return level == DD_SOL_TCP || level == IPPROTO_IP || level == IPPROTO_IPV6;
}

/* Returns a positive errno, or -1 when the forwarded call was made (its own
 * errno is then already set and *ret holds its result). */
static int sub_getsockopt(struct conn *c, int fd, const void *optval,
			  socklen_t optlen, int *ret)
{
	struct mptcp_sub_getsockopt g;

	if (optlen != sizeof(g))
		return EINVAL;
	memcpy(&g, optval, sizeof(g));
	if (!sub_find(c, g.id))
		return EINVAL;
	if (!sub_level_ok(g.level))
		return ENOPROTOOPT;
	*ret = real_getsockopt(fd, g.level, g.optname, g.optval, (socklen_t *)g.optlen);
	return -1;
}

static int sub_setsockopt(struct conn *c, int fd, const void *optval,
			  socklen_t optlen, int *ret)
{
	struct mptcp_sub_setsockopt st;

	if (optlen != sizeof(st))
		return EINVAL;
	if (!optval)
		return EFAULT;
	memcpy(&st, optval, sizeof(st));
	if (!sub_find(c, st.id))
		return EINVAL;
	if (!sub_level_ok(st.level))
		return ENOPROTOOPT;
	*ret = real_setsockopt(fd, st.level, st.optname, st.optval, st.optlen);
	return -1;
}

/* ---- the interposed entry points ---------------------------------------- */

static void maybe_sleep(void)
{
	struct timespec ts;

	if (sleep_ms <= 0)
		return;
	ts.tv_sec = sleep_ms / 1000;
	ts.tv_nsec = (sleep_ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int finish(const char *call, int fd, int optname, unsigned optlen_in,
		  int ret, int err)
{
	if (log_calls)
		fprintf(stderr,
			"draft_double: %s(fd=%d, SOL_TCP, %d %s, optlen=%u) = %d errno=%d (%s)\n",
			call, fd, optname, optname_str(optname), optlen_in, ret,
			ret < 0 ? err : 0, ret < 0 ? strerror(err) : "OK");
	if (ret < 0)
		errno = err;
	return ret;
}

int getsockopt(int fd, int level, int optname, void *optval, socklen_t *optlen)
{
	int saved_errno = errno, err = 0, ret = 0;
	unsigned optlen_in;
	enum kind kind;
	struct conn *c;

	if (!real_getsockopt)
		dd_init();
	if (!is_draft_getopt(level, optname))
		return real_getsockopt(fd, level, optname, optval, optlen);
	kind = classify(fd);
	if (kind == K_OTHER) {
		errno = saved_errno;
		return real_getsockopt(fd, level, optname, optval, optlen);
	}
	maybe_sleep();
	/* Bad pointers other than NULL crash here instead of giving EFAULT. */
	if (!optlen || (!optval && *optlen))
		return finish("getsockopt", fd, optname, optlen ? *optlen : 0, -1,
			      EFAULT);
	optlen_in = *optlen;

	if (optname == MPTCP_ENABLED) {
		put_int(kind == K_MPTCP, optval, optlen);
		errno = saved_errno;
		return finish("getsockopt", fd, optname, optlen_in, 0, 0);
	}
	if (kind != K_MPTCP)
		return finish("getsockopt", fd, optname, optlen_in, -1, EOPNOTSUPP);

	pthread_mutex_lock(&lock);
	errno = 0;
	c = conn_get(fd);
	if (!c) {
		err = errno ? errno : ENOMEM;
	} else {
		switch (optname) {
		case MPTCP_GET_SUB_IDS:
			err = get_sub_ids(c, optval, optlen);
			break;
		case MPTCP_CLOSE_SUB_ID:
			err = close_sub_id(c, optval, *optlen);
			break;
		case MPTCP_GET_SUB_TUPLE:
			err = get_sub_tuple(c, optval, optlen);
			break;
		case MPTCP_OPEN_SUB_TUPLE:
			err = open_sub_tuple(c, fd, optval, optlen);
			break;
		case MPTCP_SUB_GETSOCKOPT:
			/* The forwarded call runs under the lock so a concurrent
			 * CLOSE_SUB_ID cannot interleave, as on the fork. */
			err = sub_getsockopt(c, fd, optval, *optlen, &ret);
			break;
		default:
			/* 70 does not exist, 72 is set-only: tcp_getsockopt's
			 * default branch. */
			err = ENOPROTOOPT;
			break;
		}
	}
	if (err == -1) /* forwarded: keep the real call's result and errno */
		err = errno;
	else if (err)
		ret = -1;
	pthread_mutex_unlock(&lock);
	if (!ret)
		errno = saved_errno;
	return finish("getsockopt", fd, optname, optlen_in, ret, err);
}

int setsockopt(int fd, int level, int optname, const void *optval, socklen_t optlen)
{
	int saved_errno = errno, err, ret = 0;
	enum kind kind;
	struct conn *c;

	if (!real_setsockopt)
		dd_init();
	if (level != DD_SOL_TCP || optname != MPTCP_SUB_SETSOCKOPT)
		return real_setsockopt(fd, level, optname, optval, optlen);
	kind = classify(fd);
	if (kind == K_OTHER) {
		errno = saved_errno;
		return real_setsockopt(fd, level, optname, optval, optlen);
	}
	if (kind == K_NON_MPTCP) {
		/* The fork takes the socket lock, sees !mptcp(tp) and returns
		 * without releasing it: every later call on the socket hangs.
		 * A hang is useless in a test; die loudly instead. */
		fprintf(stderr, "draft_double: SUB_SETSOCKOPT on a non-MPTCP socket "
				"would lock it forever in the fork (fd %d)\n", fd);
		abort();
	}
	maybe_sleep();

	pthread_mutex_lock(&lock);
	errno = 0;
	c = conn_get(fd);
	if (!c)
		err = errno ? errno : ENOMEM;
	else
		err = sub_setsockopt(c, fd, optval, optlen, &ret);
	if (err == -1)
		err = errno;
	else if (err)
		ret = -1;
	pthread_mutex_unlock(&lock);
	if (!ret)
		errno = saved_errno;
	return finish("setsockopt", fd, optname, optlen, ret, err);
}
