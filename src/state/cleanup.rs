//! `workbench cleanup`: tear down the runs whose owner died (after SIGKILL),
//! as their state files describe them.

use super::*;

/// What `workbench cleanup` did.
#[derive(Debug, Default, Serialize)]
pub struct CleanupReport {
    pub runs_cleaned: Vec<RunRef>,
    /// Runs whose owner still runs: left alone.
    pub runs_alive: Vec<RunRef>,
    pub removed: Vec<Removed>,
    pub problems: Vec<String>,
}

/// A run `workbench cleanup` found.
#[derive(Debug, Clone, Serialize)]
pub struct RunRef {
    pub run_id: String,
    pub lesson: String,
    pub owner_pid: i32,
}

/// A resource `workbench cleanup` removed, and the run that left it.
#[derive(Debug, Clone, Serialize)]
pub struct Removed {
    pub run_id: String,
    pub resource: String,
}

/// Remove what runs whose owner is dead left behind.
pub fn cleanup_leftovers() -> Result<CleanupReport, StateError> {
    let mut report = CleanupReport::default();
    let dir = runs_dir();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(report),
        Err(e) => return Err(ioerr("read", &dir)(e)),
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json" || x == "tmp"))
        .collect();
    files.sort();
    for path in files {
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            // A live run renamed its new state over the old one, or finished,
            // between the listing and this read: nothing left to clean.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                report.problems.push(format!("read {}: {e}", path.display()));
                continue;
            }
        };
        let state: RunState = match serde_json::from_str(&text) {
            Ok(s) => s,
            Err(_) if path.extension().is_some_and(|x| x == "tmp") => {
                // Half written: a killed run's leftover, or a live run writing
                // it right now (leave that one alone: its state file names a
                // live owner, or, on its first write, it has none yet but is fresh).
                let fresh = std::fs::metadata(&path)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_none_or(|age| age < std::time::Duration::from_secs(10));
                let live = fresh
                    || path
                        .file_stem()
                        .and_then(|stem| std::fs::read_to_string(dir.join(stem)).ok())
                        .and_then(|t| serde_json::from_str::<RunState>(&t).ok())
                        .is_some_and(|s| s.owner_alive());
                if !live {
                    let _ = std::fs::remove_file(&path);
                }
                continue;
            }
            Err(e) => {
                report.problems.push(format!("parse {}: {e}", path.display()));
                continue;
            }
        };
        let run = RunRef {
            run_id: state.run_id.clone(),
            lesson: state.lesson.clone(),
            owner_pid: state.owner_pid,
        };
        if state.owner_alive() {
            report.runs_alive.push(run);
            continue;
        }
        let problems = teardown(&state);
        report.removed.extend(state.resources.iter().rev().map(|r| Removed {
            run_id: state.run_id.clone(),
            resource: r.to_string(),
        }));
        if problems.is_empty() {
            let _ = std::fs::remove_file(&path);
            report.runs_cleaned.push(run);
        } else {
            report.problems.extend(problems);
        }
    }
    // Empty `workbench` cgroup parents: an OCI runtime removes its container's
    // group but not the parent, and a killed run may leave one empty.
    let _ = wb_cgroup::remove_empty_parents();
    Ok(report)
}
