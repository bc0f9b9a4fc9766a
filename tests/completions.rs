//! `workbench completions SHELL` and the hidden `workbench man`: the scripts
//! the package installs complete subcommands and lesson ids in a real shell,
//! and the man pages render.

mod common;

use std::process::Command;

fn script(shell: &str) -> String {
    let o = common::workbench(&["completions", shell]);
    assert_eq!(o.status.code(), Some(0), "{}", common::stderr(&o));
    common::stdout(&o)
}

/// What bash offers for the words typed so far (the last one being completed).
fn bash_completes(words: &[&str]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("workbench.bash");
    std::fs::write(&file, script("bash")).unwrap();
    let words_q: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let prog = format!(
        "source '{}'; COMP_WORDS=({}); COMP_CWORD={}; COMP_LINE='{}'; COMP_POINT=${{#COMP_LINE}}; _workbench workbench '{}' '{}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        file.display(),
        words_q.join(" "),
        words.len() - 1,
        words.join(" "),
        words[words.len() - 1],
        words[words.len() - 2],
    );
    let o = Command::new("bash")
        .args(["--norc", "-c", &prog])
        .output()
        .expect("run bash");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).lines().map(str::to_string).collect()
}

#[test]
fn bash_completes_lesson_ids_and_aliases() {
    let s = script("bash");
    assert!(s.contains("pid-ns"));
    let got = bash_completes(&["workbench", "lesson", "pid"]);
    assert!(
        got.contains(&"pid-ns".to_string()) && got.contains(&"pids-limit".to_string()),
        "{got:?}"
    );
    let got = bash_completes(&["workbench", "lesson", "unshare"]);
    assert_eq!(got, ["unshare-pid"]);
    let got = bash_completes(&["workbench", "do"]);
    assert_eq!(got, ["doctor"]);
}

#[test]
fn zsh_and_fish_scripts_name_the_lessons() {
    let zsh = script("zsh");
    assert!(zsh.starts_with("#compdef workbench"), "{}", &zsh[..40]);
    assert!(zsh.contains("pid-ns") && zsh.contains("unshare-pid"));
    let fish = script("fish");
    assert!(
        fish.contains("__fish_workbench_using_subcommand lesson\" -f -a 'pid-ns'"),
        "fish script lacks the lessons"
    );
    // Syntax-check with the shells themselves where they are installed.
    for (shell, text, check) in [("zsh", &zsh, vec!["-n"]), ("fish", &fish, vec!["--no-execute"])] {
        if Command::new(shell).arg("--version").output().is_err() {
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("script");
        std::fs::write(&f, text).unwrap();
        let o = Command::new(shell).args(&check).arg(&f).output().unwrap();
        assert!(o.status.success(), "{shell}: {}", String::from_utf8_lossy(&o.stderr));
    }
}

#[test]
fn unknown_shell_is_refused() {
    let o = common::workbench(&["completions", "tcsh"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(common::stdout(&o).is_empty());
}

#[test]
fn man_pages_render() {
    let dir = tempfile::tempdir().unwrap();
    let o = common::workbench(&["man", "--dir", dir.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", common::stderr(&o));
    for sub in ["lesson", "run", "doctor", "tour", "cleanup", "list", "completions"] {
        assert!(
            dir.path().join(format!("workbench-{sub}.1")).exists(),
            "no page for {sub}"
        );
    }
    assert!(!dir.path().join("workbench-internal-hog.1").exists());
    assert!(!dir.path().join("workbench-man.1").exists());
    let page = dir.path().join("workbench.1");
    // Rendered by man(1) where it is installed, as a user would read it.
    let text = match Command::new("man")
        .arg("-l")
        .arg(&page)
        .env("MANWIDTH", "100")
        .env("MAN_KEEP_FORMATTING", "")
        .output()
    {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        _ => std::fs::read_to_string(&page).unwrap().replace("\\-", "-"),
    };
    for sub in ["lesson", "run", "doctor", "completions"] {
        let see_also = format!("workbench-{sub}(1)");
        assert!(text.contains(&see_also), "man page lacks {see_also}:\n{text}");
    }
}
