/*
 * tirpc_client: a small ONC RPC client built on libtirpc, for the interop
 * tests of rpctransport (rpctransport/test/test_interop.py) and its
 * benchmark (rpctransport/bench).
 *
 *   tirpc_client [--expect STAT] [--timeout SECONDS] [--duration SECONDS]
 *                [--pipeline DEPTH] [--late PROC]
 *                tcp|udp HOST PORT PROG VERS PROC SIZE COUNT
 *
 * PROC is "null" (procedure 0, void arguments and result), "echo"
 * (procedure 1: the argument is an XDR "opaque data<>" of SIZE bytes, byte i
 * being i % 251, and the result must be the same bytes) or a procedure number
 * (called with void arguments and a void result, to provoke PROC_UNAVAIL).
 * PROG, VERS and PORT take C syntax (0x20000099 works). The client is built
 * with clnttcp_create / clntudp_bufcreate on an explicit address and port,
 * so rpcbind is never consulted. COUNT calls go out one after the other on
 * the same client (one TCP connection).
 *
 * Without --expect, every call must succeed (and every echo come back byte
 * for byte). With --expect STAT (a clnt_stat name such as RPC_PROGUNAVAIL,
 * RPC_PROGVERSMISMATCH, RPC_PROCUNAVAIL, or its number), every call must fail
 * with that status.
 *
 * For benchmarks: with --duration SECONDS, calls stop when COUNT calls are
 * made or SECONDS have passed, whichever comes first, and the summary counts
 * the calls made. With --pipeline DEPTH (TCP, null or echo, without
 * --expect), clnt_call is not used, since it waits for each reply and so
 * cannot keep calls in flight: calls are encoded here (AUTH_NONE, xids
 * counting up), written on a plain non-blocking socket with DEPTH of them in
 * flight, and each reply must come back in order, with its xid, accepted
 * with SUCCESS and, for echo, carrying the same bytes.
 *
 * For a server that answers calls out of order: with --late LATEPROC (TCP,
 * echo, without --expect, --pipeline or --duration), the client first sends
 * one call of procedure LATEPROC, whose argument is an opaque of LATE_SIZE
 * bytes (byte i being (3 i + 1) % 251) and whose result must be the same,
 * without waiting for its reply: libtirpc's clnt_call with a zero timeout
 * (its "batched" calls) sends the call and returns RPC_TIMEDOUT at once. The
 * COUNT echo calls follow on the same connection, each of which the server
 * must answer while that first call is still in progress. Then the first
 * call's reply is collected with clnt_call: CLSET_XID makes one more call of
 * LATEPROC (argument: byte i is (5 i + 2) % 251) reuse the first call's
 * xid, and clnt_call returns the first reply carrying that xid, which must
 * carry the first call's bytes. clnt_call skips replies whose xid it is not
 * waiting for, so this holds only if the reply to the first call came after
 * the COUNT replies and before the reply to this last call; the line ends
 * with "late ok", or "late FAIL" and the reason (and the exit status is 1).
 *
 * Prints one line of results on stdout, such as
 *
 *   ok tcp 127.0.0.1:40123 prog 536871065 vers 1 proc echo size 64
 *   calls 500/500 elapsed 0.031 s 16129.0 calls/s 1.03 MB/s
 *
 * (one line; MB/s counts the ECHO argument bytes one way, 10^6 bytes a
 * second) and exits 0 when every call went as required, 1 when one did not,
 * 2 on a usage error.
 */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <rpc/rpc.h>

#include "tirpc_echo.h"

struct stat_name {
	const char *name;
	enum clnt_stat stat;
};

