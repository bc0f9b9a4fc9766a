//! The options a learner can give a lesson, defined once: this struct is the
//! clap `Args` of `workbench lesson` (flattened as is) and what the lessons
//! read. Each lesson takes only the options its text lists (`options` in
//! `lessons/<id>.toml`); the engine refuses the others before anything is created.

use std::sync::OnceLock;

use clap::Args;

/// Options a learner can give a lesson. Each lesson reads the ones it
/// understands and validates them in its `preflight`, before anything is created.
#[derive(Debug, Clone, Default, Args)]
pub struct LessonOptions {
    /// Hostname to set inside the UTS namespace (pid-ns).
    #[arg(long, value_parser = parse_hostname)]
    pub hostname: Option<String>,
    /// CPU quota in microseconds per period (cgroup-cpu-quota), e.g. 50000.
    #[arg(long = "quota", value_name = "QUOTA")]
    pub quota_us: Option<u64>,
    /// CFS period in microseconds (cgroup-cpu-quota), default 100000.
    #[arg(long = "period", value_name = "PERIOD")]
    pub period_us: Option<u64>,
    /// Relative CPU weights of the two competing hogs (cpu-shares), e.g. 2:1.
    #[arg(long)]
    pub weights: Option<String>,
    /// Memory limit (memory-oom), e.g. 64M.
    #[arg(long)]
    pub memory: Option<String>,
    /// Maximum number of tasks in the group (pids-limit).
    #[arg(long)]
    pub pids_max: Option<u64>,
    /// Container subnet (network lessons), e.g. 10.213.0.0/24.
    #[arg(long)]
    pub subnet: Option<String>,
    /// Host port of the port mapping (nat-port-map).
    #[arg(long)]
    pub host_port: Option<u16>,
    /// Container port of the port mapping (nat-port-map).
    #[arg(long)]
    pub container_port: Option<u16>,
    /// `--memory` in bytes, set once by the preflight that parsed and bounded
    /// it (memory-oom), so the steps use that value instead of parsing again.
    #[arg(skip)]
    pub memory_bytes: OnceLock<u64>,
}

impl LessonOptions {
    /// The lesson options' flag names (without `--`), as `options` in
    /// `lessons/<id>.toml` names them; a test checks them against the flags above.
    pub const NAMES: &'static [&'static str] = &[
        "hostname",
        "quota",
        "period",
        "weights",
        "memory",
        "pids-max",
        "subnet",
        "host-port",
        "container-port",
    ];

    /// The names of the options given, in the order of [`Self::NAMES`].
    pub fn given(&self) -> Vec<&'static str> {
        let set = [
            self.hostname.is_some(),
            self.quota_us.is_some(),
            self.period_us.is_some(),
            self.weights.is_some(),
            self.memory.is_some(),
            self.pids_max.is_some(),
            self.subnet.is_some(),
            self.host_port.is_some(),
            self.container_port.is_some(),
        ];
        Self::NAMES
            .iter()
            .zip(set)
            .filter(|(_, on)| *on)
            .map(|(n, _)| *n)
            .collect()
    }

    /// Refuse options the lesson does not take (`takes`: the `options` of its
    /// text), before anything is created: one line naming what it takes.
    pub fn refuse_others(&self, lesson: &str, takes: &[String]) -> anyhow::Result<()> {
        let others: Vec<String> = self
            .given()
            .into_iter()
            .filter(|g| !takes.iter().any(|t| t == g))
            .map(|g| format!("--{g}"))
            .collect();
        if others.is_empty() {
            return Ok(());
        }
        let verb = if others.len() == 1 { "does" } else { "do" };
        let it_takes = if takes.is_empty() {
            "it takes no options".to_string()
        } else {
            format!(
                "it takes: {}",
                takes.iter().map(|t| format!("--{t}")).collect::<Vec<_>>().join(", ")
            )
        };
        anyhow::bail!(
            "{} {verb} not apply to {lesson} ({it_takes}); see `workbench lesson {lesson} --help`",
            others.join(", ")
        )
    }
}

