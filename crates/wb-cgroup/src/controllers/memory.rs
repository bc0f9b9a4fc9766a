//! memory: hard limit, swap limit, usage, peak, limit hits and OOM kills.
//!
//! v1: memory.limit_in_bytes plus, with swap accounting, the combined
//! memory.memsw.limit_in_bytes (which must never drop below the first);
//! memory.failcnt and memory.oom_control. v2: memory.max and a separate
//! memory.swap.max; memory.events counts limit hits (`max`) and `oom_kill`.

use crate::backend::{Dirs, Watch, V1, V2};
use crate::error::{Error, Result};
use crate::files::*;
use crate::fsio;
use crate::watch::Resource as R;

/// The memory controller's knobs, on v1 or v2.
pub(crate) trait Memory: Sync {
    /// Limit to `bytes`, with `swap` bytes of swap on top (`None` = unlimited
    /// swap); the swap part only where the kernel accounts swap.
    fn set_memory_limit(&self, d: &Dirs, bytes: u64, swap: Option<u64>) -> Result<()>;
    fn clear_memory_limit(&self, d: &Dirs) -> Result<()>;
    fn memory_current(&self, d: &Dirs) -> Result<u64>;
    fn memory_peak(&self, d: &Dirs) -> Result<Option<u64>>;
    fn oom_kill_count(&self, d: &Dirs) -> Result<u64>;
    fn failcnt(&self, d: &Dirs) -> Result<Option<u64>>;
    fn memory_watched(&self) -> &'static [Watch];
}

const CURRENT_MEANING: &str = "memory charged now, bytes";
const PEAK_MEANING: &str = "peak memory charged, bytes";

impl Memory for V1 {
    /// Set memory.limit_in_bytes and, when swap accounting exists,
    /// memory.memsw.limit_in_bytes = limit + swap (`None` = unlimited swap).
    ///
    /// The kernel insists that memsw >= limit after every single write, so the
    /// order depends on whether the memory limit grows past the current memsw.
    fn set_memory_limit(&self, d: &Dirs, bytes: u64, swap: Option<u64>) -> Result<()> {
        let limit = d.file("memory", V1_MEMORY_LIMIT)?;
        let memsw = d.file("memory", V1_MEMORY_MEMSW_LIMIT)?;
        if !memsw.is_file() {
            return fsio::write(&limit, &bytes.to_string());
        }
        let new_memsw = match swap {
            Some(s) => bytes
                .checked_add(s)
                .ok_or_else(|| Error::InvalidValue {
                    what: "memory+swap limit",
                    value: format!("{bytes}+{s}"),
                    reason: "overflows 64 bits".into(),
                })?
                .to_string(),
            None => "-1".to_string(),
        };
        let current_memsw = fsio::read_u64(&memsw)?;
        if bytes <= current_memsw {
            fsio::write(&limit, &bytes.to_string())?;
            fsio::write(&memsw, &new_memsw)
        } else {
            fsio::write(&memsw, &new_memsw)?;
            fsio::write(&limit, &bytes.to_string())
        }
    }

    fn clear_memory_limit(&self, d: &Dirs) -> Result<()> {
        let memsw = d.file("memory", V1_MEMORY_MEMSW_LIMIT)?;
        if memsw.is_file() {
            fsio::write(&memsw, "-1")?;
        }
        fsio::write(&d.file("memory", V1_MEMORY_LIMIT)?, "-1")
    }

    fn memory_current(&self, d: &Dirs) -> Result<u64> {
        fsio::read_u64(&d.file("memory", V1_MEMORY_USAGE)?)
    }

    fn memory_peak(&self, d: &Dirs) -> Result<Option<u64>> {
        fsio::read_u64(&d.file("memory", V1_MEMORY_MAX_USAGE)?).map(Some)
    }

    fn oom_kill_count(&self, d: &Dirs) -> Result<u64> {
        fsio::flat_key(&d.file("memory", V1_MEMORY_OOM_CONTROL)?, "oom_kill")
    }

