//! The new process: `clone(2)` into new namespaces, wait for the parent, walk
//! the recipe from [`super::plan`], then `execve(2)` the user's command as
//! PID 1 of the new PID namespace.
//!
//! Between `clone` and `execve` the child only makes system calls on data
//! the parent prepared: no memory allocation, no locks. (After `clone` only
//! the calling thread exists in the child; had another thread of the parent
//! held the allocator's lock at that moment, `malloc` would deadlock.) Two pipes connect the two sides, the classic
//! way: the child blocks reading the *go* pipe until the parent has put it
//! into its cgroup and network (and recorded its PID); the close-on-exec
//! *error* pipe stays silent when `execve` succeeds and otherwise carries
//! which step failed and its errno.

use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::ptr;

use libc::{c_char, c_int};
use nix::sched::CloneFlags;

use super::plan::Op;

/// What the child reports through the error pipe: the failed step (index
/// into the recipe, or [`EXEC_STEP`]) and errno.
pub const EXEC_STEP: u32 = u32::MAX;

/// The command, prepared for `execve`.
pub struct Exec {
    pub candidates: Vec<CString>,
    argv: Vec<CString>,
    envp: Vec<CString>,
    argv_ptrs: Vec<*const c_char>,
    envp_ptrs: Vec<*const c_char>,
}

impl Exec {
    pub fn new(candidates: Vec<String>, argv: &[String], env: &[(String, String)]) -> Result<Exec, String> {
        let cs = |s: &str| CString::new(s).map_err(|_| format!("{s:?} contains a NUL byte"));
        let candidates = candidates.iter().map(|s| cs(s)).collect::<Result<Vec<_>, _>>()?;
        let argv = argv.iter().map(|s| cs(s)).collect::<Result<Vec<_>, _>>()?;
        let envp = env.iter().map(|(k, v)| cs(&format!("{k}={v}"))).collect::<Result<Vec<_>, _>>()?;
        let mut argv_ptrs: Vec<*const c_char> = argv.iter().map(|c| c.as_ptr()).collect();
        argv_ptrs.push(ptr::null());
        let mut envp_ptrs: Vec<*const c_char> = envp.iter().map(|c| c.as_ptr()).collect();
        envp_ptrs.push(ptr::null());
        Ok(Exec { candidates, argv, envp, argv_ptrs, envp_ptrs })
    }

    pub fn argv(&self) -> &[CString] {
        &self.argv
    }

    pub fn env(&self) -> &[CString] {
        &self.envp
    }
}

/// The child's stack until it execs (in .bss: no mmap/munmap per run).
static mut CHILD_STACK: [u8; 128 << 10] = [0; 128 << 10];

/// The parent's ends of the two pipes, and the child's PID.
pub struct Spawned {
    pub pid: i32,
    /// Write one byte (or close) to let the child go on.
    pub go: OwnedFd,
    /// Read: empty at EOF means `execve` succeeded.
    pub errors: OwnedFd,
}

fn pipe_cloexec() -> nix::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
}

