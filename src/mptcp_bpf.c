/* mptcp_bpf.c - see mptcp_bpf.h. Raw bpf(2), no libbpf. */
#define _GNU_SOURCE
#include "mptcp_bpf.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifdef SYS_bpf
#define MBPF_NR_BPF SYS_bpf
#else
#define MBPF_NR_BPF __NR_bpf
#endif

#define BTF_PATH "/sys/kernel/btf/vmlinux"
#define LOG_SIZE (1u << 20)
#define TCP_TIME_WAIT_ 6
#define TCP_NEW_SYN_RECV_ 12

static long sys_bpf(int cmd, void *attr, unsigned size)
{
    return syscall(MBPF_NR_BPF, cmd, attr, size);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void say(char *out, size_t len, const char *fmt, ...)
{
    va_list ap;
    if (!out || !len)
        return;
    va_start(ap, fmt);
    vsnprintf(out, len, fmt, ap);
    va_end(ap);
}

/* ================================================================================
 * The vmlinux BTF reader: one pass over the type section, then member lookups.
 * ============================================================================== */

struct btf {
    const char *types;  /* start of the type section */
    const char *strs;
    uint32_t str_len;
    uint32_t nr;        /* number of types + 1 (id 0 = void) */
    uint32_t *off;      /* off[id] = byte offset of type id in types */
};

static const struct mptcpk_btf_type *btf_t(const struct btf *b, uint32_t id)
{
    return (const struct mptcpk_btf_type *)(b->types + b->off[id]);
}
static unsigned btf_kind(const struct mptcpk_btf_type *t) { return (t->info >> 24) & 0x1f; }
static unsigned btf_vlen(const struct mptcpk_btf_type *t) { return t->info & 0xffff; }
static unsigned btf_kflag(const struct mptcpk_btf_type *t) { return t->info >> 31; }
static const char *btf_name(const struct btf *b, uint32_t off)
{
    return off < b->str_len ? b->strs + off : "";
}

/* bytes following a btf_type of this kind, or -1 for a kind we do not know */
static long btf_extra(const struct mptcpk_btf_type *t)
{
    long v = btf_vlen(t);
    switch (btf_kind(t)) {
    case MPTCPK_BTF_KIND_INT:        return 4;
    case MPTCPK_BTF_KIND_ARRAY:      return sizeof(struct mptcpk_btf_array);
    case MPTCPK_BTF_KIND_STRUCT:
    case MPTCPK_BTF_KIND_UNION:      return v * (long)sizeof(struct mptcpk_btf_member);
    case MPTCPK_BTF_KIND_ENUM:       return v * (long)sizeof(struct mptcpk_btf_enum);
    case MPTCPK_BTF_KIND_FUNC_PROTO: return v * (long)sizeof(struct mptcpk_btf_param);
    case MPTCPK_BTF_KIND_VAR:        return 4;
    case MPTCPK_BTF_KIND_DATASEC:    return v * (long)sizeof(struct mptcpk_btf_var_secinfo);
    case MPTCPK_BTF_KIND_DECL_TAG:   return 4;
    case MPTCPK_BTF_KIND_ENUM64:     return v * (long)sizeof(struct mptcpk_btf_enum64);
    case MPTCPK_BTF_KIND_PTR: case MPTCPK_BTF_KIND_FWD: case MPTCPK_BTF_KIND_TYPEDEF:
    case MPTCPK_BTF_KIND_VOLATILE: case MPTCPK_BTF_KIND_CONST: case MPTCPK_BTF_KIND_RESTRICT:
    case MPTCPK_BTF_KIND_FUNC: case MPTCPK_BTF_KIND_FLOAT: case MPTCPK_BTF_KIND_TYPE_TAG:
        return 0;
    }
    return -1;
}

/* skip typedef/const/volatile/restrict/type_tag */
static uint32_t btf_skip_mods(const struct btf *b, uint32_t id)
{
    for (int guard = 0; id && id < b->nr && guard < 32; guard++) {
        const struct mptcpk_btf_type *t = btf_t(b, id);
        switch (btf_kind(t)) {
        case MPTCPK_BTF_KIND_TYPEDEF: case MPTCPK_BTF_KIND_VOLATILE: case MPTCPK_BTF_KIND_CONST:
        case MPTCPK_BTF_KIND_RESTRICT: case MPTCPK_BTF_KIND_TYPE_TAG:
            id = t->size_or_type;
            continue;
        }
        return id;
    }
    return id < b->nr ? id : 0;
}

static long btf_type_size(const struct btf *b, uint32_t id)
{
    id = btf_skip_mods(b, id);
    if (!id)
        return -1;
    const struct mptcpk_btf_type *t = btf_t(b, id);
    switch (btf_kind(t)) {
    case MPTCPK_BTF_KIND_INT: case MPTCPK_BTF_KIND_ENUM: case MPTCPK_BTF_KIND_ENUM64:
    case MPTCPK_BTF_KIND_STRUCT: case MPTCPK_BTF_KIND_UNION: case MPTCPK_BTF_KIND_FLOAT:
        return t->size_or_type;
    case MPTCPK_BTF_KIND_PTR:
        return 8;
    case MPTCPK_BTF_KIND_ARRAY: {
        const struct mptcpk_btf_array *a = (const void *)(t + 1);
        long e = btf_type_size(b, a->type);
        return e < 0 ? -1 : e * (long)a->nelems;
    }
    }
    return -1;
}

struct member {
    uint32_t bit_off;   /* from the start of the outermost struct */
    uint32_t bit_size;  /* 0 unless a bitfield */
    uint32_t type;
};

/* Member `name` of struct/union `id`, looking into anonymous struct/union members
 * (their offsets add up). */
static int btf_find_member(const struct btf *b, uint32_t id, const char *name,
                           uint32_t base, struct member *out, int depth)
{
    id = btf_skip_mods(b, id);
    if (!id || depth > 8)
        return -1;
    const struct mptcpk_btf_type *t = btf_t(b, id);
    unsigned k = btf_kind(t);
    if (k != MPTCPK_BTF_KIND_STRUCT && k != MPTCPK_BTF_KIND_UNION)
        return -1;
    const struct mptcpk_btf_member *m = (const void *)(t + 1);
    for (unsigned i = 0; i < btf_vlen(t); i++) {
        uint32_t off = btf_kflag(t) ? (m[i].offset & 0xffffff) : m[i].offset;
        uint32_t bsz = btf_kflag(t) ? (m[i].offset >> 24) : 0;
        if (m[i].name_off == 0) {
            if (btf_find_member(b, m[i].type, name, base + off, out, depth + 1) == 0)
                return 0;
            continue;
        }
        if (strcmp(btf_name(b, m[i].name_off), name) == 0) {
            out->bit_off = base + off;
            out->bit_size = bsz;
            out->type = m[i].type;
            return 0;
        }
    }
    return -1;
}

/* a dotted path, e.g. "inet_conn.icsk_ulp_data" */
static int btf_find_path(const struct btf *b, uint32_t id, const char *path, struct member *out)
{
    char part[64];
    uint32_t base = 0;
    const char *p = path;
    for (;;) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (n == 0 || n >= sizeof part)
            return -1;
        memcpy(part, p, n);
        part[n] = 0;
        if (btf_find_member(b, id, part, base, out, 0) < 0)
            return -1;
        if (!dot)
            return 0;
        base = out->bit_off;
        id = out->type;
        p = dot + 1;
    }
}