    /// Stays 0 when a memsw limit is what actually fails.
    fn failcnt(&self, d: &Dirs) -> Result<Option<u64>> {
        fsio::read_u64(&d.file("memory", V1_MEMORY_FAILCNT)?).map(Some)
    }

    fn memory_watched(&self) -> &'static [Watch] {
        #[rustfmt::skip]
        const W: &[Watch] = &[
            Watch::new(R::Memory, "memory", V1_MEMORY_LIMIT, "hard memory limit, bytes"),
            Watch::new(R::Memory, "memory", V1_MEMORY_MEMSW_LIMIT, "memory+swap limit, bytes").optional(),
            Watch::new(R::Memory, "memory", V1_MEMORY_USAGE, CURRENT_MEANING),
            Watch::new(R::Memory, "memory", V1_MEMORY_MAX_USAGE, PEAK_MEANING),
            Watch::new(R::Memory, "memory", V1_MEMORY_FAILCNT, "times the memory limit was hit"),
            Watch::new(R::MemoryEvents, "memory", V1_MEMORY_OOM_CONTROL, "OOM killer state; oom_kill = processes killed"),
        ];
        W
    }
}

impl Memory for V2 {
    /// memory.max = bytes; memory.swap.max = swap (`None` = `max`), when the
    /// swap file exists (it is absent without swap accounting).
    fn set_memory_limit(&self, d: &Dirs, bytes: u64, swap: Option<u64>) -> Result<()> {
        fsio::write(&d.file("memory", V2_MEMORY_MAX)?, &bytes.to_string())?;
        let swap_path = d.file("memory", V2_MEMORY_SWAP_MAX)?;
        if swap_path.is_file() {
            let v = swap.map_or_else(|| "max".to_string(), |s| s.to_string());
            fsio::write(&swap_path, &v)?;
        }
        Ok(())
    }

    fn clear_memory_limit(&self, d: &Dirs) -> Result<()> {
        fsio::write(&d.file("memory", V2_MEMORY_MAX)?, "max")?;
        let swap_path = d.file("memory", V2_MEMORY_SWAP_MAX)?;
        if swap_path.is_file() {
            fsio::write(&swap_path, "max")?;
        }
        Ok(())
    }

    fn memory_current(&self, d: &Dirs) -> Result<u64> {
        fsio::read_u64(&d.file("memory", V2_MEMORY_CURRENT)?)
    }

    /// memory.peak exists since Linux 5.19.
    fn memory_peak(&self, d: &Dirs) -> Result<Option<u64>> {
        let p = d.file("memory", V2_MEMORY_PEAK)?;
        if p.is_file() {
            fsio::read_u64(&p).map(Some)
        } else {
            Ok(None)
        }
    }

    fn oom_kill_count(&self, d: &Dirs) -> Result<u64> {
        fsio::flat_key(&d.file("memory", V2_MEMORY_EVENTS)?, "oom_kill")
    }

    /// v2 has no memory.failcnt; memory.events `max` (times usage was about to
    /// exceed memory.max) is the closest equivalent.
    fn failcnt(&self, d: &Dirs) -> Result<Option<u64>> {
        let p = d.file("memory", V2_MEMORY_EVENTS)?;
        if !p.is_file() {
            return Ok(None);
        }
        Ok(fsio::read_flat_keyed(&p)?.get("max").copied())
    }

    fn memory_watched(&self) -> &'static [Watch] {
        #[rustfmt::skip]
        const W: &[Watch] = &[
            Watch::new(R::Memory, "memory", V2_MEMORY_MAX, "hard memory limit, bytes (max = unlimited)"),
            Watch::new(R::Memory, "memory", V2_MEMORY_SWAP_MAX, "swap limit, bytes (max = unlimited)").optional(),
            Watch::new(R::Memory, "memory", V2_MEMORY_CURRENT, CURRENT_MEANING),
            Watch::new(R::Memory, "memory", V2_MEMORY_PEAK, PEAK_MEANING).optional(),
            Watch::new(R::MemoryEvents, "memory", V2_MEMORY_EVENTS, "limit hits (max) and OOM kills (oom_kill)"),
        ];
        W
    }
}