/// `clone(flags|SIGCHLD)` a child that will run `ops` then `exec`. With
/// `wait_first` it waits for the parent's go before the recipe rather than
/// after it (a user namespace needs its uid/gid maps before anything else).
pub fn spawn(flags: CloneFlags, ops: &[Op], exec: &Exec, wait_first: bool) -> Result<Spawned, crate::kernel::KernelError> {
    let sys = |e: nix::Error, what: &str| crate::kernel::KernelError::Sys { call: "pipe2", what: what.into(), source: e };
    let (go_r, go_w) = pipe_cloexec().map_err(|e| sys(e, "go pipe"))?;
    let (err_r, err_w) = pipe_cloexec().map_err(|e| sys(e, "error pipe"))?;
    let (go_fd, go_w_fd, err_r_fd, err_fd) = (go_r.as_raw_fd(), go_w.as_raw_fd(), err_r.as_raw_fd(), err_w.as_raw_fd());
    // SAFETY: one container per process; the stack is only used by the child,
    // which has its own copy of this memory after clone (no CLONE_VM).
    let stack: &mut [u8] = unsafe { &mut *std::ptr::addr_of_mut!(CHILD_STACK) };
    let cb = Box::new(move || -> isize {
        // SAFETY: only system calls on memory prepared before clone.
        unsafe { child_main(go_fd, go_w_fd, err_r_fd, err_fd, ops, exec, wait_first) }
    });
    // SAFETY: the child runs `child_main` only, which ends in execve or _exit.
    let pid = unsafe { nix::sched::clone(cb, stack, flags, Some(libc::SIGCHLD)) }.map_err(|source| crate::kernel::KernelError::Sys {
        call: "clone",
        what: crate::kernel::ns::flag_names(flags),
        source,
    })?;
    drop(go_r);
    drop(err_w);
    Ok(Spawned { pid: pid.as_raw(), go: go_w, errors: err_r })
}

/// Read the child's report: `None` when execve succeeded (EOF, nothing written).
pub fn read_error(errors: &OwnedFd) -> Option<(u32, i32)> {
    let mut buf = [0u8; 8];
    let mut got = 0;
    while got < 8 {
        // SAFETY: reading into a local buffer.
        let n = unsafe { libc::read(errors.as_raw_fd(), buf[got..].as_mut_ptr().cast(), 8 - got) };
        if n < 0 && nix::errno::Errno::last() == nix::errno::Errno::EINTR {
            continue;
        }
        if n <= 0 {
            break;
        }
        got += n as usize;
    }
    (got == 8).then(|| (u32::from_ne_bytes(buf[..4].try_into().unwrap()), i32::from_ne_bytes(buf[4..].try_into().unwrap())))
}

unsafe fn errno() -> c_int {
    *libc::__errno_location()
}

unsafe fn fail(err_fd: RawFd, step: u32, errno: c_int) -> ! {
    let mut buf = [0u8; 8];
    buf[..4].copy_from_slice(&step.to_ne_bytes());
    buf[4..].copy_from_slice(&errno.to_ne_bytes());
    libc::write(err_fd, buf.as_ptr().cast(), 8);
    let code = if step == EXEC_STEP {
        if errno == libc::ENOENT {
            127
        } else {
            126
        }
    } else {
        125
    };
    libc::_exit(code)
}

fn opt(c: &CStr) -> *const c_char {
    if c.to_bytes().is_empty() {
        ptr::null()
    } else {
        c.as_ptr()
    }
}

unsafe fn wait_for_go(go_fd: RawFd) {
    let mut b = 0u8;
    loop {
        let n = libc::read(go_fd, (&mut b as *mut u8).cast(), 1);
        if n == 1 {
            break;
        }
        if n < 0 && errno() == libc::EINTR {
            continue;
        }
        libc::_exit(125);
    }
    libc::close(go_fd);
}

unsafe fn child_main(go_fd: RawFd, go_w: RawFd, err_r: RawFd, err_fd: RawFd, ops: &[Op], exec: &Exec, wait_first: bool) -> isize {
    // The parent's ends are not ours.
    libc::close(go_w);
    libc::close(err_r);
    // Die with workbench even if it is SIGKILLed; the parent's signal handlers
    // (signal-hook writes to a pipe shared with the parent) and Rust's ignored
    // SIGPIPE must not survive into the container.
    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0);
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGPIPE, libc::SIGQUIT] {
        libc::signal(sig, libc::SIG_DFL);
    }
    let mut empty: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut empty);
    libc::sigprocmask(libc::SIG_SETMASK, &empty, ptr::null_mut());
    // The modes in the recipe are meant exactly; the command gets the usual 022.
    libc::umask(0);
    if wait_first {
        wait_for_go(go_fd);
    }
    // Build the container's filesystem while the parent records us and sets
    // up the cgroup and the network (on a multi-core machine, at the same time).
    for (i, op) in ops.iter().enumerate() {
        if let Err(e) = run_op(op) {
            fail(err_fd, i as u32, e);
        }
    }
    // Wait for the parent before running anything: one byte means go, EOF
    // means it gave up or died.
    if !wait_first {
        wait_for_go(go_fd);
    }
    libc::umask(0o022);

    let mut last = libc::ENOENT;
    for path in &exec.candidates {
        libc::execve(path.as_ptr(), exec.argv_ptrs.as_ptr(), exec.envp_ptrs.as_ptr());
        let e = errno();
        // Like execvp: remember a permission problem, keep looking on ENOENT.
        if e != libc::ENOENT && e != libc::ENOTDIR {
            last = e;
        }
    }
    fail(err_fd, EXEC_STEP, last)
}

