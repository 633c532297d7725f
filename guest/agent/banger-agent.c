/*
 * banger-agent: the one program of banger's that runs inside guests. It makes the guest's local
 * TCP ports reachable from the host without any guest network, runs bangerd's re-identity script,
 * and reports when services listen. Protocol and build: docs/agent.md. Build: `make agent`.
 *
 * Transports (both at once when both exist):
 *   vsock (Firecracker's hybrid vsock, QEMU's vhost-vsock-device): every connection is one stream.
 *     Port 22 is forwarded straight to 127.0.0.1:22 (no verb: what the host's Firecracker path
 *     already dials); the control port takes a verb line first, then the stream's bytes.
 *   virtio-serial port org.banger.agent (QEMU without vhost-vsock): one byte stream carrying many
 *     streams as frames (mux.c). Per host connection: "HELLO banger-agent 1\n", then frames; when
 *     the host end goes away every stream is reset and the agent waits for the next one.
 *
 * Options:
 *   --port PATH         the virtio-serial device to serve (default: the /dev/vport* whose
 *                       /sys/class/virtio-ports/<dev>/name is org.banger.agent)
 *   --serial-unix PATH  test only: connect to this Unix socket and treat it as the port (the test
 *                       plays QEMU's chardev); reconnects after each host session
 *   --no-serial         serve vsock only
 *   --no-vsock          serve the virtio-serial port only
 *   --vsock-port N      the vsock control port (default 1024)
 *   --help              this text
 *
 * `banger-agent identity SECONDS NANOSECONDS SEEDHEX` is not the service: the re-identity script
 * runs it once in a restored clone (identity.c).
 *
 * Every device node it uses is root-only; it speaks nothing but its verbs (verbs.c).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"

#define AGENT_NAME "org.banger.agent"

/* <linux/vm_sockets.h>, which musl's toolchain lacks; this layout is the kernel's stable ABI. */
#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
#define VMADDR_CID_ANY 0xffffffffu
struct sockaddr_vm {
	sa_family_t svm_family;
	unsigned short svm_reserved1;
	unsigned int svm_port;
	unsigned int svm_cid;
	unsigned char svm_zero[sizeof(struct sockaddr) - sizeof(sa_family_t) - sizeof(unsigned short) - 2 * sizeof(unsigned int)];
};

pid_t vsock_pid;

void logmsg(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("banger-agent: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

int write_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n) {
		ssize_t w = write(fd, c, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			struct pollfd pf = {.fd = fd, .events = POLLOUT};
			poll(&pf, 1, -1);
			continue;
		}
		if (w <= 0)
			return -1;
		c += w, n -= (size_t)w;
	}
	return 0;
}

void close_others(int keep)
{
	long max = sysconf(_SC_OPEN_MAX);
	if (max < 0 || max > 65536)
		max = 65536;
	for (int fd = 3; fd < max; fd++)
		if (fd != keep)
			close(fd);
}

/* devtmpfs names the port vportNpM; its name lives in sysfs, so no udev rule is needed. */
static int find_port(char *path, size_t size)
{
	DIR *d = opendir("/sys/class/virtio-ports");
	struct dirent *e;
	int found = 0;
	while (d && !found && (e = readdir(d))) {
		char f[300], name[64] = "";
		snprintf(f, sizeof f, "/sys/class/virtio-ports/%s/name", e->d_name);
		FILE *fp = fopen(f, "re");
		if (!fp)
			continue;
		found = fgets(name, sizeof name, fp) && strcmp(strtok(name, "\n") ? name : "", AGENT_NAME) == 0;
		fclose(fp);
		if (found)
			snprintf(path, size, "/dev/%s", e->d_name);
	}
	if (d)
		closedir(d);
	return found;
}

static int vsock_listen(unsigned port)
{
	struct sockaddr_vm a = {.svm_family = AF_VSOCK, .svm_port = port, .svm_cid = VMADDR_CID_ANY};
	int s = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -1;
	if (bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 16) < 0) {
		close(s);
		return -1;
	}
	return s;
}

