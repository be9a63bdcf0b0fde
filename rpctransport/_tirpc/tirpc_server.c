/*
 * tirpc_server: a small ONC RPC server built on libtirpc, for the interop
 * tests of rpctransport (rpctransport/test/test_interop.py).
 *
 *   tirpc_server [--program N] [--version N] [--unix PATH]
 *
 * Serves the echo test program (by default program 0x20000099, version 1):
 * procedure 0 is NULL, procedure 1 is ECHO (the argument is an XDR
 * "opaque data<>", returned as it came). It listens on TCP and UDP on
 * 127.0.0.1, on ports the kernel picks (and, with --unix, on a UNIX stream
 * socket at PATH), prints one line per listener:
 *
 *   listening tcp 127.0.0.1:40123
 *   listening udp 127.0.0.1:40124
 *   listening unix /tmp/x/tirpc.sock
 *
 * then serves until SIGTERM or SIGINT, and exits 0.
 *
 * The program is registered with svc_register(..., 0): protocol 0 means
 * "do not tell rpcbind", so no rpcbind is needed. The sockets are created and
 * bound here, so that nothing listens on other interfaces.
 */

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include <rpc/rpc.h>

#include "tirpc_echo.h"

static void
dispatch(struct svc_req *req, SVCXPRT *xprt)
{
	struct opaque arg;

	switch (req->rq_proc) {
	case PROC_NULL:
		if (!svc_sendreply(xprt, (xdrproc_t)xdr_void, NULL))
			fprintf(stderr, "tirpc_server: cannot send NULL reply\n");
		return;
	case PROC_ECHO:
		memset(&arg, 0, sizeof arg);
		arg.max = MAX_OPAQUE;
		if (!svc_getargs(xprt, (xdrproc_t)xdr_opaque_data,
		    (char *)&arg)) {
			svcerr_decode(xprt);
			svc_freeargs(xprt, (xdrproc_t)xdr_opaque_data,
			    (char *)&arg);
			return;
		}
		if (!svc_sendreply(xprt, (xdrproc_t)xdr_opaque_data,
		    (char *)&arg))
			fprintf(stderr, "tirpc_server: cannot send ECHO reply\n");
		svc_freeargs(xprt, (xdrproc_t)xdr_opaque_data, (char *)&arg);
		return;
	default:
		svcerr_noproc(xprt);
		return;
	}
}

static void
on_signal(int sig)
{
	(void)sig;
	_exit(0);
}

static void
die(const char *what)
{
	fprintf(stderr, "tirpc_server: %s: %s\n", what, strerror(errno));
	exit(1);
}

static unsigned long
parse_ulong(const char *text, const char *what)
{
	char *end;
	unsigned long n;

	errno = 0;
	n = strtoul(text, &end, 0);
	if (errno != 0 || *text == '\0' || *end != '\0' || n > 0xffffffffUL) {
		fprintf(stderr, "tirpc_server: bad %s: %s\n", what, text);
		exit(2);
	}
	return n;
}

/* A socket bound to 127.0.0.1 on a port the kernel picks. */
static int
loopback_socket(int type, unsigned short *port)
{
	struct sockaddr_in addr;
	socklen_t len = sizeof addr;
	int fd;

	fd = socket(AF_INET, type, 0);
	if (fd < 0)
		die("socket");
	memset(&addr, 0, sizeof addr);
	addr.sin_family = AF_INET;
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	addr.sin_port = 0;
	if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0)
		die("bind");
	if (type == SOCK_STREAM && listen(fd, SOMAXCONN) < 0)
		die("listen");
	if (getsockname(fd, (struct sockaddr *)&addr, &len) < 0)
		die("getsockname");
	*port = ntohs(addr.sin_port);
	return fd;
}

static void
register_or_die(SVCXPRT *xprt, unsigned long prog, unsigned long vers,
    const char *what)
{
	if (xprt == NULL) {
		fprintf(stderr, "tirpc_server: cannot create the %s transport\n",
		    what);
		exit(1);
	}
	/* Protocol 0: do not register with rpcbind. */
	if (!svc_register(xprt, prog, vers, dispatch, 0)) {
		fprintf(stderr, "tirpc_server: cannot register on %s\n", what);
		exit(1);
	}
}

int
main(int argc, char **argv)
{
	unsigned long prog = 0x20000099UL, vers = 1;
	const char *unix_path = NULL;
	unsigned short tcp_port, udp_port;
	int tcp_fd, udp_fd, i;

	for (i = 1; i < argc; i += 2) {
		if (i + 1 >= argc)
			goto usage;
		if (strcmp(argv[i], "--program") == 0)
			prog = parse_ulong(argv[i + 1], "program");
		else if (strcmp(argv[i], "--version") == 0)
			vers = parse_ulong(argv[i + 1], "version");
		else if (strcmp(argv[i], "--unix") == 0)
			unix_path = argv[i + 1];
		else
			goto usage;
	}

#ifdef __linux__
	/* Do not outlive the test process, even if it dies without
	 * cleaning up. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
#endif
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	/* A client that goes away while we write must not kill us. */
	signal(SIGPIPE, SIG_IGN);

	tcp_fd = loopback_socket(SOCK_STREAM, &tcp_port);
	register_or_die(svctcp_create(tcp_fd, 0, 0), prog, vers, "tcp");
	udp_fd = loopback_socket(SOCK_DGRAM, &udp_port);
	register_or_die(svcudp_bufcreate(udp_fd, UDP_BUFSIZE, UDP_BUFSIZE),
	    prog, vers, "udp");

	if (unix_path != NULL) {
		struct sockaddr_un sun;
		int fd;

		if (strlen(unix_path) >= sizeof sun.sun_path) {
			fprintf(stderr, "tirpc_server: path too long: %s\n",
			    unix_path);
			return 2;
		}
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		if (fd < 0)
			die("socket");
		memset(&sun, 0, sizeof sun);
		sun.sun_family = AF_UNIX;
		strcpy(sun.sun_path, unix_path);
		if (bind(fd, (struct sockaddr *)&sun, sizeof sun) < 0)
			die("bind");
		if (listen(fd, SOMAXCONN) < 0)
			die("listen");
		register_or_die(svc_vc_create(fd, 0, 0), prog, vers, "unix");
	}

	printf("listening tcp 127.0.0.1:%u\n", tcp_port);
	printf("listening udp 127.0.0.1:%u\n", udp_port);
	if (unix_path != NULL)
		printf("listening unix %s\n", unix_path);
	fflush(stdout);

	svc_run();
	fprintf(stderr, "tirpc_server: svc_run returned\n");
	return 1;

usage:
	fprintf(stderr,
	    "usage: tirpc_server [--program N] [--version N] [--unix PATH]\n");
	return 2;
}