/// One step; `Err(errno)` on failure.
unsafe fn run_op(op: &Op) -> Result<(), c_int> {
    let check = |r: c_int| if r < 0 { Err(errno()) } else { Ok(()) };
    match op {
        Op::MakeRprivate => check(libc::mount(ptr::null(), c"/".as_ptr(), ptr::null(), libc::MS_REC | libc::MS_PRIVATE, ptr::null())),
        Op::Mount { source, target, fstype, flags, data } => check(libc::mount(
            opt(source),
            target.as_ptr(),
            opt(fstype),
            *flags,
            data.as_ref().map(|d| d.as_ptr().cast()).unwrap_or(ptr::null()),
        )),
        Op::Mkdir { path, mode } => {
            if libc::mkdir(path.as_ptr(), *mode) < 0 && errno() != libc::EEXIST {
                return Err(errno());
            }
            Ok(())
        }
        Op::Mknod { path, mode, major, minor } => check(libc::mknod(path.as_ptr(), libc::S_IFCHR | *mode, libc::makedev(*major, *minor))),
        Op::Touch { path } => {
            let fd = libc::open(path.as_ptr(), libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC, 0o600);
            check(fd)?;
            libc::close(fd);
            Ok(())
        }
        Op::Symlink { target, link } => check(libc::symlink(target.as_ptr(), link.as_ptr())),
        Op::Sethostname(h) => check(libc::sethostname(h.as_ptr(), h.to_bytes().len())),
        Op::LoopbackUp => loopback_up(),
        Op::PivotRoot { new_root } => {
            check(libc::chdir(new_root.as_ptr()))?;
            // With new_root == put_old the old root ends up stacked on top of
            // the new one; detaching "." then removes it from this namespace.
            check(libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) as c_int)?;
            check(libc::umount2(c".".as_ptr(), libc::MNT_DETACH))?;
            check(libc::chdir(c"/".as_ptr()))
        }
        Op::BecomeRoot => {
            check(libc::setresgid(0, 0, 0))?;
            check(libc::setgroups(0, ptr::null()))?;
            check(libc::setresuid(0, 0, 0))
        }
        Op::StdinFromNull => {
            let fd = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
            check(fd)?;
            check(libc::dup2(fd, 0))?;
            libc::close(fd);
            Ok(())
        }
    }
}

/// `ip link set lo up` the old way: SIOCGIFFLAGS, set IFF_UP, SIOCSIFFLAGS.
unsafe fn loopback_up() -> Result<(), c_int> {
    let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
    if fd < 0 {
        return Err(errno());
    }
    let mut ifr: libc::ifreq = std::mem::zeroed();
    for (i, b) in b"lo".iter().enumerate() {
        ifr.ifr_name[i] = *b as c_char;
    }
    let r = (|| {
        if libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut ifr) < 0 {
            return Err(errno());
        }
        ifr.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        if libc::ioctl(fd, libc::SIOCSIFFLAGS, &ifr) < 0 {
            return Err(errno());
        }
        Ok(())
    })();
    libc::close(fd);
    r
}
