/*
 * banger-agent's verbs, each served in a process of its own on one connected fd: a vsock
 * connection, or one end of a socketpair whose other end the multiplexer (mux.c) feeds. Blocking
 * I/O is fine here: a slow stream only ever stalls its own process.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"

static void say(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(int fd, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof line - 1)
		n = sizeof line - 1;
	write_all(fd, line, (size_t)n);
}

int parse_port(const char *s)
{
	long v = 0;
	if (*s == '\0' || strlen(s) > 5)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (*s - '0');
	}
	return v >= 1 && v <= 65535 ? (int)v : -1;
}

int connect_local(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -1;
	if (connect(s, (struct sockaddr *)&a, sizeof a) < 0) {
		int e = errno;
		close(s);
		errno = e;
		return -1;
	}
	return s;
}

/* One direction of a relay ended: pass the EOF on without closing the other direction. */
static void half_close(int fd)
{
	if (shutdown(fd, SHUT_WR) < 0 && errno == ENOTSOCK)
		close(fd);
}

/* Both directions at once, each with its own buffer, writing only what the far side takes: a
 * blocking copy would deadlock against a peer that writes before it reads (an echo). */
void relay(int a, int b)
{
	static char buf[2][65536];
	int src[2] = {a, b}, dst[2] = {b, a};
	size_t len[2] = {0, 0}, off[2] = {0, 0};
	int open_dir[2] = {1, 1};
	fcntl(a, F_SETFL, fcntl(a, F_GETFL) | O_NONBLOCK);
	fcntl(b, F_SETFL, fcntl(b, F_GETFL) | O_NONBLOCK);
	while (open_dir[0] || open_dir[1]) {
		struct pollfd p[4];
		for (int i = 0; i < 2; i++) {
			p[i] = (struct pollfd){.fd = open_dir[i] && !len[i] ? src[i] : -1, .events = POLLIN};
			p[2 + i] = (struct pollfd){.fd = len[i] ? dst[i] : -1, .events = POLLOUT};
		}
		if (poll(p, 4, -1) < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		for (int i = 0; i < 2; i++) {
			if (p[i].revents) {
				ssize_t n = read(src[i], buf[i], sizeof buf[i]);
				if (n > 0)
					len[i] = (size_t)n, off[i] = 0;
				else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
					open_dir[i] = 0;
					half_close(dst[i]);
				}
			}
			if (p[2 + i].revents) {
				ssize_t n = write(dst[i], buf[i] + off[i], len[i]);
				if (n > 0) {
					off[i] += (size_t)n, len[i] -= (size_t)n;
				} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
					/* The far side is gone: nothing more can go that way. */
					len[i] = 0, open_dir[i] = 0;
					shutdown(src[i], SHUT_RD);
				}
			}
		}
	}
}

/* Whether a TCP socket listens on port (IPv4 or IPv6), read from /proc: probing with a connect
 * would leave a pre-auth line in sshd's log. */
static int listening(int port)
{
	static const char *files[] = {"/proc/net/tcp", "/proc/net/tcp6"};
	char line[512], want[8];
	snprintf(want, sizeof want, ":%04X", port);
	for (int f = 0; f < 2; f++) {
		FILE *fp = fopen(files[f], "re");
		if (!fp)
			continue;
		int hit = 0;
		while (!hit && fgets(line, sizeof line, fp)) {
			char local[64], remote[64], st[8];
			if (sscanf(line, " %*[^:]: %63s %63s %7s", local, remote, st) != 3)
				continue;
			size_t l = strlen(local);
			hit = strcmp(st, "0A") == 0 && l > 5 && strcmp(local + l - 5, want) == 0;
		}
		fclose(fp);
		if (hit)
			return 1;
	}
	return 0;
}

static int do_connect(int fd, const char *arg)
{
	int port = parse_port(arg);
	if (port < 0) {
		say(fd, "ERR bad port \"%.16s\", expected 1-65535\n", arg);
		return 1;
	}
	int s = connect_local(port);
	if (s < 0) {
		if (errno == ECONNREFUSED)
			say(fd, "ERR nothing listens on guest port %d\n", port);
		else
			say(fd, "ERR cannot reach guest port %d: %s\n", port, strerror(errno));
		return 1;
	}
	say(fd, "OK %d\n", port);
	relay(fd, s);
	return 0;
}

