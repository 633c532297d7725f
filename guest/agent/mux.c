/*
 * The framed multiplex over the virtio-serial port (docs/agent.md). One poll loop, every fd
 * non-blocking: the port is read whenever it has bytes, whatever any one stream is doing, and each
 * stream buffers at most the window it granted, so a slow local reader stalls only its own stream.
 * Each stream's verb runs in a forked helper (verbs.c) behind a socketpair.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"

/* Stop reading local sockets while this much waits to go out on the port. */
#define OUT_HIGH (256 * 1024)
#define IN_CAP (HDR_LEN + MAX_PAYLOAD)

struct stream {
	int used;
	uint32_t id;
	int fd;
	unsigned char *in; /* host bytes not yet written to fd, at most WINDOW */
	size_t in_len;
	uint32_t credit;   /* bytes we may still send the host */
	uint32_t consumed; /* bytes written to fd since the last WINDOW we sent */
	int host_closed, local_eof, shut;
};

static struct stream streams[MAX_STREAMS];
static unsigned char *out;
static size_t out_len, out_cap;
static unsigned char inbuf[IN_CAP];
static size_t in_have;
static uint64_t skip; /* bytes of an oversized frame still to drop */

static void put32(unsigned char *p, uint32_t v)
{
	p[0] = v >> 24, p[1] = v >> 16, p[2] = v >> 8, p[3] = v;
}

static uint32_t get32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void emit(int type, uint32_t id, const void *payload, size_t len)
{
	if (out_len + HDR_LEN + len > out_cap) {
		size_t cap = out_cap ? out_cap : 65536;
		while (cap < out_len + HDR_LEN + len)
			cap *= 2;
		unsigned char *p = realloc(out, cap);
		if (!p) {
			logmsg("out of memory for %zu bytes of output", cap);
			exit(1);
		}
		out = p, out_cap = cap;
	}
	unsigned char *h = out + out_len;
	h[0] = (unsigned char)type;
	put32(h + 1, id);
	put32(h + 5, (uint32_t)len);
	if (len)
		memcpy(h + HDR_LEN, payload, len);
	out_len += HDR_LEN + len;
}

static void emit_reset(uint32_t id, const char *why)
{
	emit(F_RESET, id, why, strlen(why));
}

static struct stream *find(uint32_t id)
{
	for (int i = 0; i < MAX_STREAMS; i++)
		if (streams[i].used && streams[i].id == id)
			return &streams[i];
	return NULL;
}

/* Closing our end is how the helper learns the stream is gone: it sees EOF/HUP and exits (a RUN
 * kills its script). */
static void drop(struct stream *s)
{
	close(s->fd);
	free(s->in);
	memset(s, 0, sizeof *s);
}

static void reset(struct stream *s, const char *why)
{
	emit_reset(s->id, why);
	drop(s);
}

static void open_stream(uint32_t id, const unsigned char *payload, uint32_t len)
{
	struct stream *s = find(id);
	if (id == 0 || s) {
		if (s)
			reset(s, "stream id reused while open");
		emit_reset(id, "bad stream id");
		return;
	}
	if (len > MAX_VERB) {
		emit_reset(id, "verb line too long");
		return;
	}
	for (int i = 0; i < MAX_STREAMS && !s; i++)
		if (!streams[i].used)
			s = &streams[i];
	if (!s) {
		char why[80];
		snprintf(why, sizeof why, "busy: the agent serves at most %d streams at once", MAX_STREAMS);
		emit_reset(id, why);
		return;
	}
	int sv[2];
	unsigned char *in = malloc(WINDOW);
	if (!in || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		free(in);
		emit_reset(id, "agent out of resources");
		return;
	}
	char verb[MAX_VERB + 1];
	memcpy(verb, payload, len);
	verb[len] = '\0';
	pid_t pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close_others(sv[1]);
		signal(SIGCHLD, SIG_DFL);
		_exit(serve_verb(sv[1], verb));
	}
	close(sv[1]);
	if (pid < 0) {
		close(sv[0]);
		free(in);
		emit_reset(id, "agent cannot fork");
		return;
	}
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	*s = (struct stream){.used = 1, .id = id, .fd = sv[0], .in = in, .credit = WINDOW};
}

static void on_frame(int type, uint32_t id, const unsigned char *p, uint32_t len)
{
	struct stream *s = id ? find(id) : NULL;
	switch (type) {
	case F_OPEN:
		open_stream(id, p, len);
		return;
	case F_PING:
		emit(F_PONG, id, p, len > 64 ? 64 : len);
		return;
	case F_PONG:
		return;
	}
	/* Frames for a stream already gone are late, not wrong: dropped quietly. */
	if (!s)
		return;
	switch (type) {
	case F_DATA:
		if (s->host_closed || s->in_len + len > WINDOW)
			return reset(s, "data beyond the window or after close");
		memcpy(s->in + s->in_len, p, len);
		s->in_len += len;
		return;
	case F_CLOSE:
		s->host_closed = 1;
		return;
	case F_WINDOW:
		if (len != 4 || (uint64_t)s->credit + get32(p) > 0x7fffffff)
			return reset(s, "bad window frame");
		s->credit += get32(p);
		return;
	case F_RESET:
		return drop(s);
	default:
		return reset(s, "unknown frame type");
	}
}