enum { W_F_ITER_TCP, W_F_RDONLY_CAST, W_S_ITER_CTX, W_S_SKC, W_S_TCP, W_S_SFCTX, W_S_MSK, W_N };
static const struct { const char *name; unsigned kind; } wanted[W_N] = {
    [W_F_ITER_TCP]    = { "bpf_iter_tcp",          MPTCPK_BTF_KIND_FUNC },
    [W_F_RDONLY_CAST] = { "bpf_rdonly_cast",       MPTCPK_BTF_KIND_FUNC },
    [W_S_ITER_CTX]    = { "bpf_iter__tcp",         MPTCPK_BTF_KIND_STRUCT },
    [W_S_SKC]         = { "sock_common",           MPTCPK_BTF_KIND_STRUCT },
    [W_S_TCP]         = { "tcp_sock",              MPTCPK_BTF_KIND_STRUCT },
    [W_S_SFCTX]       = { "mptcp_subflow_context", MPTCPK_BTF_KIND_STRUCT },
    [W_S_MSK]         = { "mptcp_sock",            MPTCPK_BTF_KIND_STRUCT },
};

/* The whole file: mmap'ed where sysfs allows it (about 0.03 ms, against 3 ms for
 * read() of the 5.5 MB file), else read into a malloc'ed buffer. */