/* Reads exactly n bytes, or fewer only at EOF; returns the count. */
static size_t read_full(int fd, char *p, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = read(fd, p + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	return got;
}

/* The script is read whole before anything runs, so a copy cut short never runs at all. It is fed
 * to sh on stdin (never argv or a file: it carries a private host key). */
static int do_run(int fd, const char *arg)
{
	long n = strtol(arg, NULL, 10);
	if (*arg < '1' || *arg > '9' || strspn(arg, "0123456789") != strlen(arg) || strlen(arg) > 7 || n > RUN_MAX) {
		say(fd, "ERR bad RUN size \"%.16s\", expected 1-%d bytes\n", arg, RUN_MAX);
		return 1;
	}
	char *script = malloc((size_t)n);
	if (!script) {
		say(fd, "ERR out of memory\n");
		return 1;
	}
	size_t got = read_full(fd, script, (size_t)n);
	if (got < (size_t)n) {
		say(fd, "ERR truncated RUN: %zu of %ld bytes came, nothing ran\n", got, n);
		return 1;
	}
	int in[2], out[2];
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0) {
		say(fd, "ERR pipe: %s\n", strerror(errno));
		return 1;
	}
	pid_t pid = fork();
	if (pid == 0) {
		setsid();
		dup2(in[0], 0);
		dup2(out[1], 1);
		dup2(out[1], 2);
		signal(SIGPIPE, SIG_DFL);
		execl("/bin/sh", "sh", "-s", (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	if (pid < 0) {
		say(fd, "ERR fork: %s\n", strerror(errno));
		return 1;
	}
	say(fd, "OK RUN\n");
	size_t sent = 0;
	int gone = 0;
	char buf[16384];
	for (int out_open = 1; out_open && !gone;) {
		struct pollfd p[3] = {{.fd = out[0], .events = POLLIN}, {.fd = sent < (size_t)n ? in[1] : -1, .events = POLLOUT}, {.fd = fd, .events = 0}};
		if (poll(p, 3, -1) < 0 && errno != EINTR)
			break;
		if (p[2].revents & (POLLHUP | POLLERR))
			gone = 1; /* the host reset the stream: the script dies with it */
		if (p[1].revents) {
			ssize_t w = write(in[1], script + sent, (size_t)n - sent);
			sent = w > 0 ? sent + (size_t)w : (size_t)n;
			if (sent == (size_t)n)
				close(in[1]);
		}
		if (p[0].revents) {
			ssize_t r = read(out[0], buf, sizeof buf);
			if (r <= 0)
				out_open = 0;
			else if (write_all(fd, buf, (size_t)r) < 0)
				gone = 1;
		}
	}
	if (gone)
		kill(-pid, SIGKILL);
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	free(script);
	int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	/* bangerd's wrapping already reports its own "EXIT <code>" from a trap; this line covers a bare
	 * script and a shell that died of a signal (the host stops at the first one). */
	say(fd, "EXIT %d\n", code);
	return 0;
}

static int do_ready(int fd, char *args)
{
	int ports[READY_MAX_PORTS], count = 0, seen[READY_MAX_PORTS] = {0};
	for (char *save = NULL, *t = strtok_r(args, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
		int p = parse_port(t);
		if (p < 0 || count == READY_MAX_PORTS) {
			say(fd, "ERR READY takes 1-%d ports of 1-65535, got \"%.16s\"\n", READY_MAX_PORTS, t);
			return 1;
		}
		ports[count++] = p;
	}
	if (count == 0) {
		say(fd, "ERR READY takes 1-%d ports of 1-65535\n", READY_MAX_PORTS);
		return 1;
	}
	say(fd, "OK READY\n");
	/* /proc cannot be watched, so it is read every 100 ms; the poll doubles as the wait and as the
	 * check that the host still listens. */
	for (int left = count;;) {
		for (int i = 0; i < count; i++) {
			if (!seen[i] && listening(ports[i])) {
				seen[i] = 1;
				say(fd, "LISTEN %d\n", ports[i]);
				if (--left == 0)
					say(fd, "READY\n");
			}
		}
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int r = poll(&p, 1, left ? 100 : -1);
		if (r > 0) {
			char c[256];
			if (read(fd, c, sizeof c) <= 0)
				return 0; /* the host is done with the stream */
		}
	}
}

int serve_verb(int fd, const char *verb)
{
	char v[MAX_VERB + 1];
	snprintf(v, sizeof v, "%s", verb);
	char *arg = strchr(v, ' ');
	if (arg)
		*arg++ = '\0';
	if (arg && strcmp(v, "CONNECT") == 0)
		return do_connect(fd, arg);
	if (arg && strcmp(v, "RUN") == 0)
		return do_run(fd, arg);
	if (arg && strcmp(v, "READY") == 0)
		return do_ready(fd, arg);
	say(fd, "ERR unknown verb \"%.32s\", expected CONNECT <port>, RUN <bytes> or READY <port>...\n", v);
	return 1;
}

int serve_conn(int fd)
{
	char line[MAX_VERB + 1];
	size_t n = 0;
	/* A byte at a time: nothing past the line may be consumed (a RUN script follows it). */
	for (;;) {
		char c;
		ssize_t r = read(fd, &c, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return 1;
		if (c == '\n')
			break;
		if (n == MAX_VERB) {
			say(fd, "ERR verb line longer than %d bytes\n", MAX_VERB);
			return 1;
		}
		line[n++] = c;
	}
	line[n] = '\0';
	return serve_verb(fd, line);
}