static const struct stat_name stat_names[] = {
	{"RPC_SUCCESS", RPC_SUCCESS},
	{"RPC_CANTENCODEARGS", RPC_CANTENCODEARGS},
	{"RPC_CANTDECODERES", RPC_CANTDECODERES},
	{"RPC_CANTSEND", RPC_CANTSEND},
	{"RPC_CANTRECV", RPC_CANTRECV},
	{"RPC_TIMEDOUT", RPC_TIMEDOUT},
	{"RPC_VERSMISMATCH", RPC_VERSMISMATCH},
	{"RPC_AUTHERROR", RPC_AUTHERROR},
	{"RPC_PROGUNAVAIL", RPC_PROGUNAVAIL},
	{"RPC_PROGVERSMISMATCH", RPC_PROGVERSMISMATCH},
	{"RPC_PROCUNAVAIL", RPC_PROCUNAVAIL},
	{"RPC_CANTDECODEARGS", RPC_CANTDECODEARGS},
	{"RPC_SYSTEMERROR", RPC_SYSTEMERROR},
	{"RPC_FAILED", RPC_FAILED},
	{"RPC_CANTCONNECT", RPC_CANTCONNECT},
	{"RPC_XPRTFAILED", RPC_XPRTFAILED},
	{NULL, RPC_SUCCESS},
};

static const char *
stat_name(enum clnt_stat stat)
{
	const struct stat_name *s;

	for (s = stat_names; s->name != NULL; s++)
		if (s->stat == stat)
			return s->name;
	return "RPC_UNKNOWN";
}

static int
parse_stat(const char *text, enum clnt_stat *stat)
{
	const struct stat_name *s;
	char *end;
	unsigned long n;

	for (s = stat_names; s->name != NULL; s++) {
		if (strcmp(s->name, text) == 0) {
			*stat = s->stat;
			return 0;
		}
	}
	errno = 0;
	n = strtoul(text, &end, 0);
	if (errno != 0 || *text == '\0' || *end != '\0')
		return -1;
	*stat = (enum clnt_stat)n;
	return 0;
}

static int
parse_ulong(const char *text, const char *what, unsigned long max,
    unsigned long *out)
{
	char *end;

	errno = 0;
	*out = strtoul(text, &end, 0);
	if (errno != 0 || *text == '\0' || *end != '\0' || *out > max) {
		fprintf(stderr, "tirpc_client: bad %s: %s\n", what, text);
		return -1;
	}
	return 0;
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: tirpc_client [--expect STAT] [--timeout SECONDS] "
	    "[--duration SECONDS]\n"
	    "                    [--pipeline DEPTH] [--late PROC]\n"
	    "                    tcp|udp HOST PORT PROG VERS null|echo|PROCNUM "
	    "SIZE COUNT\n");
	exit(2);
}

/*
 * Describe a failed call: clnt_sperrno's text, and for a version mismatch
 * the range the server reported.
 */
static void
describe(CLIENT *clnt, enum clnt_stat stat, char *out, size_t size)
{
	struct rpc_err err;

	if (stat == RPC_PROGVERSMISMATCH) {
		CLNT_GETERR(clnt, &err);
		snprintf(out, size, "%s: %s; low %lu high %lu", stat_name(stat),
		    clnt_sperrno(stat), (unsigned long)err.re_vers.low,
		    (unsigned long)err.re_vers.high);
	} else {
		snprintf(out, size, "%s: %s", stat_name(stat),
		    clnt_sperrno(stat));
	}
}

/* --- The pipelined mode ------------------------------------------------ */

