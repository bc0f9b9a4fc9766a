//! devices: which device files a group's tasks may open, and how.
//!
//! Every open(2) or mknod(2) of a device node asks the cgroup layer whether
//! the caller's group allows that device (type, major:minor) for that access
//! (read, write, mknod); a "no" is EPERM, even for root. v1 keeps a rule list
//! per group, written as `c 1:3 w` to devices.deny / devices.allow and shown
//! in devices.list. v2 has no devices files: the kernel runs the
//! `BPF_PROG_TYPE_CGROUP_DEVICE` programs attached to the group (and its
//! ancestors), each returning 1 (allow) or 0 (deny) for a
//! `struct bpf_cgroup_dev_ctx { access_type, major, minor }`. Container
//! runtimes (runc, crun) generate such a program from their device list; here
//! a small one is assembled by hand and loaded with bpf(2).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use serde::Serialize;

use crate::backend::{Dirs, Watch, V1, V2};
use crate::error::{Error, Result};
use crate::files::*;
use crate::fsio;
use crate::watch::Resource as R;

/// Character or block device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum DeviceKind {
    Char,
    Block,
}

/// One device rule: `c 1:3 w` = writing the character device 1:3 (/dev/null).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DeviceRule {
    pub kind: DeviceKind,
    pub major: u32,
    pub minor: u32,
    pub read: bool,
    pub write: bool,
    pub mknod: bool,
}

impl DeviceRule {
    /// Writing the character device `major:minor`.
    pub fn char_write(major: u32, minor: u32) -> DeviceRule {
        DeviceRule {
            kind: DeviceKind::Char,
            major,
            minor,
            read: false,
            write: true,
            mknod: false,
        }
    }

    /// The access bits as the kernel's BPF context encodes them
    /// (BPF_DEVCG_ACC_MKNOD 1, READ 2, WRITE 4).
    fn access_bits(&self) -> i32 {
        i32::from(self.mknod) | (i32::from(self.read) << 1) | (i32::from(self.write) << 2)
    }
}

impl std::fmt::Display for DeviceRule {
    /// The v1 rule syntax: `c 1:3 w`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            DeviceKind::Char => 'c',
            DeviceKind::Block => 'b',
        };
        let mut acc = String::new();
        for (on, c) in [(self.read, 'r'), (self.write, 'w'), (self.mknod, 'm')] {
            if on {
                acc.push(c);
            }
        }
        write!(f, "{kind} {}:{} {acc}", self.major, self.minor)
    }
}

/// The devices controller's knobs, on v1 or v2.
pub(crate) trait Devices: Sync {
    /// Forbid what `rule` names to the group's tasks; everything else stays as it was.
    fn deny_device(&self, d: &Dirs, rule: &DeviceRule) -> Result<()>;
    /// How the group's rules stand: v1 the devices.list text, v2 the number
    /// of device programs attached to the group itself.
    fn device_rules(&self, d: &Dirs) -> Result<String>;
    fn devices_watched(&self) -> &'static [Watch];
}

impl Devices for V1 {
    fn deny_device(&self, d: &Dirs, rule: &DeviceRule) -> Result<()> {
        fsio::write(&d.file("devices", V1_DEVICES_DENY)?, &rule.to_string())
    }

    fn device_rules(&self, d: &Dirs) -> Result<String> {
        Ok(fsio::read(&d.file("devices", V1_DEVICES_LIST)?)?.trim_end().to_string())
    }

    fn devices_watched(&self) -> &'static [Watch] {
        #[rustfmt::skip]
        const W: &[Watch] = &[
            Watch::new(R::Devices, "devices", V1_DEVICES_LIST, "the group's device rules (a *:* rwm = all allowed)"),
        ];
        W
    }
}

impl Devices for V2 {
    /// Load a program that denies `rule` and allows everything else, and
    /// attach it to the group (BPF_F_ALLOW_MULTI: it adds to, never replaces,
    /// programs of the ancestors). The attachment holds the program; it goes
    /// with the group's directory.
    fn deny_device(&self, d: &Dirs, rule: &DeviceRule) -> Result<()> {
        let dir = d.dir("devices")?;
        let prog = load_program(&deny_program(rule), dir)?;
        let target = open_dir(dir)?;
        let mut attr = [0u32; 8];
        attr[0] = target.as_raw_fd() as u32; // target_fd
        attr[1] = prog.as_raw_fd() as u32; // attach_bpf_fd
        attr[2] = BPF_CGROUP_DEVICE; // attach_type
        attr[3] = BPF_F_ALLOW_MULTI; // attach_flags
        bpf(
            BPF_PROG_ATTACH,
            &mut attr,
            "bpf(BPF_PROG_ATTACH, BPF_CGROUP_DEVICE)",
            dir,
        )?;
        Ok(())
    }

    fn device_rules(&self, d: &Dirs) -> Result<String> {
        let dir = d.dir("devices")?;
        let n = attached_programs(dir)?;
        Ok(format!("{n} BPF device program(s) attached"))
    }

