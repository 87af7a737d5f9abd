//! Thin wrappers over the system calls the benchmarks use by hand: eventfds,
//! a raw epoll set, socket pairs, CPU affinity, timer slack, the fd limit,
//! and per-thread counters the kernel keeps (write calls, voluntary context
//! switches). None of them allocates once set up, so they may run inside
//! timed, allocation-counted batches.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Fails with the last OS error if `rc` is negative.
fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Wraps a file descriptor just returned by a successful system call.
fn owned(fd: libc::c_int) -> OwnedFd {
    // SAFETY: callers pass an fd that a system call has just returned to
    // this thread (checked non-negative): it is open and nothing else owns
    // it.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// A close-on-exec eventfd, non-blocking unless `blocking`.
pub fn eventfd_with(blocking: bool) -> io::Result<OwnedFd> {
    let flags = if blocking {
        libc::EFD_CLOEXEC
    } else {
        libc::EFD_CLOEXEC | libc::EFD_NONBLOCK
    };
    // SAFETY: eventfd takes no pointers; it returns a new fd or -1.
    let fd = check(unsafe { libc::eventfd(0, flags) })?;
    Ok(owned(fd))
}

/// A non-blocking, close-on-exec eventfd.
pub fn eventfd() -> io::Result<OwnedFd> {
    eventfd_with(false)
}

/// Adds one to an eventfd's counter.
pub fn write_one(fd: RawFd) -> io::Result<()> {
    let one = 1u64.to_ne_bytes();
    // SAFETY: `one` is a live 8-byte buffer for the duration of the call;
    // `fd` is an eventfd owned by the caller.
    let n = unsafe { libc::write(fd, one.as_ptr().cast(), one.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Drains an eventfd; returns whether it was set (`false` if it would
/// block).
pub fn read_one(fd: RawFd) -> io::Result<bool> {
    let mut buf = [0u8; 8];
    // SAFETY: `buf` is a live, exclusively borrowed 8-byte buffer for the
    // duration of the call; `fd` is an eventfd owned by the caller.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        let err = io::Error::last_os_error();
        return match err.kind() {
            io::ErrorKind::WouldBlock => Ok(false),
            _ => Err(err),
        };
    }
    Ok(n > 0)
}

/// Writes one byte to a socket.
pub fn send_byte(fd: RawFd) -> io::Result<()> {
    let byte = [1u8];
    // SAFETY: `byte` is a live 1-byte buffer for the duration of the call;
    // `fd` is a socket owned by the caller.
    let n = unsafe { libc::write(fd, byte.as_ptr().cast(), 1) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Reads what a non-blocking socket holds (up to 64 bytes); returns how
/// many bytes, 0 if it would block.
pub fn recv_bytes(fd: RawFd) -> io::Result<usize> {
    let mut buf = [0u8; 64];
    // SAFETY: `buf` is a live, exclusively borrowed 64-byte buffer for the
    // duration of the call; `fd` is a socket owned by the caller.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        let err = io::Error::last_os_error();
        return match err.kind() {
            io::ErrorKind::WouldBlock => Ok(0),
            _ => Err(err),
        };
    }
    Ok(n as usize)
}

/// A connected pair of non-blocking, close-on-exec Unix stream sockets.
pub fn socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: socketpair writes two fds into `fds`, a live local array of
    // two ints.
    check(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    })?;
    Ok((owned(fds[0]), owned(fds[1])))
}

/// A level-triggered epoll set, by hand: the reference that the event loop
/// is measured against.
#[derive(Debug)]
pub struct Epoll {
    epfd: OwnedFd,
    events: Vec<libc::epoll_event>,
}

impl Epoll {
    /// An empty set with room for 64 events per wait.
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: epoll_create1 takes no pointers; it returns a new fd or -1.
        let epfd = check(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        Ok(Epoll {
            epfd: owned(epfd),
            events: vec![libc::epoll_event { events: 0, u64: 0 }; 64],
        })
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, data: u64) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLPRI) as u32,
            u64: data,
        };
        // SAFETY: epoll_ctl reads `event`, a live local, and touches no
        // other memory; the fds are open and owned by the caller.
        check(unsafe { libc::epoll_ctl(self.epfd.as_raw_fd(), op, fd, &mut event) })?;
        Ok(())
    }

    /// Watches `fd` for reading, reporting `data` with its events.
    pub fn add(&self, fd: RawFd, data: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, data)
    }

    /// Stops watching `fd`.
    pub fn delete(&self, fd: RawFd) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_DEL, fd, 0)
    }

    /// Waits up to `timeout_ms` (-1: forever) and returns the data of the
    /// fds that are ready.
    pub fn wait(&mut self, timeout_ms: libc::c_int) -> io::Result<impl Iterator<Item = u64> + '_> {
        let n = loop {
            // SAFETY: `events` is a live, exclusively borrowed array of
            // `events.len()` epoll_event structs that the kernel writes into.
            let n = unsafe {
                libc::epoll_wait(
                    self.epfd.as_raw_fd(),
                    self.events.as_mut_ptr(),
                    self.events.len() as libc::c_int,
                    timeout_ms,
                )
            };
            match check(n) {
                Ok(n) => break n as usize,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        Ok(self.events[..n].iter().map(|e| e.u64))
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit if it is below
/// `needed`; fails if the hard limit is.
pub fn allow_fds(needed: u64) -> io::Result<()> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit struct into `limit`, a live,
    // exclusively borrowed local.
    check(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) })?;
    if limit.rlim_cur >= needed as libc::rlim_t {
        return Ok(());
    }
    if limit.rlim_max < needed as libc::rlim_t {
        return Err(io::Error::other(format!(
            "{needed} fds are needed; the hard RLIMIT_NOFILE is {} (raise it: ulimit -Hn)",
            limit.rlim_max
        )));
    }
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: setrlimit reads one rlimit struct from `limit`, a live local.
    check(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) })?;
    Ok(())
}