/* Port 22 is a plain forward; the control port serves a verb. One process per connection. */
static void vsock_serve(int ssh, int ctl)
{
	signal(SIGCHLD, SIG_IGN); /* connection helpers reap themselves */
	for (;;) {
		struct pollfd p[2] = {{.fd = ssh, .events = POLLIN}, {.fd = ctl, .events = POLLIN}};
		if (poll(p, 2, -1) < 0)
			continue;
		for (int i = 0; i < 2; i++) {
			if (!(p[i].revents & POLLIN))
				continue;
			int c = accept4(p[i].fd, NULL, NULL, SOCK_CLOEXEC);
			if (c < 0)
				continue;
			if (fork() == 0) {
				prctl(PR_SET_PDEATHSIG, SIGKILL);
				signal(SIGCHLD, SIG_DFL);
				close_others(c);
				if (i == 1)
					_exit(serve_conn(c));
				int s = connect_local(22);
				if (s >= 0)
					relay(c, s);
				_exit(s < 0);
			}
			close(c);
		}
	}
}

static pid_t start_vsock(unsigned ctl_port)
{
	int ssh = vsock_listen(22), ctl = vsock_listen(ctl_port);
	if (ssh < 0 || ctl < 0) {
		if (ssh >= 0)
			close(ssh);
		if (ctl >= 0)
			close(ctl);
		return 0;
	}
	pid_t pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		vsock_serve(ssh, ctl);
	}
	close(ssh);
	close(ctl);
	logmsg("vsock: port 22 -> 127.0.0.1:22, control port %u", ctl_port);
	return pid;
}

static int unix_connect(const char *path)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
	for (;;) {
		int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (s >= 0 && connect(s, (struct sockaddr *)&a, sizeof a) == 0)
			return s;
		if (s >= 0)
			close(s);
		usleep(100 * 1000);
	}
}

/* Bytes a past host left in the port are not for the next one. */
static void drain(int fd)
{
	char buf[4096];
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	while (read(fd, buf, sizeof buf) > 0)
		;
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
}

static void usage(int code)
{
	fputs("usage: banger-agent [--port PATH | --serial-unix PATH] [--no-serial] [--no-vsock] [--vsock-port N]\n", code ? stderr : stdout);
	exit(code);
}

int main(int argc, char **argv)
{
	const char *port = NULL, *unix_path = NULL;
	int serial = 1, vsock = 1;
	long ctl_port = 1024;
	if (argc > 1 && strcmp(argv[1], "identity") == 0)
		return identity_main(argc, argv);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--port") == 0 && v)
			port = v, i++;
		else if (strcmp(a, "--serial-unix") == 0 && v)
			unix_path = v, i++;
		else if (strcmp(a, "--vsock-port") == 0 && v && (ctl_port = strtol(v, NULL, 10)) > 0 && ctl_port != 22)
			i++;
		else if (strcmp(a, "--no-serial") == 0)
			serial = 0;
		else if (strcmp(a, "--no-vsock") == 0)
			vsock = 0;
		else
			usage(strcmp(a, "--help") == 0 ? 0 : 2);
	}
	signal(SIGPIPE, SIG_IGN);
	vsock_pid = vsock ? start_vsock((unsigned)ctl_port) : 0;
	char found[300];
	if (serial && !port && !unix_path && find_port(found, sizeof found))
		port = found;
	if (!serial || (!port && !unix_path)) {
		if (!vsock_pid) {
			logmsg("no vsock device and no %s port: nothing to serve", AGENT_NAME);
			return 0;
		}
		while (waitpid(vsock_pid, NULL, 0) < 0 && errno == EINTR)
			;
		return 1; /* the service manager restarts us */
	}
	logmsg("virtio-serial %s -> 127.0.0.1:<port>", unix_path ? unix_path : port);
	int fd = unix_path ? -1 : open(port, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (!unix_path && fd < 0) {
		logmsg("cannot open %s: %s", port, strerror(errno));
		return 1;
	}
	for (;;) {
		if (unix_path)
			fd = unix_connect(unix_path);
		/* On a virtio port the HELLO write blocks until a host end connects. */
		mux_session(fd);
		if (unix_path)
			close(fd);
		else
			drain(fd);
	}
}