    fn devices_watched(&self) -> &'static [Watch] {
        &[]
    }
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;
/// BPF_DEVCG_DEV_BLOCK, BPF_DEVCG_DEV_CHAR.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;

/// One eBPF instruction: opcode, dst and src registers, offset, immediate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn {
            code,
            dst,
            src,
            off,
            imm,
        }
    }

    /// The 8 bytes of `struct bpf_insn` (registers in one byte, dst low nibble).
    pub fn encode(&self) -> u64 {
        let regs = (self.dst & 0x0f) | (self.src << 4);
        u64::from(self.code)
            | (u64::from(regs) << 8)
            | (u64::from(self.off as u16) << 16)
            | (u64::from(self.imm as u32) << 32)
    }
}

// Opcodes (class | size/op | source).
const LDX_MEM_W: u8 = 0x61; // rD = *(u32 *)(rS + off)
const ALU64_MOV_X: u8 = 0xbf; // rD = rS
const ALU64_MOV_K: u8 = 0xb7; // rD = imm
const ALU64_AND_K: u8 = 0x57; // rD &= imm
const ALU64_RSH_K: u8 = 0x77; // rD >>= imm
const JMP_JNE_K: u8 = 0x55; // if rD != imm goto +off
const JMP_JEQ_K: u8 = 0x15; // if rD == imm goto +off
const JMP_EXIT: u8 = 0x95; // return r0

/// The program: deny what `rule` names, allow anything else. In C:
///
/// ```text
/// int prog(struct bpf_cgroup_dev_ctx *ctx) {
///     u32 type = ctx->access_type & 0xffff, access = ctx->access_type >> 16;
///     if (type == TYPE && ctx->major == MAJOR && ctx->minor == MINOR && (access & ACCESS))
///         return 0;   /* the open(2) or mknod(2) fails with EPERM */
///     return 1;
/// }
/// ```
pub fn deny_program(rule: &DeviceRule) -> Vec<Insn> {
    let kind = match rule.kind {
        DeviceKind::Char => DEV_CHAR,
        DeviceKind::Block => DEV_BLOCK,
    };
    // Jump offsets count from the next instruction to `allow` (index 13).
    vec![
        Insn::new(LDX_MEM_W, 2, 1, 0, 0),                    // 0: r2 = ctx->access_type
        Insn::new(ALU64_MOV_X, 3, 2, 0, 0),                  // 1: r3 = r2
        Insn::new(ALU64_AND_K, 3, 0, 0, 0xffff),             // 2: r3 = device type
        Insn::new(ALU64_RSH_K, 2, 0, 0, 16),                 // 3: r2 = access bits
        Insn::new(LDX_MEM_W, 4, 1, 4, 0),                    // 4: r4 = ctx->major
        Insn::new(LDX_MEM_W, 5, 1, 8, 0),                    // 5: r5 = ctx->minor
        Insn::new(JMP_JNE_K, 3, 0, 6, kind),                 // 6: other type → allow
        Insn::new(JMP_JNE_K, 4, 0, 5, rule.major as i32),    // 7: other major → allow
        Insn::new(JMP_JNE_K, 5, 0, 4, rule.minor as i32),    // 8: other minor → allow
        Insn::new(ALU64_AND_K, 2, 0, 0, rule.access_bits()), // 9: r2 &= the denied access
        Insn::new(JMP_JEQ_K, 2, 0, 2, 0),                    // 10: none of it → allow
        Insn::new(ALU64_MOV_K, 0, 0, 0, 0),                  // 11: r0 = 0 (deny)
        Insn::new(JMP_EXIT, 0, 0, 0, 0),                     // 12
        Insn::new(ALU64_MOV_K, 0, 0, 0, 1),                  // 13: allow: r0 = 1
        Insn::new(JMP_EXIT, 0, 0, 0, 0),                     // 14
    ]
}

/// bpf(2) with `attr` (zero-padded `union bpf_attr` prefix).
fn bpf<T>(cmd: libc::c_long, attr: &mut T, what: &'static str, dir: &Path) -> Result<libc::c_long> {
    // SAFETY: attr is a live, writable, plain-data buffer of the size given;
    // the kernel reads (and for queries writes) only within it.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>(),
        )
    };
    if r < 0 {
        return Err(Error::Sys {
            syscall: what,
            target: dir.display().to_string(),
            errno: Errno::last(),
        });
    }
    Ok(r)
}

/// `union bpf_attr` for BPF_PROG_LOAD, up to `expected_attach_type`.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// BPF_PROG_LOAD a cgroup device program; the verifier's log comes with a refusal.
fn load_program(insns: &[Insn], dir: &Path) -> Result<OwnedFd> {
    let code: Vec<u64> = insns.iter().map(Insn::encode).collect();
    let license = c"GPL";
    let mut log = vec![0u8; 4096];
    let mut name = [0u8; 16];
    name[..9].copy_from_slice(b"wb_devcg\0");
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: code.len() as u32,
        insns: code.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 1,
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr() as u64,
        prog_name: name,
        expected_attach_type: BPF_CGROUP_DEVICE,
        ..Default::default()
    };
    match bpf(
        BPF_PROG_LOAD,
        &mut attr,
        "bpf(BPF_PROG_LOAD, BPF_PROG_TYPE_CGROUP_DEVICE)",
        dir,
    ) {
        // SAFETY: a successful BPF_PROG_LOAD returns a new file descriptor we own.
        Ok(fd) => Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) }),
        Err(Error::Sys { errno, .. }) => {
            let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
            let verifier = String::from_utf8_lossy(&log[..end]).trim().to_string();
            Err(Error::Refused {
                path: dir.to_path_buf(),
                reason: format!(
                    "the kernel refused the device program ({errno}){}",
                    if verifier.is_empty() {
                        String::new()
                    } else {
                        format!(": {verifier}")
                    }
                ),
            })
        }
        Err(e) => Err(e),
    }
}

