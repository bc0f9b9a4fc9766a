//! The ledger of the current run: begin a run, record each object before it
//! is created, forget what went away by itself, and finish (tear down).

use super::*;

/// Start a run: write its state file and create its private working directory.
pub fn begin(lesson: &str) -> Result<Run, StateError> {
    let run = begin_bare(lesson)?;
    make_workdir(&run)?;
    Ok(run)
}

/// Start a run without creating its working directory yet (`Run::workdir`
/// names it; [`make_workdir`] creates it). `workbench run` only needs one for
/// images and overlays, and on hosts where /run is not a tmpfs every
/// directory costs real time. The state file itself is written by the first
/// [`record`]/[`track`]: until then the run has created nothing to clean up.
pub fn begin_bare(lesson: &str) -> Result<Run, StateError> {
    let root = run_root();
    create_private_dir(&root)?;
    create_private_dir(&runs_dir())?;
    let tmp = tmp_dir();
    if let Some(parent) = tmp.parent() {
        std::fs::create_dir_all(parent).map_err(ioerr("mkdir", parent))?;
    }
    create_private_dir(&tmp)?;
    let me = self_pid();
    let mut guard = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
    let run_id = random_id();
    let state = RunState {
        run_id: run_id.clone(),
        lesson: lesson.to_string(),
        owner_pid: me,
        owner_start: start_time(me).unwrap_or(0),
        resources: vec![],
    };
    *guard = Some(state);
    drop(guard);
    let workdir = tmp.join(format!("{PREFIX}-{run_id}-{lesson}"));
    Ok(Run { run_id, workdir })
}

/// What a lesson gets from [`begin`].
#[derive(Debug, Clone)]
pub struct Run {
    pub run_id: String,
    pub workdir: PathBuf,
}

/// Record a resource (before creating it, when its name is known in advance).
pub fn record(r: Resource) -> Result<(), StateError> {
    let mut guard = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
    let state = guard.as_mut().ok_or(StateError::NoRun)?;
    state.resources.push(r);
    state.persist().map_err(ioerr("write", &state.path()))
}

/// Create something and record it while holding the state lock, so a signal
/// arriving in between cannot tear down a half-recorded run.
pub fn track<T, E: From<StateError>>(create: impl FnOnce() -> Result<(T, Resource), E>) -> Result<T, E> {
    let mut guard = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
    // No run (e.g. a signal's teardown just ended it): create nothing that could not be recorded.
    let state = guard.as_mut().ok_or(StateError::NoRun)?;
    let (value, r) = create()?;
    state.resources.push(r);
    state.persist().map_err(ioerr("write", &state.path()))?;
    Ok(value)
}

/// Record several resources, then create them, all under the state lock: the
/// state file names them before they exist, and a signal cannot tear the run
/// down while they are half made. If `create` fails the records stay (removing
/// something that does not exist is not an error).
pub fn record_and_create<T, E: From<StateError>>(
    resources: Vec<Resource>,
    create: impl FnOnce() -> Result<T, E>,
) -> Result<T, E> {
    let mut guard = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
    let state = guard.as_mut().ok_or(StateError::NoRun)?;
    state.resources.extend(resources);
    state.persist().map_err(ioerr("write", &state.path()))?;
    create()
}

/// The state files of live runs owned by other processes than this one
/// (unreadable or half-written files are skipped: they hold nothing yet).
/// Reads no state of this process, so it is safe while a teardown runs.
pub fn other_live_runs() -> Vec<RunState> {
    let me = self_pid();
    let Ok(entries) = std::fs::read_dir(runs_dir()) else {
        return vec![];
    };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter_map(|p| serde_json::from_str::<RunState>(&std::fs::read_to_string(p).ok()?).ok())
        .filter(|s| s.owner_pid != me && s.owner_alive())
        .collect()
}

/// Remove one resource now (the lesson is done with it) and forget it.
pub fn release(r: &Resource) -> Result<(), String> {
    let mut guard = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
    remove(r)?;
    if let Some(state) = guard.as_mut() {
        state.resources.retain(|x| x != r);
        let _ = state.persist();
    }
    Ok(())
}

/// Forget a resource that went away by itself (e.g. a child that exited).
pub fn forget(r: &Resource) {
    let mut guard = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(state) = guard.as_mut() {
        state.resources.retain(|x| x != r);
        let _ = state.persist();
    }
}

/// End the current run: remove everything it recorded, newest first, and its state file.
/// Returns the problems met (empty when all went well). Safe to call twice.
pub fn finish() -> Vec<String> {
    let mut guard = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
    let Some(state) = guard.take() else { return vec![] };
    let problems = teardown(&state);
    if problems.is_empty() {
        let _ = std::fs::remove_file(state.path());
    }
    problems
}