static int read_file(const char *path, char **buf, size_t *len, int *mapped)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    int have_size = fstat(fd, &st) == 0 && st.st_size > 0;
    *mapped = 0;
    if (have_size) {
        void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m != MAP_FAILED) {
            close(fd);
            *buf = m;
            *len = (size_t)st.st_size;
            *mapped = 1;
            return 0;
        }
    }
    size_t cap = have_size ? (size_t)st.st_size + 1 : 1u << 22;
    size_t n = 0;
    char *p = malloc(cap);
    if (!p) {
        close(fd);
        return -ENOMEM;
    }
    for (;;) {
        if (n == cap) {
            char *q = realloc(p, cap * 2);
            if (!q) {
                free(p);
                close(fd);
                return -ENOMEM;
            }
            p = q;
            cap *= 2;
        }
        ssize_t r = read(fd, p + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = -errno;
            free(p);
            close(fd);
            return e;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    *buf = p;
    *len = n;
    return 0;
}

static void release_file(char *buf, size_t len, int mapped)
{
    if (mapped)
        munmap(buf, len);
    else
        free(buf);
}

/* A member's byte offset and load size, or -EOPNOTSUPP with a message. */
static int need_member(const struct btf *b, uint32_t sid, const char *sname, const char *path,
                       int32_t *off, uint8_t *size, struct member *mout, char *err, size_t errlen)
{
    struct member m;
    if (btf_find_path(b, sid, path, &m) < 0) {
        say(err, errlen, "BTF: struct %s has no member %s", sname, path);
        return -EOPNOTSUPP;
    }
    if (m.bit_size == 0 && (m.bit_off % 8) != 0) {
        say(err, errlen, "BTF: %s.%s is not byte aligned", sname, path);
        return -EOPNOTSUPP;
    }
    *off = (int32_t)(m.bit_off / 8);
    long s = btf_type_size(b, m.type);
    if (m.bit_size == 0 && s != 1 && s != 2 && s != 4 && s != 8 && size) {
        say(err, errlen, "BTF: %s.%s has size %ld", sname, path, s);
        return -EOPNOTSUPP;
    }
    if (size)
        *size = (uint8_t)s;
    if (mout)
        *mout = m;
    return 0;
}

int mbpf_btf_read(const char *path, struct mbpf_btf_info *out, char *err, size_t errlen)
{
    char *data = NULL;
    size_t len = 0;
    int rc, mapped = 0;

    if (!path)
        path = BTF_PATH;
    memset(out, 0, sizeof *out);
    rc = read_file(path, &data, &len, &mapped);
    if (rc < 0) {
        say(err, errlen, "%s: %s", path, strerror(-rc));
        return rc;
    }
    const struct mptcpk_btf_header *h = (const void *)data;
    if (len < sizeof *h || h->magic != MPTCPK_BTF_MAGIC || h->hdr_len < sizeof *h ||
        (uint64_t)h->hdr_len + h->type_off + h->type_len > len ||
        (uint64_t)h->hdr_len + h->str_off + h->str_len > len) {
        say(err, errlen, "%s: not a BTF file this code understands", path);
        release_file(data, len, mapped);
        return -EINVAL;
    }
    struct btf b = {
        .types = data + h->hdr_len + h->type_off,
        .strs = data + h->hdr_len + h->str_off,
        .str_len = h->str_len,
    };
    /* at most one type per 12 bytes */
    b.off = malloc(sizeof(uint32_t) * (h->type_len / sizeof(struct mptcpk_btf_type) + 2));
    if (!b.off) {
        release_file(data, len, mapped);
        return -ENOMEM;
    }
    uint32_t found[W_N] = { 0 };
    uint32_t pos = 0, id = 1;
    b.off[0] = 0;
    while (pos + sizeof(struct mptcpk_btf_type) <= h->type_len) {
        const struct mptcpk_btf_type *t = (const void *)(b.types + pos);
        long extra = btf_extra(t);
        if (extra < 0 || pos + sizeof *t + (uint64_t)extra > h->type_len) {
            say(err, errlen, "BTF: bad type %u (kind %u) at %u", id, btf_kind(t), pos);
            free(b.off);
            release_file(data, len, mapped);
            return -EINVAL;
        }
        b.off[id] = pos;
        unsigned k = btf_kind(t);
        if ((k == MPTCPK_BTF_KIND_FUNC || k == MPTCPK_BTF_KIND_STRUCT) && t->name_off) {
            const char *n = btf_name(&b, t->name_off);
            for (int w = 0; w < W_N; w++)
                if (!found[w] && wanted[w].kind == k && n[0] == wanted[w].name[0] &&
                    strcmp(n, wanted[w].name) == 0)
                    found[w] = id;
        }
        pos += sizeof *t + (uint32_t)extra;
        id++;
    }
    b.nr = id;

    rc = 0;
    if (!found[W_F_ITER_TCP]) {
        say(err, errlen, "BTF has no FUNC bpf_iter_tcp (the TCP iterator, Linux 5.9)");
        rc = -EOPNOTSUPP;
    } else if (!found[W_S_ITER_CTX] || !found[W_S_SKC] || !found[W_S_TCP]) {
        say(err, errlen, "BTF has no struct bpf_iter__tcp, sock_common or tcp_sock");
        rc = -EOPNOTSUPP;
    } else if (!found[W_S_SFCTX] || !found[W_S_MSK]) {
        say(err, errlen, "BTF has no struct mptcp_subflow_context or mptcp_sock "
            "(a kernel without CONFIG_MPTCP)");
        rc = -EOPNOTSUPP;
    }
    out->id_iter_tcp = found[W_F_ITER_TCP];
    out->id_rdonly_cast = found[W_F_RDONLY_CAST];
    out->id_subflow_ctx = found[W_S_SFCTX];
    out->id_mptcp_sock = found[W_S_MSK];

    uint8_t sz = 0;
    struct member m;
#define NEED(w, sname, path, offp, szp, mp) \
    if (rc == 0) rc = need_member(&b, found[w], sname, path, offp, szp, mp, err, errlen)
#define SIZE_IS(n) \
    if (rc == 0 && sz != (n)) { say(err, errlen, "BTF: a member has an unexpected size"); rc = -EOPNOTSUPP; }
    NEED(W_S_ITER_CTX, "bpf_iter__tcp", "sk_common", &out->ctx_sk_common, &sz, NULL);
    NEED(W_S_SKC, "sock_common", "skc_daddr", &out->skc_daddr, &sz, NULL);
    SIZE_IS(4);
    NEED(W_S_SKC, "sock_common", "skc_rcv_saddr", &out->skc_rcv_saddr, &sz, NULL);
    SIZE_IS(4);
    NEED(W_S_SKC, "sock_common", "skc_dport", &out->skc_dport, &out->sz_dport, NULL);
    NEED(W_S_SKC, "sock_common", "skc_num", &out->skc_num, &out->sz_num, NULL);
    NEED(W_S_SKC, "sock_common", "skc_family", &out->skc_family, &out->sz_family, NULL);
    NEED(W_S_SKC, "sock_common", "skc_state", &out->skc_state, &out->sz_state, NULL);
    NEED(W_S_SKC, "sock_common", "skc_v6_daddr", &out->skc_v6_daddr, NULL, NULL);
    NEED(W_S_SKC, "sock_common", "skc_v6_rcv_saddr", &out->skc_v6_rcv_saddr, NULL, NULL);
    NEED(W_S_TCP, "tcp_sock", "is_mptcp", &out->tp_is_mptcp, &out->sz_is_mptcp, &m);
    if (rc == 0 && m.bit_size) {
        /* a bitfield: load its byte, shift, mask */
        out->tp_is_mptcp = (int32_t)(m.bit_off / 8);
        out->is_mptcp_bit_shift = (uint8_t)(m.bit_off % 8);
        out->is_mptcp_bit_size = (uint8_t)m.bit_size;
        out->sz_is_mptcp = 1;
        if (m.bit_off % 8 + m.bit_size > 8) {
            say(err, errlen, "BTF: tcp_sock.is_mptcp is a bitfield across bytes");
            rc = -EOPNOTSUPP;
        }
    }
    NEED(W_S_TCP, "tcp_sock", "inet_conn.icsk_ulp_data", &out->tp_ulp_data, &sz, NULL);
    SIZE_IS(8);
    NEED(W_S_SFCTX, "mptcp_subflow_context", "conn", &out->sf_conn, &sz, NULL);
    SIZE_IS(8);
    NEED(W_S_MSK, "mptcp_sock", "token", &out->msk_token, &out->sz_token, NULL);
#undef NEED
#undef SIZE_IS
    free(b.off);
    release_file(data, len, mapped);
    return rc;
}

/* ================================================================================
 * The program
 * ============================================================================== */

#define INSN(c, d, s, o, i) \
    ((struct mptcpk_bpf_insn){ .code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i) })