/* Parses whole frames out of inbuf; returns how many bytes it used. */
static size_t parse(void)
{
	size_t at = 0;
	while (in_have - at >= HDR_LEN) {
		const unsigned char *h = inbuf + at;
		uint32_t id = get32(h + 1), len = get32(h + 5);
		if (len > MAX_PAYLOAD) {
			struct stream *s = id ? find(id) : NULL;
			if (s)
				reset(s, "frame longer than 65536 bytes");
			else
				emit_reset(id, "frame longer than 65536 bytes");
			skip = len;
			at += HDR_LEN;
			size_t now = in_have - at < skip ? in_have - at : skip;
			skip -= now;
			at += now;
			continue;
		}
		if (in_have - at < HDR_LEN + (size_t)len)
			break;
		on_frame(h[0], id, h + HDR_LEN, len);
		at += HDR_LEN + len;
	}
	return at;
}

/* Reads what the port has; 0 once the host end went away. */
static int read_port(int fd)
{
	for (;;) {
		unsigned char *dst = skip ? inbuf : inbuf + in_have;
		size_t room = skip ? (skip < IN_CAP ? skip : IN_CAP) : IN_CAP - in_have;
		ssize_t n = read(fd, dst, room);
		if (n < 0)
			return errno == EAGAIN || errno == EINTR;
		if (n == 0)
			return 0;
		if (skip) {
			skip -= (size_t)n;
			continue;
		}
		in_have += (size_t)n;
		size_t used = parse();
		memmove(inbuf, inbuf + used, in_have - used);
		in_have -= used;
	}
}

static void flush_local(struct stream *s)
{
	while (s->in_len) {
		ssize_t n = write(s->fd, s->in, s->in_len);
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0)
			n = (ssize_t)s->in_len; /* the helper is gone: its bytes are dropped, credit still flows */
		memmove(s->in, s->in + n, s->in_len - (size_t)n);
		s->in_len -= (size_t)n;
		s->consumed += (uint32_t)n;
	}
	if (s->consumed >= WINDOW / 4 || (s->consumed && !s->in_len)) {
		unsigned char c[4];
		put32(c, s->consumed);
		emit(F_WINDOW, s->id, c, 4);
		s->consumed = 0;
	}
	if (s->host_closed && !s->in_len && !s->shut) {
		shutdown(s->fd, SHUT_WR);
		s->shut = 1;
	}
}

static void read_local(struct stream *s)
{
	unsigned char buf[MAX_PAYLOAD];
	size_t room = s->credit < sizeof buf ? s->credit : sizeof buf;
	ssize_t n = read(s->fd, buf, room);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		s->local_eof = 1;
		emit(F_CLOSE, s->id, NULL, 0);
		return;
	}
	s->credit -= (uint32_t)n;
	emit(F_DATA, s->id, buf, (size_t)n);
}

static void reap(void)
{
	pid_t pid;
	while ((pid = waitpid(-1, NULL, WNOHANG)) > 0) {
		if (pid == vsock_pid) {
			logmsg("the vsock server exited");
			exit(1);
		}
	}
}

void mux_session(int port)
{
	static const char hello[] = "HELLO banger-agent 1\n";
	_Static_assert(PROTOCOL_VERSION == 1, "keep the HELLO line in step");
	in_have = 0, skip = 0, out_len = 0;
	if (write_all(port, hello, sizeof hello - 1) < 0)
		return;
	fcntl(port, F_SETFL, fcntl(port, F_GETFL) | O_NONBLOCK);
	for (;;) {
		struct pollfd p[MAX_STREAMS + 1];
		struct stream *who[MAX_STREAMS + 1];
		int fdv[MAX_STREAMS + 1];
		int n = 0;
		p[n++] = (struct pollfd){.fd = port, .events = POLLIN | (out_len ? POLLOUT : 0)};
		for (int i = 0; i < MAX_STREAMS; i++) {
			struct stream *s = &streams[i];
			if (!s->used)
				continue;
			short ev = (s->in_len ? POLLOUT : 0) | (!s->local_eof && s->credit && out_len < OUT_HIGH ? POLLIN : 0);
			who[n] = s;
			fdv[n] = s->fd;
			/* Past its EOF a helper's end reports HUP forever: only watched while bytes wait for it. */
			p[n++] = (struct pollfd){.fd = ev ? s->fd : -1, .events = ev};
		}
		if (poll(p, (nfds_t)n, 1000) < 0 && errno != EINTR)
			break;
		reap();
		if ((p[0].revents & POLLIN) && !read_port(port))
			break;
		if ((p[0].revents & (POLLHUP | POLLERR)) && !(p[0].revents & POLLIN))
			break;
		for (int i = 1; i < n; i++) {
			struct stream *s = who[i];
			if (!s->used || s->fd != fdv[i])
				continue; /* dropped or reused while handling the port */
			if ((p[i].revents & (POLLIN | POLLHUP | POLLERR)) && !s->local_eof && s->credit)
				read_local(s);
			flush_local(s);
			if (s->local_eof && s->host_closed && !s->in_len)
				drop(s);
		}
		if (out_len) {
			ssize_t w = write(port, out, out_len);
			if (w < 0 && errno != EAGAIN && errno != EINTR)
				break;
			if (w > 0) {
				memmove(out, out + w, out_len - (size_t)w);
				out_len -= (size_t)w;
			}
		}
	}
	for (int i = 0; i < MAX_STREAMS; i++)
		if (streams[i].used)
			drop(&streams[i]);
	fcntl(port, F_SETFL, fcntl(port, F_GETFL) & ~O_NONBLOCK);
}
