//! The new process: `clone(2)` into new namespaces, wait for the parent, walk
//! the recipe from [`super::plan`], then `execve(2)` the user's command as
//! PID 1 of the new PID namespace.
//!
//! Between `clone` and `execve` the child only makes system calls on data
//! the parent prepared: no memory allocation, no locks. (After `clone` only
//! the calling thread exists in the child; had another thread of the parent
//! held the allocator's lock at that moment, `malloc` would deadlock.) On
//! x86_64 the child even shares the parent's memory until `execve`
//! (`CLONE_VM`, as `posix_spawn` does): nothing to copy at `clone` and
//! nothing to tear down at `execve`. It then makes its system calls directly,
//! not through libc, whose `errno` it would share with the parent.
//! Two pipes connect the two sides, the classic
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
        let envp = env
            .iter()
            .map(|(k, v)| cs(&format!("{k}={v}")))
            .collect::<Result<Vec<_>, _>>()?;
        let mut argv_ptrs: Vec<*const c_char> = argv.iter().map(|c| c.as_ptr()).collect();
        argv_ptrs.push(ptr::null());
        let mut envp_ptrs: Vec<*const c_char> = envp.iter().map(|c| c.as_ptr()).collect();
        envp_ptrs.push(ptr::null());
        Ok(Exec {
            candidates,
            argv,
            envp,
            argv_ptrs,
            envp_ptrs,
        })
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

/// Everything `child_main` needs, passed through `clone(2)`'s argument.
struct ChildArgs<'a> {
    go_fd: RawFd,
    go_w: RawFd,
    err_r: RawFd,
    err_fd: RawFd,
    ops: &'a [Op],
    exec: &'a Exec,
    wait_first: bool,
}

extern "C" fn child_entry(arg: *mut libc::c_void) -> c_int {
    // SAFETY: `arg` points to the ChildArgs that `spawn` keeps alive, and the
    // recipe it borrows outlives the child's execve (see `spawn`).
    unsafe {
        let a = &*(arg as *const ChildArgs);
        child_main(a.go_fd, a.go_w, a.err_r, a.err_fd, a.ops, a.exec, a.wait_first) as c_int
    }
}

/// Whether the child shares the parent's memory until it execs (`CLONE_VM`,
/// like `posix_spawn`): no page tables to copy at `clone`, no copy-on-write
/// faults afterwards on either side, and no address space for `execve` to
/// tear down. It needs system calls that bypass libc's errno (x86_64 here).
const SHARE_MEMORY: bool = cfg!(target_arch = "x86_64");