#define MOV64_REG(d, s)      INSN(MPTCPK_BPF_ALU64 | MPTCPK_BPF_MOV | MPTCPK_BPF_X, d, s, 0, 0)
#define MOV64_IMM(d, i)      INSN(MPTCPK_BPF_ALU64 | MPTCPK_BPF_MOV | MPTCPK_BPF_K, d, 0, 0, i)
#define ADD64_IMM(d, i)      INSN(MPTCPK_BPF_ALU64 | MPTCPK_BPF_ADD | MPTCPK_BPF_K, d, 0, 0, i)
#define ALU64_IMM(op, d, i)  INSN(MPTCPK_BPF_ALU64 | (op) | MPTCPK_BPF_K, d, 0, 0, i)
#define BE16(d)              INSN(MPTCPK_BPF_ALU | MPTCPK_BPF_END | MPTCPK_BPF_TO_BE, d, 0, 0, 16)
#define LDX(sz, d, s, o)     INSN(MPTCPK_BPF_LDX | MPTCPK_BPF_MEM | (sz), d, s, o, 0)
#define STX(sz, d, s, o)     INSN(MPTCPK_BPF_STX | MPTCPK_BPF_MEM | (sz), d, s, o, 0)
#define JMP_IMM(op, d, i)    INSN(MPTCPK_BPF_JMP | (op) | MPTCPK_BPF_K, d, 0, 0, i)
#define JMP_REG(op, d, s)    INSN(MPTCPK_BPF_JMP | (op) | MPTCPK_BPF_X, d, s, 0, 0)
#define JA()                 INSN(MPTCPK_BPF_JMP | MPTCPK_BPF_JA, 0, 0, 0, 0)
#define CALL(fn)             INSN(MPTCPK_BPF_JMP | MPTCPK_BPF_CALL, 0, 0, 0, fn)
#define KFUNC(btf_id)        INSN(MPTCPK_BPF_JMP | MPTCPK_BPF_CALL, 0, MPTCPK_BPF_PSEUDO_KFUNC_CALL, 0, btf_id)
#define EXIT()               INSN(MPTCPK_BPF_JMP | MPTCPK_BPF_EXIT, 0, 0, 0, 0)

/* A tiny assembler: jumps name a label; offsets are fixed up at the end. */
struct as {
    struct mptcpk_bpf_insn *p;
    int n, max, bad;
    int label[8];
    struct { int at, label; } fix[48];
    int nfix;
};
enum { LBL_OUT, LBL_V6, LBL_MPTCP, LBL_SET, LBL_STORE, LBL_COUNT };

static void emit(struct as *a, struct mptcpk_bpf_insn i)
{
    if (a->n < a->max)
        a->p[a->n] = i;
    else
        a->bad = 1;
    a->n++;
}
static void jump(struct as *a, struct mptcpk_bpf_insn i, int label)
{
    if (a->nfix < (int)(sizeof a->fix / sizeof a->fix[0])) {
        a->fix[a->nfix].at = a->n;
        a->fix[a->nfix].label = label;
        a->nfix++;
    } else {
        a->bad = 1;
    }
    emit(a, i);
}
static void here(struct as *a, int label) { a->label[label] = a->n; }

static int ldsz(int bytes)
{
    return bytes == 1 ? MPTCPK_BPF_B : bytes == 2 ? MPTCPK_BPF_H
         : bytes == 4 ? MPTCPK_BPF_W : MPTCPK_BPF_DW;
}

#define RQ(f) ((int16_t)offsetof(struct mptcpk_bpf_req, f))
#ifndef AF_INET6
#define AF_INET6 10
#endif

/* Registers: r7 = struct sock_common * (ctx->sk_common), r8 = &map value
 * (struct mptcpk_bpf_req). Verifier rules this layout meets (6.18): sk_common and
 * the bpf_skc_to_tcp_sock result are NULL-checked; icsk_ulp_data and conn are plain
 * numbers to the verifier, so they are cast (kfunc) or copied (probe_read) before
 * a load; optlen has a known range of at least 1 for the helpers' size argument. */
int mbpf_build_prog(const struct mbpf_btf_info *b, int map_fd, int use_kfunc,
                    struct mptcpk_bpf_insn *out, int max)
{
    struct as a = { .p = out, .max = max };
    for (int i = 0; i < LBL_COUNT; i++)
        a.label[i] = -1;