/// The CPUs this process may run on, in order.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: an all-zero cpu_set_t is a valid, empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: sched_getaffinity writes at most `size_of::<cpu_set_t>()`
    // bytes into `set`, a live, exclusively borrowed local.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc < 0 {
        return Vec::new();
    }
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: CPU_ISSET reads bit `cpu` of `set`; `cpu` is below
        // CPU_SETSIZE.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect()
}

/// Pins the calling thread to `cpu`.
pub fn pin_to(cpu: usize) -> io::Result<()> {
    // SAFETY: an all-zero cpu_set_t is a valid, empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: CPU_SET writes bit `cpu` of `set`, a live local; callers pass
    // a CPU number from `allowed_cpus`, below CPU_SETSIZE.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: sched_setaffinity reads `size_of::<cpu_set_t>()` bytes from
    // `set`, a live local; pid 0 is the calling thread.
    check(unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) })?;
    Ok(())
}

/// Sets the calling thread's timer slack; `None` restores the thread's
/// default (the slack it started with).
pub fn set_timer_slack(slack: Option<Duration>) -> io::Result<()> {
    let ns = slack.map_or(0, |d| {
        d.as_nanos().clamp(1, u64::MAX as u128) as libc::c_ulong
    });
    // SAFETY: PR_SET_TIMERSLACK takes its value by value and touches no
    // memory of ours.
    check(unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, ns, 0, 0, 0) })?;
    Ok(())
}

/// The calling thread's timer slack.
pub fn timer_slack() -> io::Result<Duration> {
    // SAFETY: PR_GET_TIMERSLACK takes no pointer and returns the slack in
    // nanoseconds, or -1.
    let ns = check(unsafe { libc::prctl(libc::PR_GET_TIMERSLACK, 0, 0, 0, 0) })?;
    Ok(Duration::from_nanos(ns as u64))
}

/// The calling thread's voluntary context switches so far: how often it
/// blocked.
pub fn voluntary_switches() -> u64 {
    // SAFETY: an all-zero rusage is a valid value to be overwritten.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes one rusage struct into `usage`, a live,
    // exclusively borrowed local.
    if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) } < 0 {
        return 0;
    }
    usage.ru_nvcsw as u64
}

/// Write system calls the calling thread has made so far (`syscw` in
/// `/proc/thread-self/io`), read without allocating; 0 if the kernel does
/// not keep the count.
pub fn write_syscalls() -> u64 {
    const PATH: &[u8] = b"/proc/thread-self/io\0";
    // SAFETY: PATH is a NUL-terminated string that outlives the call.
    let fd = unsafe { libc::open(PATH.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return 0;
    }
    let fd = owned(fd);
    let mut buf = [0u8; 512];
    // SAFETY: `buf` is a live, exclusively borrowed buffer of `buf.len()`
    // bytes for the duration of the call.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    if n <= 0 {
        return 0;
    }
    parse_field(&buf[..n as usize], b"syscw:").unwrap_or(0)
}

