/* Lets Python sleep under faketime with FAKETIME_DONT_FAKE_MONOTONIC=1.
 *
 * libfaketime 0.9.10 (Debian 12) shifts absolute CLOCK_MONOTONIC sleeps even when told
 * not to fake the monotonic clock (wolfcw/libfaketime#426), and Python >= 3.11 sleeps
 * that way, so every time.sleep() fails with EINVAL. Preloaded before libfaketime, this
 * sends monotonic sleeps straight to the kernel and everything else on to libfaketime.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int clock_nanosleep(clockid_t id, int flags, const struct timespec *req, struct timespec *rem) {
    if (id == CLOCK_MONOTONIC)
        return syscall(SYS_clock_nanosleep, id, flags, req, rem) == 0 ? 0 : errno;
    static int (*next)(clockid_t, int, const struct timespec *, struct timespec *);
    if (!next)
        next = dlsym(RTLD_NEXT, "clock_nanosleep");
    return next(id, flags, req, rem);
}