static void
put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static uint32_t
get32(const unsigned char *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
	    ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

struct buf {
	unsigned char *data;
	size_t len;
	size_t cap;
};

static int
buf_reserve(struct buf *b, size_t more)
{
	size_t cap;
	unsigned char *p;

	if (b->len + more <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 65536;
	while (cap < b->len + more)
		cap *= 2;
	p = realloc(b->data, cap);
	if (p == NULL)
		return -1;
	b->data = p;
	b->cap = cap;
	return 0;
}

/*
 * Check one whole reply; 0 when it is the one expected, else -1 with the
 * reason in why.
 */
static int
check_reply(const unsigned char *rec, size_t len, uint32_t xid, int is_echo,
    const char *arg, unsigned long size, char *why, size_t whylen)
{
	size_t off;
	uint32_t vlen, n;

	if (len < 24) {
		snprintf(why, whylen, "a reply of %zu bytes is too short", len);
		return -1;
	}
	if (get32(rec) != xid) {
		snprintf(why, whylen, "reply xid %#x, expected %#x",
		    (unsigned)get32(rec), (unsigned)xid);
		return -1;
	}
	if (get32(rec + 4) != 1 || get32(rec + 8) != 0) {
		snprintf(why, whylen, "xid %#x: not an accepted reply",
		    (unsigned)xid);
		return -1;
	}
	vlen = get32(rec + 16);
	if (vlen > 400 || 20 + (size_t)((vlen + 3) & ~3u) + 4 > len) {
		snprintf(why, whylen, "xid %#x: bad verifier", (unsigned)xid);
		return -1;
	}
	off = 20 + ((vlen + 3) & ~3u);
	if (get32(rec + off) != 0) {
		snprintf(why, whylen, "xid %#x: accept_stat %u", (unsigned)xid,
		    (unsigned)get32(rec + off));
		return -1;
	}
	off += 4;
	if (!is_echo) {
		if (off != len) {
			snprintf(why, whylen, "xid %#x: %zu bytes of results "
			    "for NULL", (unsigned)xid, len - off);
			return -1;
		}
		return 0;
	}
	n = off + 4 <= len ? get32(rec + off) : 0xffffffffu;
	if (n != size || off + 4 + (size_t)n > len ||
	    memcmp(rec + off + 4, arg, size) != 0) {
		snprintf(why, whylen, "xid %#x: the echo differs", (unsigned)xid);
		return -1;
	}
	return 0;
}

/*
 * Make up to COUNT calls, DEPTH in flight, for at most DURATION seconds (0:
 * no limit); set *ok to the calls answered as expected, *made to the calls
 * sent, *elapsed to the seconds taken. Returns 0, or -1 on a failure
 * (reported on stderr).
 */
static int
run_pipeline(const struct sockaddr_in *addr, unsigned long prog,
    unsigned long vers, unsigned long proc, int is_echo, const char *arg,
    unsigned long size, unsigned long count, double duration,
    unsigned long depth, unsigned long timeout_s, unsigned long *ok,
    unsigned long *made, double *elapsed)
{
	struct buf out = {NULL, 0, 0}, in = {NULL, 0, 0}, rec = {NULL, 0, 0};
	size_t body, call_len, out_pos = 0, in_pos = 0, pad;
	unsigned long sent = 0, done = 0;
	unsigned char *tmpl;
	uint32_t xid0;
	int fd, one = 1, stopping = 0, status = -1;
	double started;
	char why[256];

	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (const struct sockaddr *)addr,
	    sizeof *addr) != 0) {
		fprintf(stderr, "tirpc_client: connect: %s\n", strerror(errno));
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);

	pad = is_echo ? (4 - size % 4) % 4 : 0;
	body = 40 + (is_echo ? 4 + size + pad : 0);
	call_len = 4 + body;
	tmpl = calloc(1, call_len);
	if (tmpl == NULL) {
		fprintf(stderr, "tirpc_client: out of memory\n");
		close(fd);
		return -1;
	}
	put32(tmpl, 0x80000000u | (uint32_t)body);
	put32(tmpl + 12, 2);
	put32(tmpl + 16, (uint32_t)prog);
	put32(tmpl + 20, (uint32_t)vers);
	put32(tmpl + 24, (uint32_t)proc);
	if (is_echo) {
		put32(tmpl + 44, (uint32_t)size);
		memcpy(tmpl + 48, arg, size);
	}
	xid0 = (uint32_t)getpid() * 2654435761u;

	started = now();
	for (;;) {
		struct pollfd p;
		ssize_t n;
		int ready;

		if (!stopping && (sent >= count || (duration > 0 &&
		    now() - started >= duration)))
			stopping = 1;
		while (!stopping && sent - done < depth && sent < count) {
			if (buf_reserve(&out, call_len) != 0)
				goto oom;
			memcpy(out.data + out.len, tmpl, call_len);
			put32(out.data + out.len + 4, xid0 + (uint32_t)sent);
			out.len += call_len;
			sent++;
		}
		if (stopping && done == sent)
			break;
		p.fd = fd;
		p.events = POLLIN | (out_pos < out.len ? POLLOUT : 0);
		p.revents = 0;
		ready = poll(&p, 1, (int)(timeout_s ? timeout_s : 25) * 1000);
		if (ready < 0 && errno == EINTR)
			continue;
		if (ready <= 0) {
			fprintf(stderr, "tirpc_client: %s\n", ready == 0 ?
			    "no reply within the timeout" : strerror(errno));
			goto out;
		}
		if (p.revents & POLLOUT) {
			n = write(fd, out.data + out_pos, out.len - out_pos);
			if (n < 0 && errno != EAGAIN && errno != EINTR) {
				fprintf(stderr, "tirpc_client: write: %s\n",
				    strerror(errno));
				goto out;
			}
			if (n > 0)
				out_pos += (size_t)n;
			if (out_pos == out.len)
				out_pos = out.len = 0;
		}
		if (!(p.revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		if (buf_reserve(&in, 65536) != 0)
			goto oom;
		n = read(fd, in.data + in.len, in.cap - in.len);
		if (n == 0) {
			fprintf(stderr, "tirpc_client: the server closed the "
			    "connection\n");
			goto out;
		}
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			fprintf(stderr, "tirpc_client: read: %s\n",
			    strerror(errno));
			goto out;
		}
		in.len += (size_t)n;
		while (in.len - in_pos >= 4) {
			uint32_t mark = get32(in.data + in_pos);
			size_t flen = mark & 0x7fffffffu;

			if (in.len - in_pos < 4 + flen)
				break;
			if (buf_reserve(&rec, flen) != 0)
				goto oom;
			memcpy(rec.data + rec.len, in.data + in_pos + 4, flen);
			rec.len += flen;
			in_pos += 4 + flen;
			if (!(mark & 0x80000000u))
				continue;
			if (done >= sent || check_reply(rec.data, rec.len,
			    xid0 + (uint32_t)done, is_echo, arg, size, why,
			    sizeof why) != 0) {
				if (done >= sent)
					snprintf(why, sizeof why,
					    "a reply to no call");
				fprintf(stderr, "call %lu: %s\n", done + 1, why);
				goto out;
			}
			done++;
			rec.len = 0;
		}
		memmove(in.data, in.data + in_pos, in.len - in_pos);
		in.len -= in_pos;
		in_pos = 0;
	}
	status = 0;
	goto out;
oom:
	fprintf(stderr, "tirpc_client: out of memory\n");
out:
	*elapsed = now() - started;
	*ok = done;
	*made = status == 0 ? sent : done + 1;
	close(fd);
	free(tmpl);
	free(out.data);
	free(in.data);
	free(rec.data);
	return status;
}

/* --- Out of order: the late call (--late) ------------------------------ */

/* The size of the late call's argument, and of the one that collects it. */
#define LATE_SIZE 32

static void
late_pattern(struct opaque *o, unsigned int mul, unsigned int add)
{
	u_int i;

	for (i = 0; i < LATE_SIZE; i++)
		o->data[i] = (char)((mul * i + add) % 251);
	o->len = LATE_SIZE;
}

/*
 * Send the late call without waiting for its reply; set *xid to the xid it
 * went with. Returns 0, or -1 with the reason in why.
 */
static int
late_send(CLIENT *clnt, unsigned long proc, struct opaque *arg,
    struct opaque *res, u_int32_t *xid, char *why, size_t whylen)
{
	struct timeval zero = {0, 0};
	enum clnt_stat stat;

	late_pattern(arg, 3, 1);
	/* A zero timeout: clnt_call sends and returns RPC_TIMEDOUT at once. */
	stat = clnt_call(clnt, proc, (xdrproc_t)xdr_opaque_data, (char *)arg,
	    (xdrproc_t)xdr_opaque_data, (char *)res, zero);
	if (stat != RPC_TIMEDOUT) {
		snprintf(why, whylen, "sending the late call gave %s",
		    stat_name(stat));
		return -1;
	}
	if (!CLNT_CONTROL(clnt, CLGET_XID, (char *)xid)) {
		snprintf(why, whylen, "CLGET_XID failed");
		return -1;
	}
	return 0;
}

/*
 * Collect the late call's reply (see the comment at the top). Returns 0,
 * or -1 with the reason in why.
 */
static int
late_collect(CLIENT *clnt, unsigned long proc, u_int32_t xid,
    struct opaque *arg, struct opaque *res, struct timeval total, char *why,
    size_t whylen)
{
	struct opaque expected;
	char data[LATE_SIZE];
	enum clnt_stat stat;
	u_int32_t next;

	/*
	 * CLSET_XID stores htonl(next + 1), and clnt_call decrements the
	 * stored word before sending it: as an integer in network byte order
	 * (--*msg_x_id), not as the xid. So, for the call to go with xid, the
	 * stored word must be htonl(xid) + 1 (on a big-endian host, next is
	 * xid; on a little-endian one, it is not).
	 */
	next = ntohl(htonl(xid) + 1) - 1;
	if (!CLNT_CONTROL(clnt, CLSET_XID, (char *)&next)) {
		snprintf(why, whylen, "CLSET_XID failed");
		return -1;
	}
	late_pattern(arg, 5, 2);
	res->len = 0;
	stat = clnt_call(clnt, proc, (xdrproc_t)xdr_opaque_data, (char *)arg,
	    (xdrproc_t)xdr_opaque_data, (char *)res, total);
	if (stat != RPC_SUCCESS) {
		snprintf(why, whylen, "collecting the late reply (xid %#x) gave "
		    "%s: %s", (unsigned)xid, stat_name(stat), clnt_sperrno(stat));
		return -1;
	}
	expected.data = data;
	late_pattern(&expected, 3, 1);
	if (res->len == LATE_SIZE && memcmp(res->data, data, LATE_SIZE) == 0)
		return 0;
	if (res->len == LATE_SIZE && memcmp(res->data, arg->data,
	    LATE_SIZE) == 0)
		snprintf(why, whylen, "the first reply with xid %#x answered "
		    "the collecting call: the late call's reply came before the "
		    "others, or after it", (unsigned)xid);
	else
		snprintf(why, whylen, "the reply with xid %#x carries %u "
		    "bytes that are not the late call's", (unsigned)xid,
		    res->len);
	return -1;
}

int
main(int argc, char **argv)
{
	const char *proto, *host, *procname;
	unsigned long port, prog, vers, proc, size, count, timeout_s = 0;
	unsigned long i, ok = 0, made = 0, depth = 0, target, late_proc = 0;
	int expecting = 0, sock = RPC_ANYSOCK, is_echo = 0, argi = 1;
	int late = 0, late_ok = 0, all_ok;
	u_int32_t late_xid = 0;
	char late_arg_data[LATE_SIZE], late_why[256] = "";
	struct opaque late_arg, late_res;
	double duration = 0;
	char *end;
	enum clnt_stat expected = RPC_SUCCESS, stat;
	struct sockaddr_in addr;
	struct timeval total, retry;
	struct opaque arg, res;
	CLIENT *clnt;
	double started, elapsed = 0;
	char detail[256] = "";

	while (argi < argc && strncmp(argv[argi], "--", 2) == 0) {
		if (strcmp(argv[argi], "--expect") == 0 && argi + 1 < argc) {
			if (parse_stat(argv[argi + 1], &expected) != 0) {
				fprintf(stderr, "tirpc_client: unknown clnt_stat: %s\n",
				    argv[argi + 1]);
				return 2;
			}
			expecting = 1;
			argi += 2;
		} else if (strcmp(argv[argi], "--timeout") == 0 &&
		    argi + 1 < argc) {
			if (parse_ulong(argv[argi + 1], "timeout", 3600,
			    &timeout_s) != 0)
				return 2;
			argi += 2;
		} else if (strcmp(argv[argi], "--duration") == 0 &&
		    argi + 1 < argc) {
			errno = 0;
			duration = strtod(argv[argi + 1], &end);
			if (errno != 0 || *end != '\0' || !(duration > 0) ||
			    duration > 3600) {
				fprintf(stderr, "tirpc_client: bad duration: %s\n",
				    argv[argi + 1]);
				return 2;
			}
			argi += 2;
		} else if (strcmp(argv[argi], "--late") == 0 &&
		    argi + 1 < argc) {
			if (parse_ulong(argv[argi + 1], "late procedure",
			    0xffffffffUL, &late_proc) != 0)
				return 2;
			late = 1;
			argi += 2;
		} else if (strcmp(argv[argi], "--pipeline") == 0 &&
		    argi + 1 < argc) {
			if (parse_ulong(argv[argi + 1], "pipeline depth", 1000000,
			    &depth) != 0 || depth == 0)
				return 2;
			argi += 2;
		} else {
			usage();
		}
	}
	if (argc - argi != 8)
		usage();
	proto = argv[argi];
	host = argv[argi + 1];
	procname = argv[argi + 5];
	if (strcmp(proto, "tcp") != 0 && strcmp(proto, "udp") != 0)
		usage();
	if (parse_ulong(argv[argi + 2], "port", 65535, &port) != 0 ||
	    parse_ulong(argv[argi + 3], "program", 0xffffffffUL, &prog) != 0 ||
	    parse_ulong(argv[argi + 4], "version", 0xffffffffUL, &vers) != 0 ||
	    parse_ulong(argv[argi + 6], "size", MAX_OPAQUE, &size) != 0 ||
	    parse_ulong(argv[argi + 7], "count", 100000000UL, &count) != 0)
		return 2;
	if (strcmp(procname, "null") == 0) {
		proc = PROC_NULL;
	} else if (strcmp(procname, "echo") == 0) {
		proc = PROC_ECHO;
		is_echo = 1;
	} else if (parse_ulong(procname, "procedure", 0xffffffffUL, &proc) != 0) {
		return 2;
	}
	if (depth && (strcmp(proto, "tcp") != 0 || expecting ||
	    proc > PROC_ECHO)) {
		fprintf(stderr, "tirpc_client: --pipeline goes with tcp, null "
		    "or echo, and no --expect\n");
		return 2;
	}
	if (late && (strcmp(proto, "tcp") != 0 || !is_echo || expecting ||
	    depth || duration > 0)) {
		fprintf(stderr, "tirpc_client: --late goes with tcp and echo, "
		    "without --expect, --pipeline or --duration\n");
		return 2;
	}
	if (port == 0) {
		/* Port 0 would make libtirpc ask rpcbind. */
		fprintf(stderr, "tirpc_client: the port must not be 0\n");
		return 2;
	}

	/* A server that closes the connection while we write (a record over
	 * its limit) must make the call fail, not kill us. */
	signal(SIGPIPE, SIG_IGN);

	memset(&addr, 0, sizeof addr);
	addr.sin_family = AF_INET;
	addr.sin_port = htons((unsigned short)port);
	if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
		fprintf(stderr, "tirpc_client: not an IPv4 address: %s\n", host);
		return 2;
	}

	if (depth) {
		char *data = malloc(size ? size : 1);

		if (data == NULL) {
			fprintf(stderr, "tirpc_client: out of memory\n");
			return 1;
		}
		for (i = 0; i < size; i++)
			data[i] = (char)(i % 251);
		run_pipeline(&addr, prog, vers, proc, is_echo, data, size, count,
		    duration, depth, timeout_s, &ok, &made, &elapsed);
		free(data);
		target = duration > 0 ? made : count;
		goto report;
	}

	retry.tv_sec = 1;
	retry.tv_usec = 0;
	if (strcmp(proto, "tcp") == 0) {
		/* Default buffer sizes: libtirpc then writes records in
		 * fragments of its own size, which is what we want to see. */
		clnt = clnttcp_create(&addr, prog, vers, &sock, 0, 0);
		total.tv_sec = timeout_s ? (time_t)timeout_s : 25;
	} else {
		clnt = clntudp_bufcreate(&addr, prog, vers, retry, &sock,
		    UDP_BUFSIZE, UDP_BUFSIZE);
		total.tv_sec = timeout_s ? (time_t)timeout_s : 10;
	}
	total.tv_usec = 0;
	if (clnt == NULL) {
		fprintf(stderr, "%s\n", clnt_spcreateerror("tirpc_client"));
		printf("FAIL %s %s:%lu cannot create client\n", proto, host, port);
		return 1;
	}
	CLNT_CONTROL(clnt, CLSET_TIMEOUT, (char *)&total);
	if (strcmp(proto, "udp") == 0)
		CLNT_CONTROL(clnt, CLSET_RETRY_TIMEOUT, (char *)&retry);

	memset(&arg, 0, sizeof arg);
	memset(&res, 0, sizeof res);
	if (is_echo) {
		/* malloc(0) may give NULL, which xdr_bytes would then try to
		 * allocate on encode: always allocate at least a byte. */
		arg.data = malloc(size ? size : 1);
		arg.len = (u_int)size;
		arg.max = MAX_OPAQUE;
		res.data = malloc(MAX_OPAQUE);
		res.max = MAX_OPAQUE;
		if (arg.data == NULL || res.data == NULL) {
			fprintf(stderr, "tirpc_client: out of memory\n");
			return 1;
		}
		for (i = 0; i < size; i++)
			arg.data[i] = (char)(i % 251);
	}

	if (late) {
		late_arg.data = late_arg_data;
		late_arg.max = LATE_SIZE;
		late_res.data = malloc(MAX_OPAQUE);
		late_res.max = MAX_OPAQUE;
		late_res.len = 0;
		if (late_res.data == NULL) {
			fprintf(stderr, "tirpc_client: out of memory\n");
			return 1;
		}
	}

	started = now();
	if (late && late_send(clnt, late_proc, &late_arg, &late_res, &late_xid,
	    late_why, sizeof late_why) != 0)
		i = count;	/* no calls: the run fails */
	else
		i = 0;
	for (; i < count; i++) {
		if (duration > 0 && i > 0 && now() - started >= duration)
			break;
		made++;
		if (is_echo) {
			res.len = 0;
			stat = clnt_call(clnt, proc, (xdrproc_t)xdr_opaque_data,
			    (char *)&arg, (xdrproc_t)xdr_opaque_data,
			    (char *)&res, total);
		} else {
			stat = clnt_call(clnt, proc, (xdrproc_t)xdr_void, NULL,
			    (xdrproc_t)xdr_void, NULL, total);
		}
		if (expecting) {
			if (stat != expected) {
				describe(clnt, stat, detail, sizeof detail);
				fprintf(stderr, "call %lu/%lu: expected %s, got %s\n",
				    i + 1, count, stat_name(expected), detail);
				break;
			}
			describe(clnt, stat, detail, sizeof detail);
			ok++;
			continue;
		}
		if (stat != RPC_SUCCESS) {
			describe(clnt, stat, detail, sizeof detail);
			fprintf(stderr, "call %lu/%lu: %s\n", i + 1, count, detail);
			break;
		}
		if (is_echo) {
			if (res.len != arg.len) {
				fprintf(stderr,
				    "call %lu/%lu: echo of %u bytes came back "
				    "with %u bytes\n", i + 1, count, arg.len,
				    res.len);
				break;
			}
			if (memcmp(res.data, arg.data, arg.len) != 0) {
				u_int at = 0;

				while (res.data[at] == arg.data[at])
					at++;
				fprintf(stderr,
				    "call %lu/%lu: echo differs at byte %u\n",
				    i + 1, count, at);
				break;
			}
		}
		ok++;
	}
	if (late && late_why[0] == '\0' && ok == count) {
		if (late_collect(clnt, late_proc, late_xid, &late_arg,
		    &late_res, total, late_why, sizeof late_why) == 0)
			late_ok = 1;
	} else if (late && late_why[0] == '\0') {
		snprintf(late_why, sizeof late_why, "not collected: the other "
		    "calls failed");
	}
	elapsed = now() - started;
	/* With a duration, the calls made (a failed one included) are the
	 * calls asked for. */
	target = duration > 0 ? made : count;
	if (late && !late_ok)
		fprintf(stderr, "late call: %s\n", late_why);
	clnt_destroy(clnt);
	if (late)
		free(late_res.data);
	free(arg.data);
	free(res.data);

report:
	/* A late call that went wrong (--late) fails the run too. */
	all_ok = ok == target && target > 0 && (!late || late_ok);
	printf("%s %s %s:%lu prog %lu vers %lu proc %s size %lu calls %lu/%lu "
	    "elapsed %.3f s %.1f calls/s %.2f MB/s",
	    all_ok ? "ok" : "FAIL", proto, host, port,
	    prog, vers, procname, is_echo ? size : 0UL, ok, target, elapsed,
	    elapsed > 0 ? (double)ok / elapsed : 0.0,
	    elapsed > 0 && is_echo ? (double)ok * (double)size / elapsed / 1e6 :
	    0.0);
	if (expecting)
		printf(" expected %s got %s", stat_name(expected),
		    detail[0] ? detail : "-");
	if (late)
		printf(" late %s%s%s", late_ok ? "ok" : "FAIL",
		    late_ok ? "" : ": ", late_ok ? "" : late_why);
	printf("\n");
	fflush(stdout);
	return all_ok ? 0 : 1;
}