fn open_dir(dir: &Path) -> Result<OwnedFd> {
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(|_| Error::InvalidValue {
        what: "cgroup path",
        value: dir.display().to_string(),
        reason: "contains NUL".into(),
    })?;
    // SAFETY: open(2) on a NUL-terminated path; the fd is owned below.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(Error::io("open", dir, std::io::Error::last_os_error()));
    }
    // SAFETY: fd is a new descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// How many device programs are attached to `dir` itself (BPF_PROG_QUERY).
pub(crate) fn attached_programs(dir: &Path) -> Result<u32> {
    let target = open_dir(dir)?;
    // target_fd, attach_type, query_flags, attach_flags, prog_ids (u64), prog_cnt
    let mut attr = [0u32; 10];
    attr[0] = target.as_raw_fd() as u32;
    attr[1] = BPF_CGROUP_DEVICE;
    bpf(BPF_PROG_QUERY, &mut attr, "bpf(BPF_PROG_QUERY, BPF_CGROUP_DEVICE)", dir)?;
    Ok(attr[6])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_print_in_v1_syntax() {
        assert_eq!(DeviceRule::char_write(1, 3).to_string(), "c 1:3 w");
        let all = DeviceRule {
            kind: DeviceKind::Block,
            major: 8,
            minor: 0,
            read: true,
            write: true,
            mknod: true,
        };
        assert_eq!(all.to_string(), "b 8:0 rwm");
        assert_eq!(all.access_bits(), 7);
        assert_eq!(DeviceRule::char_write(1, 3).access_bits(), 4);
    }

    #[test]
    fn instructions_encode_like_struct_bpf_insn() {
        // r2 = *(u32 *)(r1 + 8): code 0x61, dst 2, src 1, off 8.
        assert_eq!(Insn::new(LDX_MEM_W, 2, 1, 8, 0).encode(), 0x0000_0000_0008_1261);
        // r0 = 1
        assert_eq!(Insn::new(ALU64_MOV_K, 0, 0, 0, 1).encode(), 0x0000_0001_0000_00b7);
        // negative immediates and offsets are two's complement.
        assert_eq!(Insn::new(JMP_JNE_K, 3, 0, -1, -1).encode(), 0xffff_ffff_ffff_0355);
    }

    /// Run the program on a context, the way the kernel's interpreter would
    /// for these few opcodes: every jump lands inside, and it denies exactly
    /// the rule's device and access.
    fn run(prog: &[Insn], access_type: u32, major: u32, minor: u32) -> u64 {
        let ctx = [access_type, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            let (d, s) = (i.dst as usize, i.src as usize);
            pc += 1;
            match i.code {
                LDX_MEM_W => r[d] = u64::from(ctx[i.off as usize / 4]),
                ALU64_MOV_X => r[d] = r[s],
                ALU64_MOV_K => r[d] = i.imm as i64 as u64,
                ALU64_AND_K => r[d] &= i.imm as i64 as u64,
                ALU64_RSH_K => r[d] >>= i.imm,
                JMP_JNE_K if r[d] != i.imm as i64 as u64 => pc += i.off as usize,
                JMP_JEQ_K if r[d] == i.imm as i64 as u64 => pc += i.off as usize,
                JMP_JNE_K | JMP_JEQ_K => {}
                JMP_EXIT => return r[0],
                other => panic!("opcode {other:#x}"),
            }
        }
    }

    #[test]
    fn the_program_denies_writing_dev_null_only() {
        let p = deny_program(&DeviceRule::char_write(1, 3));
        let at = |access: u32, kind: u32| (access << 16) | kind;
        let (read, write, mknod) = (2, 4, 1);
        assert_eq!(run(&p, at(write, 2), 1, 3), 0, "write /dev/null");
        assert_eq!(run(&p, at(read | write, 2), 1, 3), 0, "O_RDWR /dev/null");
        assert_eq!(run(&p, at(read, 2), 1, 3), 1, "read /dev/null");
        assert_eq!(run(&p, at(mknod, 2), 1, 3), 1, "mknod /dev/null");
        assert_eq!(run(&p, at(write, 2), 1, 5), 1, "write /dev/zero");
        assert_eq!(run(&p, at(write, 1), 1, 3), 1, "block device 1:3");
        assert_eq!(run(&p, at(write, 2), 5, 3), 1, "char 5:3");
    }
}