    /* r7 = ctx->sk_common; NULL for the end-of-iteration call */
    emit(&a, LDX(MPTCPK_BPF_DW, 7, 1, b->ctx_sk_common));
    jump(&a, JMP_IMM(MPTCPK_BPF_JEQ, 7, 0), LBL_OUT);
    /* r8 = &request: ld_imm64 of the array map's value address (entry 0) */
    emit(&a, INSN(MPTCPK_BPF_LD | MPTCPK_BPF_DW | MPTCPK_BPF_IMM, 8, MPTCPK_BPF_PSEUDO_MAP_VALUE, 0, map_fd));
    emit(&a, INSN(0, 0, 0, 0, 0));
    /* family */
    emit(&a, LDX(ldsz(b->sz_family), 1, 7, b->skc_family));
    emit(&a, LDX(MPTCPK_BPF_W, 2, 8, RQ(family)));
    jump(&a, JMP_REG(MPTCPK_BPF_JNE, 1, 2), LBL_OUT);
    /* skip TIME_WAIT and NEW_SYN_RECV: not full sockets */
    emit(&a, LDX(ldsz(b->sz_state), 2, 7, b->skc_state));
    jump(&a, JMP_IMM(MPTCPK_BPF_JEQ, 2, TCP_TIME_WAIT_), LBL_OUT);
    jump(&a, JMP_IMM(MPTCPK_BPF_JEQ, 2, TCP_NEW_SYN_RECV_), LBL_OUT);
    /* local port (host order in both) */
    emit(&a, LDX(ldsz(b->sz_num), 2, 7, b->skc_num));
    emit(&a, LDX(MPTCPK_BPF_H, 3, 8, RQ(sport)));
    jump(&a, JMP_REG(MPTCPK_BPF_JNE, 2, 3), LBL_OUT);
    /* remote port: network order in the socket, host order in the request */
    emit(&a, LDX(ldsz(b->sz_dport), 2, 7, b->skc_dport));
    emit(&a, BE16(2));
    emit(&a, LDX(MPTCPK_BPF_H, 3, 8, RQ(dport)));
    jump(&a, JMP_REG(MPTCPK_BPF_JNE, 2, 3), LBL_OUT);
    jump(&a, JMP_IMM(MPTCPK_BPF_JEQ, 1, AF_INET6), LBL_V6);
    /* IPv4 addresses */
    emit(&a, LDX(MPTCPK_BPF_W, 2, 7, b->skc_daddr));
    emit(&a, LDX(MPTCPK_BPF_W, 3, 8, RQ(daddr)));
    jump(&a, JMP_REG(MPTCPK_BPF_JNE, 2, 3), LBL_OUT);
    emit(&a, LDX(MPTCPK_BPF_W, 2, 7, b->skc_rcv_saddr));
    emit(&a, LDX(MPTCPK_BPF_W, 3, 8, RQ(saddr)));
    jump(&a, JMP_REG(MPTCPK_BPF_JNE, 2, 3), LBL_OUT);
    jump(&a, JA(), LBL_MPTCP);
    /* IPv6 addresses: two 8-byte words each */
    here(&a, LBL_V6);
    for (int w = 0; w < 2; w++) {
        emit(&a, LDX(MPTCPK_BPF_DW, 2, 7, b->skc_v6_daddr + 8 * w));
        emit(&a, LDX(MPTCPK_BPF_DW, 3, 8, RQ(daddr) + 8 * w));
        jump(&a, JMP_REG(MPTCPK_BPF_JNE, 2, 3), LBL_OUT);
        emit(&a, LDX(MPTCPK_BPF_DW, 2, 7, b->skc_v6_rcv_saddr + 8 * w));
        emit(&a, LDX(MPTCPK_BPF_DW, 3, 8, RQ(saddr) + 8 * w));
        jump(&a, JMP_REG(MPTCPK_BPF_JNE, 2, 3), LBL_OUT);
    }
    /* an MPTCP subflow of the requested connection? */
    here(&a, LBL_MPTCP);
    emit(&a, MOV64_REG(1, 7));
    emit(&a, CALL(MPTCPK_BPF_FN_SKC_TO_TCP_SOCK));
    jump(&a, JMP_IMM(MPTCPK_BPF_JEQ, 0, 0), LBL_OUT);
    emit(&a, LDX(ldsz(b->sz_is_mptcp), 1, 0, b->tp_is_mptcp));
    if (b->is_mptcp_bit_size) {
        if (b->is_mptcp_bit_shift)
            emit(&a, ALU64_IMM(MPTCPK_BPF_RSH, 1, b->is_mptcp_bit_shift));
        emit(&a, ALU64_IMM(MPTCPK_BPF_AND, 1, (1 << b->is_mptcp_bit_size) - 1));
    }
    jump(&a, JMP_IMM(MPTCPK_BPF_JEQ, 1, 0), LBL_OUT);
    /* r1 = icsk_ulp_data, the mptcp_subflow_context */
    emit(&a, LDX(MPTCPK_BPF_DW, 1, 0, b->tp_ulp_data));
    jump(&a, JMP_IMM(MPTCPK_BPF_JEQ, 1, 0), LBL_OUT);
    if (use_kfunc) {
        /* conn = bpf_rdonly_cast(ulp, mptcp_subflow_context)->conn */
        emit(&a, MOV64_IMM(2, (int32_t)b->id_subflow_ctx));
        emit(&a, KFUNC((int32_t)b->id_rdonly_cast));
        emit(&a, LDX(MPTCPK_BPF_DW, 1, 0, b->sf_conn));
        jump(&a, JMP_IMM(MPTCPK_BPF_JEQ, 1, 0), LBL_OUT);
        /* r1 = bpf_rdonly_cast(conn, mptcp_sock)->token */
        emit(&a, MOV64_IMM(2, (int32_t)b->id_mptcp_sock));
        emit(&a, KFUNC((int32_t)b->id_rdonly_cast));
        emit(&a, LDX(ldsz(b->sz_token), 1, 0, b->msk_token));
    } else {
        /* bpf_probe_read_kernel(fp-8, 8, ulp + conn) */
        emit(&a, MOV64_REG(3, 1));
        emit(&a, ADD64_IMM(3, b->sf_conn));
        emit(&a, MOV64_REG(1, 10));
        emit(&a, ADD64_IMM(1, -8));
        emit(&a, MOV64_IMM(2, 8));
        emit(&a, CALL(MPTCPK_BPF_FN_PROBE_READ_KERNEL));
        jump(&a, JMP_IMM(MPTCPK_BPF_JNE, 0, 0), LBL_OUT);
        emit(&a, LDX(MPTCPK_BPF_DW, 3, 10, -8));
        jump(&a, JMP_IMM(MPTCPK_BPF_JEQ, 3, 0), LBL_OUT);
        /* bpf_probe_read_kernel(fp-8, sizeof token, conn + token) */
        emit(&a, ADD64_IMM(3, b->msk_token));
        emit(&a, MOV64_REG(1, 10));
        emit(&a, ADD64_IMM(1, -8));
        emit(&a, MOV64_IMM(2, b->sz_token));
        emit(&a, CALL(MPTCPK_BPF_FN_PROBE_READ_KERNEL));
        jump(&a, JMP_IMM(MPTCPK_BPF_JNE, 0, 0), LBL_OUT);
        emit(&a, LDX(ldsz(b->sz_token), 1, 10, -8));
    }
    emit(&a, LDX(MPTCPK_BPF_W, 2, 8, RQ(token)));
    jump(&a, JMP_REG(MPTCPK_BPF_JNE, 1, 2), LBL_OUT);

