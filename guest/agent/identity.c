/*
 * `banger-agent identity SECONDS NANOSECONDS SEEDHEX`: the kernel's half of a restored clone's
 * re-identity (src/domain/reidentify.ts runs it from the RUN script). Images without perl (Alpine,
 * Void) have no other way to make these calls, and a static program is also the cheapest process
 * a restored TCG guest can start:
 *   - the wall clock, which stood still while the snapshot waited on disk (clock_settime);
 *   - fresh host bytes credited to the input pool (RNDADDENTROPY) and the CRNG reseeded
 *     (RNDRESEEDCRNG), so no two clones share RNG output;
 *   - /run/banger-boot_id bound over /proc/sys/kernel/random/boot_id, which the kernel picks once
 *     and refuses to rewrite;
 *   - systemd's saved random seed removed (it was the golden boot's).
 * Every step must work: the first failure is reported and the exit code is 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"

/* <linux/random.h>, which musl's toolchain lacks: _IOW('R', 0x03, int[2]) and _IO('R', 0x07). */
#define RNDADDENTROPY 0x40085203
#define RNDRESEEDCRNG 0x5207
#define SEED_MAX 512

static int fail(const char *what)
{
	fprintf(stderr, "banger-agent identity: %s: %s\n", what, strerror(errno));
	return 1;
}

static int parse_u64(const char *s, unsigned long long max, unsigned long long *out)
{
	char *end;
	if (!*s || strspn(s, "0123456789") != strlen(s))
		return -1;
	errno = 0;
	*out = strtoull(s, &end, 10);
	return errno || *end || *out > max ? -1 : 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int identity_main(int argc, char **argv)
{
	unsigned long long sec, nsec;
	struct {
		int entropy_count;
		int buf_size;
		unsigned char buf[SEED_MAX];
	} pool;
	size_t hexlen = argc == 5 ? strlen(argv[4]) : 0;
	if (argc != 5 || parse_u64(argv[2], 1ULL << 40, &sec) || parse_u64(argv[3], 999999999, &nsec) || hexlen < 2 ||
	    hexlen % 2 || hexlen / 2 > SEED_MAX) {
		fputs("usage: banger-agent identity SECONDS NANOSECONDS SEEDHEX (2-1024 hex digits)\n", stderr);
		return 2;
	}
	for (size_t i = 0; i < hexlen / 2; i++) {
		int hi = hexval(argv[4][2 * i]), lo = hexval(argv[4][2 * i + 1]);
		if (hi < 0 || lo < 0) {
			fputs("banger-agent identity: SEEDHEX has a character that is not a hex digit\n", stderr);
			return 2;
		}
		pool.buf[i] = (unsigned char)(hi << 4 | lo);
	}
	pool.buf_size = (int)(hexlen / 2);
	pool.entropy_count = 8 * pool.buf_size;

	struct timespec ts = {.tv_sec = (time_t)sec, .tv_nsec = (long)nsec};
	if (clock_settime(CLOCK_REALTIME, &ts) < 0)
		return fail("clock_settime");
	int fd = open("/dev/urandom", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return fail("open /dev/urandom");
	if (ioctl(fd, RNDADDENTROPY, &pool) < 0)
		return fail("RNDADDENTROPY");
	if (ioctl(fd, RNDRESEEDCRNG) < 0)
		return fail("RNDRESEEDCRNG");
	close(fd);
	memset(&pool, 0, sizeof pool);
	if (mount("/run/banger-boot_id", "/proc/sys/kernel/random/boot_id", NULL, MS_BIND, NULL) < 0)
		return fail("bind /run/banger-boot_id over /proc/sys/kernel/random/boot_id");
	if (unlink("/var/lib/systemd/random-seed") < 0 && errno != ENOENT)
		return fail("unlink /var/lib/systemd/random-seed");
	return 0;
}