/// The number after `key` in a `key: value` per line text.
fn parse_field(text: &[u8], key: &[u8]) -> Option<u64> {
    text.split(|&b| b == b'\n')
        .find_map(|line| line.strip_prefix(key))
        .map(|rest| {
            rest.iter()
                .skip_while(|b| b.is_ascii_whitespace())
                .take_while(|b| b.is_ascii_digit())
                .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'))
        })
}

/// The monotonic clock in nanoseconds, as `clock_nanosleep` reads it.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into `ts`, a live local.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Sleeps until `deadline_ns` on the monotonic clock with
/// `clock_nanosleep(TIMER_ABSTIME)`.
pub fn sleep_until_ns(deadline_ns: u64) -> io::Result<()> {
    let ts = libc::timespec {
        tv_sec: (deadline_ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (deadline_ns % 1_000_000_000) as libc::c_long,
    };
    loop {
        // SAFETY: clock_nanosleep reads `ts`, a live local; a null
        // remainder is allowed with TIMER_ABSTIME.
        let rc = unsafe {
            libc::clock_nanosleep(
                libc::CLOCK_MONOTONIC,
                libc::TIMER_ABSTIME,
                &ts,
                std::ptr::null_mut(),
            )
        };
        match rc {
            0 => return Ok(()),
            libc::EINTR => continue,
            e => return Err(io::Error::from_raw_os_error(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eventfds_set_and_drain() {
        let fd = eventfd().unwrap();
        assert!(!read_one(fd.as_raw_fd()).unwrap());
        write_one(fd.as_raw_fd()).unwrap();
        assert!(read_one(fd.as_raw_fd()).unwrap());
    }

    #[test]
    fn sockets_carry_bytes() {
        let (a, b) = socketpair().unwrap();
        assert_eq!(recv_bytes(b.as_raw_fd()).unwrap(), 0);
        send_byte(a.as_raw_fd()).unwrap();
        assert_eq!(recv_bytes(b.as_raw_fd()).unwrap(), 1);
    }

    #[test]
    fn epoll_reports_the_ready_fd() {
        let mut ep = Epoll::new().unwrap();
        let fd = eventfd().unwrap();
        ep.add(fd.as_raw_fd(), 7).unwrap();
        assert_eq!(ep.wait(0).unwrap().count(), 0);
        write_one(fd.as_raw_fd()).unwrap();
        assert_eq!(ep.wait(0).unwrap().collect::<Vec<_>>(), [7]);
        ep.delete(fd.as_raw_fd()).unwrap();
        assert_eq!(ep.wait(0).unwrap().count(), 0);
    }

    #[test]
    fn write_calls_are_counted_per_thread() {
        let fd = eventfd().unwrap();
        let before = write_syscalls();
        write_one(fd.as_raw_fd()).unwrap();
        write_one(fd.as_raw_fd()).unwrap();
        let after = write_syscalls();
        // Kernels without task I/O accounting report 0 throughout.
        assert!(after == 0 || after - before == 2, "{before} -> {after}");
    }

    #[test]
    fn fields_parse() {
        let text = b"rchar: 1\nsyscw: 42\nread_bytes: 0\n";
        assert_eq!(parse_field(text, b"syscw:"), Some(42));
        assert_eq!(parse_field(text, b"nope:"), None);
    }

    #[test]
    fn the_sleep_floor_sleeps_until_the_deadline() {
        let deadline = monotonic_ns() + 200_000;
        sleep_until_ns(deadline).unwrap();
        assert!(monotonic_ns() >= deadline);
    }

    #[test]
    fn timer_slack_round_trips() {
        std::thread::spawn(|| {
            set_timer_slack(Some(Duration::from_nanos(1))).unwrap();
            assert_eq!(timer_slack().unwrap(), Duration::from_nanos(1));
            set_timer_slack(None).unwrap();
            assert!(timer_slack().unwrap() > Duration::from_nanos(1));
        })
        .join()
        .unwrap();
    }
}