    /* matched: count it, then the option, straight on the map value */
    emit(&a, LDX(MPTCPK_BPF_W, 1, 8, RQ(matched)));
    emit(&a, ADD64_IMM(1, 1));
    emit(&a, STX(MPTCPK_BPF_W, 8, 1, RQ(matched)));
    emit(&a, MOV64_IMM(0, -EINVAL));
    emit(&a, LDX(MPTCPK_BPF_W, 5, 8, RQ(optlen)));
    jump(&a, JMP_IMM(MPTCPK_BPF_JGT, 5, MPTCPK_BPF_VALUE_MAX), LBL_STORE);
    jump(&a, JMP_IMM(MPTCPK_BPF_JLT, 5, 1), LBL_STORE);
    emit(&a, LDX(MPTCPK_BPF_W, 2, 8, RQ(level)));
    emit(&a, LDX(MPTCPK_BPF_W, 3, 8, RQ(optname)));
    emit(&a, MOV64_REG(4, 8));
    emit(&a, ADD64_IMM(4, RQ(value)));
    emit(&a, MOV64_REG(1, 7));
    emit(&a, LDX(MPTCPK_BPF_W, 6, 8, RQ(op)));
    jump(&a, JMP_IMM(MPTCPK_BPF_JEQ, 6, MPTCPK_BPF_OP_SET), LBL_SET);
    emit(&a, CALL(MPTCPK_BPF_FN_GETSOCKOPT));
    jump(&a, JA(), LBL_STORE);
    here(&a, LBL_SET);
    emit(&a, CALL(MPTCPK_BPF_FN_SETSOCKOPT));
    here(&a, LBL_STORE);
    emit(&a, STX(MPTCPK_BPF_W, 8, 0, RQ(ret)));
    here(&a, LBL_OUT);
    emit(&a, MOV64_IMM(0, 0));
    emit(&a, EXIT());

    if (a.bad)
        return -ENOSPC;
    for (int i = 0; i < a.nfix; i++) {
        int l = a.label[a.fix[i].label];
        if (l < 0)
            return -EINVAL;
        a.p[a.fix[i].at].off = (int16_t)(l - (a.fix[i].at + 1));
    }
    return a.n;
}

/* The verifier's verdict: the last line of its log that is not a statistic. */
static void log_last_line(const char *log, char *out, size_t outlen)
{
    out[0] = 0;
    const char *best = NULL, *best_end = NULL, *p = log;
    while (p && *p) {
        const char *e = strchr(p, '\n');
        if (!e)
            e = p + strlen(p);
        if (e > p && strncmp(p, "processed ", 10) != 0 &&
            strncmp(p, "verification time", 17) != 0 && strncmp(p, "stack depth", 11) != 0) {
            best = p;
            best_end = e;
        }
        p = *e ? e + 1 : e;
    }
    if (best) {
        size_t n = (size_t)(best_end - best);
        if (n >= outlen)
            n = outlen - 1;
        memcpy(out, best, n);
        out[n] = 0;
    }
}

