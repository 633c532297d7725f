/* banger-agent: shared declarations. The protocol is described in docs/agent.md. */
#ifndef BANGER_AGENT_H
#define BANGER_AGENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PROTOCOL_VERSION 1

/* Frame header: type (1 byte), stream id (4 bytes, big-endian), payload length (4 bytes, big-endian). */
#define HDR_LEN 9
/* The largest payload a frame may carry; a longer one is refused and its bytes skipped. */
#define MAX_PAYLOAD 65536
/* Bytes each side may send on one stream before the receiver grants more (a WINDOW frame). */
#define WINDOW 131072
/* Streams served at once over one virtio-serial port; the host's own cap is lower (docs/agent.md). */
#define MAX_STREAMS 80
/* The longest verb line. */
#define MAX_VERB 256
/* A re-identity script is a few KiB; anything far larger is not from bangerd. */
#define RUN_MAX 262144
/* How many ports one READY may wait for. */
#define READY_MAX_PORTS 16

enum frame_type {
	F_OPEN = 1,   /* host -> agent: payload is a verb line without "\n" */
	F_DATA = 2,   /* either way: stream bytes, never more than the peer's window allows */
	F_CLOSE = 3,  /* either way: the sender sends no more on this stream (half-close) */
	F_WINDOW = 4, /* either way: payload is a 4-byte credit increment */
	F_RESET = 5,  /* either way: the stream is gone at once; payload is a reason */
	F_PING = 6,   /* host -> agent, stream 0: answered with a PONG carrying the same payload */
	F_PONG = 7,
};

/* verbs.c: serves one stream on fd (a socketpair end or a vsock connection) and returns the exit code. */
int serve_verb(int fd, const char *verb);
/* verbs.c: reads the verb line off fd itself (vsock) and then serves it. */
int serve_conn(int fd);
/* verbs.c: copies bytes both ways between a and b until both directions ended. */
void relay(int a, int b);
/* verbs.c: connects to 127.0.0.1:port; -1 with errno set on failure. */
int connect_local(int port);
/* verbs.c: strictly parses a decimal port 1-65535; -1 if it is not one. */
int parse_port(const char *s);

/* identity.c: `banger-agent identity ...`, the kernel's half of a clone's re-identity. */
int identity_main(int argc, char **argv);

/* mux.c: serves the framed multiplex on a connected port fd until the host end goes away. */
void mux_session(int port_fd);

/* banger-agent.c: the vsock server process; mux.c exits when it reaps it, so the service restarts both. */
extern pid_t vsock_pid;
/* banger-agent.c: closes every descriptor above 2 except keep (a forked helper's own). */
void close_others(int keep);
void logmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int write_all(int fd, const void *p, size_t n);

#endif