/// `clone(flags|SIGCHLD)` a child that will run `ops` then `exec`. With
/// `wait_first` it waits for the parent's go before the recipe rather than
/// after it (a user namespace needs its uid/gid maps before anything else).
///
/// The child shares this process's memory until its `execve` (see
/// [`SHARE_MEMORY`]): `ops` and `exec` must stay alive and unchanged until
/// the error pipe reports that `execve` succeeded or the child has exited.
/// `launch` reads that pipe only after the child exited, so they do.
pub fn spawn(
    flags: CloneFlags,
    ops: &[Op],
    exec: &Exec,
    wait_first: bool,
) -> Result<Spawned, crate::kernel::KernelError> {
    let sys = |e: nix::Error, what: &str| crate::kernel::KernelError::Sys {
        call: "pipe2",
        what: what.into(),
        source: e,
    };
    let (go_r, go_w) = pipe_cloexec().map_err(|e| sys(e, "go pipe"))?;
    let (err_r, err_w) = pipe_cloexec().map_err(|e| sys(e, "error pipe"))?;
    // Leaked: the child may read it after this function returned (until its
    // execve); 64 bytes once per `workbench run`.
    let args: &'static mut ChildArgs<'static> = Box::leak(Box::new(ChildArgs {
        go_fd: go_r.as_raw_fd(),
        go_w: go_w.as_raw_fd(),
        err_r: err_r.as_raw_fd(),
        err_fd: err_w.as_raw_fd(),
        // SAFETY: lifetime extended for the child only, which stops reading
        // them at execve; the caller keeps them alive until then (see above).
        ops: unsafe { std::mem::transmute::<&[Op], &'static [Op]>(ops) },
        exec: unsafe { std::mem::transmute::<&Exec, &'static Exec>(exec) },
        wait_first,
    }));
    // SAFETY: one container per process; the stack is only used by the child.
    let stack: &mut [u8] = unsafe { &mut *std::ptr::addr_of_mut!(CHILD_STACK) };
    // The stack grows down from its end, 16-byte aligned.
    let top = ((stack.as_mut_ptr() as usize + stack.len()) & !15) as *mut libc::c_void;
    let vm = if SHARE_MEMORY { libc::CLONE_VM } else { 0 };
    // SAFETY: the child runs `child_entry` only, which ends in execve or
    // exit_group, using only its own stack and read-only data of ours.
    let pid = unsafe {
        libc::clone(
            child_entry,
            top,
            flags.bits() | vm | libc::SIGCHLD,
            (args as *mut ChildArgs).cast(),
        )
    };
    if pid < 0 {
        return Err(crate::kernel::KernelError::Sys {
            call: "clone",
            what: crate::kernel::ns::flag_names(flags),
            source: nix::errno::Errno::last(),
        });
    }
    drop(go_r);
    drop(err_w);
    Ok(Spawned {
        pid,
        go: go_w,
        errors: err_r,
    })
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
    (got == 8).then(|| {
        (
            u32::from_ne_bytes(buf[..4].try_into().unwrap()),
            i32::from_ne_bytes(buf[4..].try_into().unwrap()),
        )
    })
}

/// A system call made directly, without libc: until it execs, the child
/// shares the parent's memory (`CLONE_VM`), libc's `errno` included, which
/// the parent's own failing calls may write at any moment. Returns the result,
/// or `Err(errno)`.
#[cfg(target_arch = "x86_64")]
unsafe fn sys(n: libc::c_long, a: usize, b: usize, c: usize, d: usize, e: usize) -> Result<usize, c_int> {
    let ret: isize;
    std::arch::asm!(
        "syscall",
        inlateout("rax") n as isize => ret,
        in("rdi") a, in("rsi") b, in("rdx") c, in("r10") d, in("r8") e,
        lateout("rcx") _, lateout("r11") _,
        options(nostack),
    );
    if (-4095..0).contains(&ret) {
        Err(-ret as c_int)
    } else {
        Ok(ret as usize)
    }
}

/// Elsewhere the child has its own memory (no `CLONE_VM`) and libc will do.
#[cfg(not(target_arch = "x86_64"))]
unsafe fn sys(n: libc::c_long, a: usize, b: usize, c: usize, d: usize, e: usize) -> Result<usize, c_int> {
    let r = libc::syscall(n, a, b, c, d, e);
    if r < 0 {
        Err(*libc::__errno_location())
    } else {
        Ok(r as usize)
    }
}

fn p(c: &CStr) -> usize {
    c.as_ptr() as usize
}

unsafe fn exit_now(code: c_int) -> ! {
    let _ = sys(libc::SYS_exit_group, code as usize, 0, 0, 0, 0);
    unreachable!("exit_group returned")
}

unsafe fn fail(err_fd: RawFd, step: u32, errno: c_int) -> ! {
    let mut buf = [0u8; 8];
    buf[..4].copy_from_slice(&step.to_ne_bytes());
    buf[4..].copy_from_slice(&errno.to_ne_bytes());
    let _ = sys(libc::SYS_write, err_fd as usize, buf.as_ptr() as usize, 8, 0, 0);
    let code = if step == EXEC_STEP {
        if errno == libc::ENOENT {
            127
        } else {
            126
        }
    } else {
        125
    };
    exit_now(code)
}

fn opt(c: &CStr) -> usize {
    if c.to_bytes().is_empty() {
        0
    } else {
        c.as_ptr() as usize
    }
}

unsafe fn close(fd: RawFd) {
    let _ = sys(libc::SYS_close, fd as usize, 0, 0, 0, 0);
}

unsafe fn wait_for_go(go_fd: RawFd) {
    let mut b = 0u8;
    loop {
        match sys(libc::SYS_read, go_fd as usize, &mut b as *mut u8 as usize, 1, 0, 0) {
            Ok(1) => break,
            Err(libc::EINTR) => continue,
            _ => exit_now(125),
        }
    }
    close(go_fd);
}

unsafe fn child_main(
    go_fd: RawFd,
    go_w: RawFd,
    err_r: RawFd,
    err_fd: RawFd,
    ops: &[Op],
    exec: &Exec,
    wait_first: bool,
) -> isize {
    // The parent's ends are not ours.
    close(go_w);
    close(err_r);
    // Die with workbench even if it is SIGKILLed; the parent's signal handlers
    // (signal-hook writes to a pipe shared with the parent) and Rust's ignored
    // SIGPIPE must not survive into the container.
    let _ = sys(
        libc::SYS_prctl,
        libc::PR_SET_PDEATHSIG as usize,
        libc::SIGKILL as usize,
        0,
        0,
        0,
    );
    // The kernel's struct sigaction: SIG_DFL (0), no flags, no restorer, empty mask.
    let dfl = [0u64; 4];
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGPIPE, libc::SIGQUIT] {
        let _ = sys(libc::SYS_rt_sigaction, sig as usize, dfl.as_ptr() as usize, 0, 8, 0);
    }
    let empty = 0u64;
    let _ = sys(
        libc::SYS_rt_sigprocmask,
        libc::SIG_SETMASK as usize,
        &empty as *const u64 as usize,
        0,
        8,
        0,
    );
    // The modes in the recipe are meant exactly; the command gets the usual 022.
    let _ = sys(libc::SYS_umask, 0, 0, 0, 0, 0);
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
    let _ = sys(libc::SYS_umask, 0o022, 0, 0, 0, 0);

    let mut last = libc::ENOENT;
    for path in &exec.candidates {
        let Err(e) = sys(
            libc::SYS_execve,
            p(path),
            exec.argv_ptrs.as_ptr() as usize,
            exec.envp_ptrs.as_ptr() as usize,
            0,
            0,
        ) else {
            unreachable!("execve returned success")
        };
        // Like execvp: remember a permission problem, keep looking on ENOENT.
        if e != libc::ENOENT && e != libc::ENOTDIR {
            last = e;
        }
    }
    fail(err_fd, EXEC_STEP, last)
}

/// One step; `Err(errno)` on failure.
unsafe fn run_op(op: &Op) -> Result<(), c_int> {
    const CWD: usize = libc::AT_FDCWD as isize as usize;
    let ok = |r: Result<usize, c_int>| r.map(|_| ());
    match op {
        Op::MakeRprivate => ok(sys(
            libc::SYS_mount,
            0,
            p(c"/"),
            0,
            (libc::MS_REC | libc::MS_PRIVATE) as usize,
            0,
        )),
        Op::Mount(m) => ok(sys(
            libc::SYS_mount,
            opt(&m.source),
            p(&m.target),
            opt(&m.fstype),
            m.flags as usize,
            m.data.as_ref().map(|d| p(d)).unwrap_or(0),
        )),
        Op::Mkdir { path, mode } => match sys(libc::SYS_mkdirat, CWD, p(path), *mode as usize, 0, 0) {
            Err(libc::EEXIST) => Ok(()),
            r => ok(r),
        },
        Op::Mknod {
            path,
            mode,
            major,
            minor,
        } => ok(sys(
            libc::SYS_mknodat,
            CWD,
            p(path),
            (libc::S_IFCHR | *mode) as usize,
            libc::makedev(*major, *minor) as usize,
            0,
        )),
        Op::Touch { path } => {
            let fd = sys(
                libc::SYS_openat,
                CWD,
                p(path),
                (libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC) as usize,
                0o600,
                0,
            )?;
            close(fd as RawFd);
            Ok(())
        }
        Op::Symlink { target, link } => ok(sys(libc::SYS_symlinkat, p(target), CWD, p(link), 0, 0)),
        Op::Sethostname(h) => ok(sys(libc::SYS_sethostname, p(h), h.to_bytes().len(), 0, 0, 0)),
        Op::LoopbackUp => loopback_up(),
        Op::PivotRoot { new_root } => {
            ok(sys(libc::SYS_chdir, p(new_root), 0, 0, 0, 0))?;
            // With new_root == put_old the old root ends up stacked on top of
            // the new one; detaching "." then removes it from this namespace.
            ok(sys(libc::SYS_pivot_root, p(c"."), p(c"."), 0, 0, 0))?;
            ok(sys(libc::SYS_umount2, p(c"."), libc::MNT_DETACH as usize, 0, 0, 0))?;
            ok(sys(libc::SYS_chdir, p(c"/"), 0, 0, 0, 0))
        }
        Op::BecomeRoot => {
            // Direct calls change this process only, which is all there is
            // (libc's wrappers would also signal the parent's threads).
            ok(sys(libc::SYS_setresgid, 0, 0, 0, 0, 0))?;
            ok(sys(libc::SYS_setgroups, 0, 0, 0, 0, 0))?;
            ok(sys(libc::SYS_setresuid, 0, 0, 0, 0, 0))
        }
        Op::StdinFromNull => {
            let fd = sys(
                libc::SYS_openat,
                CWD,
                p(c"/dev/null"),
                (libc::O_RDONLY | libc::O_CLOEXEC) as usize,
                0,
                0,
            )? as RawFd;
            if fd != 0 {
                // dup3 clears close-on-exec on the copy.
                let r = sys(libc::SYS_dup3, fd as usize, 0, 0, 0, 0);
                close(fd);
                r?;
            } else {
                // /dev/null became fd 0 itself: just keep it open across execve.
                ok(sys(libc::SYS_fcntl, 0, libc::F_SETFD as usize, 0, 0, 0))?;
            }
            Ok(())
        }
    }
}

/// `ip link set lo up` the old way: SIOCGIFFLAGS, set IFF_UP, SIOCSIFFLAGS.
unsafe fn loopback_up() -> Result<(), c_int> {
    let fd = sys(
        libc::SYS_socket,
        libc::AF_INET as usize,
        (libc::SOCK_DGRAM | libc::SOCK_CLOEXEC) as usize,
        0,
        0,
        0,
    )? as RawFd;
    let mut ifr: libc::ifreq = std::mem::zeroed();
    for (i, b) in b"lo".iter().enumerate() {
        ifr.ifr_name[i] = *b as c_char;
    }
    let r = (|| {
        sys(
            libc::SYS_ioctl,
            fd as usize,
            libc::SIOCGIFFLAGS as usize,
            &mut ifr as *mut libc::ifreq as usize,
            0,
            0,
        )?;
        ifr.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        sys(
            libc::SYS_ioctl,
            fd as usize,
            libc::SIOCSIFFLAGS as usize,
            &ifr as *const libc::ifreq as usize,
            0,
            0,
        )?;
        Ok(())
    })();
    close(fd);
    r
}
