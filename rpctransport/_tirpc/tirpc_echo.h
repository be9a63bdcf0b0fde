/*
 * tirpc_echo.h: what the libtirpc peers of rpctransport's interop tests and
 * benchmark (tirpc_client.c, tirpc_server.c) share: the echo test program's
 * procedures, its argument and result, and the sizes both accept.
 */

#ifndef TIRPC_ECHO_H
#define TIRPC_ECHO_H

#include <rpc/rpc.h>

#define PROC_NULL 0
#define PROC_ECHO 1

/* The largest opaque either side of an echo accepts: room for the 4 MiB
 * echoes of the tests, with headroom. libtirpc's stream transport (in its
 * default, blocking mode) puts no limit of its own on a record: it decodes
 * the arguments straight from the fragments as they arrive, so on the
 * server this is the limit. */
#define MAX_OPAQUE (8u * 1024u * 1024u)

/* UDP buffer sizes: libtirpc's default (UDPMSGSIZE, 8800 bytes) is too
 * small for the 60,000-byte datagrams of the tests. */
#define UDP_BUFSIZE 65000u

/* The ECHO argument and result: an XDR "opaque data<>". */
struct opaque {
	char *data;
	u_int len;
	u_int max; /* the largest length accepted when decoding */
};

static inline bool_t
xdr_opaque_data(XDR *xdrs, struct opaque *o)
{
	return xdr_bytes(xdrs, &o->data, &o->len, o->max);
}

#endif /* TIRPC_ECHO_H */