/* Load the program; on a verifier refusal, its last line goes to verdict. */
static int prog_load(const struct mptcpk_bpf_insn *insns, int cnt, uint32_t attach_btf_id,
                     char *verdict, size_t verdictlen)
{
    static const char license[] = "GPL";
    struct mptcpk_bpf_prog_load attr;
    memset(&attr, 0, sizeof attr);
    attr.prog_type = MPTCPK_BPF_PROG_TYPE_TRACING;
    attr.expected_attach_type = MPTCPK_BPF_TRACE_ITER;
    attr.attach_btf_id = attach_btf_id;
    attr.insn_cnt = (uint32_t)cnt;
    attr.insns = (uint64_t)(uintptr_t)insns;
    attr.license = (uint64_t)(uintptr_t)license;
    memcpy(attr.prog_name, "mptcp_sf_opt", 13);
    /* first without a log (faster), again with one only when refused */
    int fd = (int)sys_bpf(MPTCPK_BPF_PROG_LOAD, &attr, sizeof attr);
    if (fd >= 0)
        return fd;
    int e = errno;
    verdict[0] = 0;
    if (e == EINVAL || e == EACCES || e == ENOSPC || e == E2BIG) {
        char *log = malloc(LOG_SIZE);
        if (log) {
            log[0] = 0;
            attr.log_level = 1;
            attr.log_buf = (uint64_t)(uintptr_t)log;
            attr.log_size = LOG_SIZE;
            fd = (int)sys_bpf(MPTCPK_BPF_PROG_LOAD, &attr, sizeof attr);
            if (fd >= 0) {
                free(log);
                return fd;
            }
            log_last_line(log, verdict, verdictlen);
            free(log);
        }
    }
    return -e;
}

/* ================================================================================
 * open / call / close
 * ============================================================================== */

void mbpf_init(struct mbpf *st)
{
    memset(st, 0, sizeof *st);
    st->map_fd = st->prog_fd = st->link_fd = -1;
    pthread_mutex_init(&st->lock, NULL);
}

static int fail(struct mbpf_error *err, int stage, int rc)
{
    err->stage = stage;
    return rc;
}

static void close_fds(struct mbpf *st)
{
    if (st->link_fd >= 0)
        close(st->link_fd);
    if (st->prog_fd >= 0)
        close(st->prog_fd);
    if (st->map_fd >= 0)
        close(st->map_fd);
    st->link_fd = st->prog_fd = st->map_fd = -1;
}

static int open_locked(struct mbpf *st, unsigned flags, struct mbpf_error *err)
{
    uint64_t t = now_ns();
    int rc;

    close_fds(st);
    err->message[0] = 0;
    rc = mbpf_btf_read(NULL, &st->btf, err->message, sizeof err->message);
    st->ns_btf = now_ns() - t;
    if (rc < 0)
        return fail(err, rc == -EOPNOTSUPP ? MBPF_STAGE_BTF_LOOKUP :
                        rc == -EINVAL ? MBPF_STAGE_BTF_PARSE : MBPF_STAGE_BTF_OPEN, rc);

    t = now_ns();
    struct mptcpk_bpf_map_create ma;
    memset(&ma, 0, sizeof ma);
    ma.map_type = MPTCPK_BPF_MAP_TYPE_ARRAY;
    ma.key_size = 4;
    ma.value_size = sizeof(struct mptcpk_bpf_req);
    ma.max_entries = 1;
    memcpy(ma.map_name, "mptcp_sf_req", 13);
    st->map_fd = (int)sys_bpf(MPTCPK_BPF_MAP_CREATE, &ma, sizeof ma);
    if (st->map_fd < 0) {
        rc = -errno;
        say(err->message, sizeof err->message, "BPF_MAP_CREATE: %s", strerror(-rc));
        return fail(err, MBPF_STAGE_MAP_CREATE, rc);
    }
    st->ns_map = now_ns() - t;

    /* The kfunc program first (lockdown may forbid probe_read); probe_read where
     * the kernel has no bpf_rdonly_cast (before 6.2) or refuses the kfunc one. */
    t = now_ns();
    struct mptcpk_bpf_insn insns[160];
    int want_kfunc = !(flags & 1u) && st->btf.id_rdonly_cast;
    char verdict[200];
    for (int kf = want_kfunc; kf >= 0; kf--) {
        int n = mbpf_build_prog(&st->btf, st->map_fd, kf, insns, (int)(sizeof insns / sizeof insns[0]));
        if (n < 0) {
            say(err->message, sizeof err->message, "the program does not fit its buffer");
            close_fds(st);
            return fail(err, MBPF_STAGE_PROG_LOAD, n);
        }
        int fd = prog_load(insns, n, st->btf.id_iter_tcp, verdict, sizeof verdict);
        if (fd >= 0) {
            st->prog_fd = fd;
            st->use_kfunc = kf;
            st->insn_cnt = n;
            break;
        }
        rc = fd;
        say(err->message, sizeof err->message, "BPF_PROG_LOAD: %s%s%s", strerror(-fd),
            verdict[0] ? ": verifier: " : "", verdict);
        if (fd == -EPERM)
            break;
    }
    if (st->prog_fd < 0) {
        close_fds(st);
        return fail(err, MBPF_STAGE_PROG_LOAD, rc);
    }
    st->ns_prog = now_ns() - t;

    t = now_ns();
    struct mptcpk_bpf_link_create la;
    memset(&la, 0, sizeof la);
    la.prog_fd = (uint32_t)st->prog_fd;
    la.attach_type = MPTCPK_BPF_TRACE_ITER;
    st->link_fd = (int)sys_bpf(MPTCPK_BPF_LINK_CREATE, &la, sizeof la);
    if (st->link_fd < 0) {
        rc = -errno;
        say(err->message, sizeof err->message, "BPF_LINK_CREATE: %s", strerror(-rc));
        close_fds(st);
        return fail(err, MBPF_STAGE_LINK_CREATE, rc);
    }
    st->ns_link = now_ns() - t;
    st->flags = flags;
    err->message[0] = 0;
    err->stage = MBPF_STAGE_NONE;
    return 0;
}