/// A hostname as sethostname(2) accepts it: 1 to 64 bytes, no `/` or control characters.
pub fn parse_hostname(s: &str) -> Result<String, String> {
    if s.is_empty() || s.len() > 64 {
        return Err(format!("hostname must be 1 to 64 bytes long, got {}", s.len()));
    }
    if s.chars().any(|c| c.is_control() || c == '/') {
        return Err("hostname must not contain '/' or control characters".into());
    }
    Ok(s.to_string())
}

/// Why a memory size was refused; each caller words it for its own command.
#[derive(Debug, PartialEq, Eq)]
pub enum MemoryError {
    /// Not a size at all (the parser's reason).
    Malformed(String),
    /// Below the smallest limit the caller allows.
    TooSmall,
    /// Above the largest limit the caller allows.
    TooLarge,
}

/// The one parser of `--memory` (memory-oom's and `workbench run`'s): a size
/// like `64M`, `512k` or `1G` in bytes, between `min` and `max` inclusive.
pub fn parse_memory(text: &str, min: u64, max: u64) -> Result<u64, MemoryError> {
    let bytes = wb_cgroup::parse_size(text).map_err(|e| MemoryError::Malformed(e.to_string()))?;
    if bytes < min {
        return Err(MemoryError::TooSmall);
    }
    if bytes > max {
        return Err(MemoryError::TooLarge);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_a_lesson_does_not_take_are_refused_in_one_line() {
        let takes = vec!["hostname".to_string()];
        assert!(LessonOptions::default().refuse_others("pid-ns", &takes).is_ok());
        assert!(LessonOptions {
            hostname: Some("box".into()),
            ..Default::default()
        }
        .refuse_others("pid-ns", &takes)
        .is_ok());
        let o = LessonOptions {
            memory: Some("64M".into()),
            ..Default::default()
        };
        assert_eq!(
            o.refuse_others("pid-ns", &takes).unwrap_err().to_string(),
            "--memory does not apply to pid-ns (it takes: --hostname); see `workbench lesson pid-ns --help`"
        );
        let o = LessonOptions {
            quota_us: Some(5),
            subnet: Some("abc".into()),
            ..Default::default()
        };
        assert_eq!(o.refuse_others("overlay-demo", &[]).unwrap_err().to_string(), "--quota, --subnet do not apply to overlay-demo (it takes no options); see `workbench lesson overlay-demo --help`");
    }

    #[test]
    fn option_names_are_the_flags() {
        // NAMES, `given()` and the clap flags name the same options in the same order.
        let cmd = LessonOptions::augment_args(clap::Command::new("x"));
        let flags: Vec<&str> = cmd.get_arguments().filter_map(|a| a.get_long()).collect();
        assert_eq!(flags, LessonOptions::NAMES);
        let mut argv = vec!["x".to_string()];
        for (f, v) in flags
            .iter()
            .zip(["box", "5", "6", "2:1", "64M", "7", "10.0.0.0/24", "9090", "80"])
        {
            argv.push(format!("--{f}"));
            argv.push(v.to_string());
        }
        let m = cmd.try_get_matches_from(&argv).unwrap();
        let o = <LessonOptions as clap::FromArgMatches>::from_arg_matches(&m).unwrap();
        assert_eq!(o.given(), LessonOptions::NAMES);
    }

    #[test]
    fn hostnames_are_validated() {
        assert!(parse_hostname("In Namespace").is_ok());
        assert!(parse_hostname("").is_err());
        assert!(parse_hostname(&"x".repeat(65)).is_err());
        assert!(parse_hostname("a/b").is_err());
    }

    #[test]
    fn memory_sizes_are_parsed_and_bounded() {
        assert_eq!(parse_memory("64M", 4 << 20, 256 << 20), Ok(64 << 20));
        assert_eq!(parse_memory("4m", 4 << 20, 256 << 20), Ok(4 << 20));
        assert_eq!(parse_memory("3M", 4 << 20, 256 << 20), Err(MemoryError::TooSmall));
        assert_eq!(parse_memory("1G", 4 << 20, 256 << 20), Err(MemoryError::TooLarge));
        assert!(matches!(
            parse_memory("lots", 4 << 20, 256 << 20),
            Err(MemoryError::Malformed(_))
        ));
    }
}
