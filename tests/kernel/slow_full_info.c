/*
 * slow_full_info.c - an LD_PRELOAD shim for the GIL tests of the read path.
 *
 * Every getsockopt(SOL_MPTCP, MPTCP_FULL_INFO) sleeps SLOW_FULL_INFO_MS
 * milliseconds, then makes the real call on the real kernel. The upstream
 * call only blocks that long when another context holds the socket lock, which
 * a test cannot arrange on demand; this stands in for that wait.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#define SOL_MPTCP_ 284
#define MPTCP_FULL_INFO_ 4

int getsockopt(int fd, int level, int optname, void *optval, socklen_t *optlen)
{
	static int (*real)(int, int, int, void *, socklen_t *);
	const char *ms;

	if (!real)
		real = (int (*)(int, int, int, void *, socklen_t *))dlsym(RTLD_NEXT, "getsockopt");
	ms = getenv("SLOW_FULL_INFO_MS");
	if (ms && level == SOL_MPTCP_ && optname == MPTCP_FULL_INFO_) {
		long n = atol(ms);
		struct timespec ts = { n / 1000, (n % 1000) * 1000000L };

		nanosleep(&ts, NULL);
	}
	return real(fd, level, optname, optval, optlen);
}
