/*
 * tirpc_client: a small ONC RPC client built on libtirpc, for the interop
 * tests of rpctransport (rpctransport/test/test_interop.py).
 *
 *   tirpc_client [--expect STAT] [--timeout SECONDS]
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
 * Prints one line of results on stdout and exits 0 when every call went as
 * required, 1 when one did not, 2 on a usage error.
 */

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <rpc/rpc.h>

#define PROC_NULL 0
#define PROC_ECHO 1

/* The largest opaque either side of an echo accepts: room for the 4 MiB
 * echoes of the tests, with headroom. */
#define MAX_OPAQUE (8u * 1024u * 1024u)

/* UDP buffer sizes: libtirpc's clntudp_create uses UDPMSGSIZE (8800 bytes),
 * too small for the 60,000-byte datagrams of the tests. */
#define UDP_BUFSIZE 65000u

struct opaque {
	char *data;
	u_int len;
	u_int max; /* the largest length accepted when decoding */
};

static bool_t
xdr_opaque_data(XDR *xdrs, struct opaque *o)
{
	return xdr_bytes(xdrs, &o->data, &o->len, o->max);
}

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
	    "usage: tirpc_client [--expect STAT] [--timeout SECONDS]\n"
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

int
main(int argc, char **argv)
{
	const char *proto, *host, *procname;
	unsigned long port, prog, vers, proc, size, count, timeout_s = 0;
	unsigned long i, ok = 0;
	int expecting = 0, sock = RPC_ANYSOCK, is_echo = 0, argi = 1;
	enum clnt_stat expected = RPC_SUCCESS, stat;
	struct sockaddr_in addr;
	struct timeval total, retry;
	struct opaque arg, res;
	CLIENT *clnt;
	double started, elapsed;
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

	started = now();
	for (i = 0; i < count; i++) {
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
	elapsed = now() - started;

	printf("%s %s %s:%lu prog %lu vers %lu proc %s size %lu calls %lu/%lu "
	    "elapsed %.3f s %.1f calls/s",
	    ok == count ? "ok" : "FAIL", proto, host, port, prog, vers,
	    procname, is_echo ? size : 0UL, ok, count, elapsed,
	    elapsed > 0 ? (double)ok / elapsed : 0.0);
	if (expecting)
		printf(" expected %s got %s", stat_name(expected),
		    detail[0] ? detail : "-");
	printf("\n");
	fflush(stdout);

	clnt_destroy(clnt);
	free(arg.data);
	free(res.data);
	return ok == count ? 0 : 1;
}