int mbpf_open(struct mbpf *st, unsigned flags, struct mbpf_error *err)
{
    int rc = 0;
    err->stage = MBPF_STAGE_NONE;
    err->message[0] = 0;
    pthread_mutex_lock(&st->lock);
    if (st->link_fd < 0)  /* loaded meanwhile by another thread: nothing to do */
        rc = open_locked(st, flags, err);
    pthread_mutex_unlock(&st->lock);
    return rc;
}

static int iter_create_here(int link_fd)
{
    struct mptcpk_bpf_iter_create ic;
    memset(&ic, 0, sizeof ic);
    ic.link_fd = (uint32_t)link_fd;
    return (int)sys_bpf(MPTCPK_BPF_ITER_CREATE, &ic, sizeof ic);
}

struct iter_job {
    int link_fd, netns_fd;
    int fd, err, stage;
};

static void *iter_job_run(void *arg)
{
    struct iter_job *job = arg;
    /* This thread only: it enters the namespace, creates the iterator there and
     * ends, so no thread of the process is ever left in the other namespace. */
    if (setns(job->netns_fd, CLONE_NEWNET) != 0) {
        job->err = -errno;
        job->stage = MBPF_STAGE_NETNS;
        return NULL;
    }
    job->fd = iter_create_here(job->link_fd);
    if (job->fd < 0) {
        job->err = -errno;
        job->stage = MBPF_STAGE_ITER_CREATE;
    }
    return NULL;
}

/* BPF_ITER_CREATE in the namespace of netns_fd, or the calling thread's when < 0.
 * The iterator walks the namespace current at its creation; another namespace is
 * entered by a short-lived thread of its own (about 50 us, on that path only). */
static int iter_create(struct mbpf *st, int netns_fd, struct mbpf_error *err)
{
    struct iter_job job = {st->link_fd, netns_fd, -1, 0, MBPF_STAGE_NONE};
    pthread_t thread;
    int rc;

    if (netns_fd < 0) {
        int fd = iter_create_here(st->link_fd);
        return fd < 0 ? fail(err, MBPF_STAGE_ITER_CREATE, -errno) : fd;
    }
    rc = pthread_create(&thread, NULL, iter_job_run, &job);
    if (rc != 0)
        return fail(err, MBPF_STAGE_NETNS, -rc);
    pthread_join(thread, NULL);
    return job.fd < 0 ? fail(err, job.stage, job.err) : job.fd;
}

int mbpf_call(struct mbpf *st, struct mptcpk_bpf_req *req, int netns_fd,
              struct mbpf_error *err)
{
    static const uint32_t zero = 0;
    struct mptcpk_bpf_map_elem me;
    char buf[64];
    int rc = 0, fd;

    err->stage = MBPF_STAGE_NONE;
    err->message[0] = 0;
    if ((req->family != AF_INET && req->family != AF_INET6) ||
        (req->op != MPTCPK_BPF_OP_GET && req->op != MPTCPK_BPF_OP_SET) ||
        req->optlen < 1 || req->optlen > MPTCPK_BPF_VALUE_MAX)
        return fail(err, MBPF_STAGE_ARGS, -EINVAL);
    req->matched = 0;
    req->ret = 0;

    pthread_mutex_lock(&st->lock);
    /* Loaded on first use (or again after an unload), with the last load's flags. */
    if (st->link_fd < 0 && (rc = open_locked(st, st->flags, err)) < 0)
        goto out;
    memset(&me, 0, sizeof me);
    me.map_fd = (uint32_t)st->map_fd;
    me.key = (uint64_t)(uintptr_t)&zero;
    me.value = (uint64_t)(uintptr_t)req;
    me.flags = MPTCPK_BPF_ANY;
    if (sys_bpf(MPTCPK_BPF_MAP_UPDATE_ELEM, &me, sizeof me) < 0) {
        rc = fail(err, MBPF_STAGE_MAP_UPDATE, -errno);
        goto out;
    }
    fd = iter_create(st, netns_fd, err);
    if (fd < 0) {
        rc = fd;
        goto out;
    }
    for (;;) {  /* the program prints nothing: read() returns 0 once it ran on all */
        ssize_t n = read(fd, buf, sizeof buf);
        if (n > 0)
            continue;
        if (n == 0)
            break;
        if (errno == EINTR || errno == EAGAIN)  /* EAGAIN: a very large table, read on */
            continue;
        rc = fail(err, MBPF_STAGE_ITER_READ, -errno);
        break;
    }
    close(fd);
    if (rc == 0 && sys_bpf(MPTCPK_BPF_MAP_LOOKUP_ELEM, &me, sizeof me) < 0)
        rc = fail(err, MBPF_STAGE_MAP_LOOKUP, -errno);
out:
    pthread_mutex_unlock(&st->lock);
    return rc;
}

void mbpf_close(struct mbpf *st)
{
    pthread_mutex_lock(&st->lock);
    close_fds(st);
    pthread_mutex_unlock(&st->lock);
}

void mbpf_forget(struct mbpf *st)
{
    close_fds(st);
    pthread_mutex_init(&st->lock, NULL);
}
