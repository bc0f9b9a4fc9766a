//! Shell completions and man pages, generated from the command line itself.
//!
//! Both come from clap's description of the CLI (`args.rs`), so they cannot
//! drift from it. The one addition is the lesson names: `workbench lesson`
//! takes any string at parse time (a typo gets a "did you mean"), but for
//! completion and the manual its argument is given the lesson ids and aliases
//! of the registry as possible values.

use std::io::Write;
use std::path::Path;

use clap::builder::{PossibleValue, PossibleValuesParser};
use clap::CommandFactory;

use super::args::{Cli, Shell};

/// The CLI as clap describes it, without its hidden subcommands (clap_complete
/// would offer them), and with the lesson ids and aliases as the possible
/// values of `workbench lesson <ID>`.
pub fn command() -> clap::Command {
    let mut values: Vec<PossibleValue> = Vec::new();
    for t in crate::lesson::text::all() {
        values.push(PossibleValue::new(t.id.clone()).help(t.title.clone()));
        for a in &t.aliases {
            values.push(PossibleValue::new(a.clone()).help(format!("alias of {}", t.id)));
        }
    }
    let full = Cli::command();
    // Rebuilt from the parts, since a Command cannot drop a subcommand.
    let subs: Vec<clap::Command> = full
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .map(|s| match s.get_name() {
            "lesson" => s
                .clone()
                .mut_arg("id", |a| a.value_parser(PossibleValuesParser::new(values.clone()))),
            _ => s.clone(),
        })
        .collect();
    let mut bare = clap::Command::new(full.get_name().to_string())
        .version(full.get_version().map(str::to_string).unwrap_or_default())
        .about(full.get_about().cloned().unwrap_or_default())
        .after_help(full.get_after_help().cloned().unwrap_or_default())
        .subcommand_required(true)
        .subcommands(subs);
    for a in full
        .get_arguments()
        .filter(|a| !matches!(a.get_id().as_str(), "help" | "version"))
    {
        bare = bare.arg(a.clone());
    }
    bare
}

/// Write the completion script for `shell` to `out`.
pub fn completions(shell: Shell, out: &mut dyn Write) {
    let mut cmd = command();
    match shell {
        Shell::Bash => clap_complete::generate(clap_complete::Shell::Bash, &mut cmd, "workbench", out),
        Shell::Zsh => clap_complete::generate(clap_complete::Shell::Zsh, &mut cmd, "workbench", out),
        Shell::Fish => {
            clap_complete::generate(clap_complete::Shell::Fish, &mut cmd, "workbench", out);
            // clap_complete's fish script completes no positional values: add the lessons.
            let lesson = cmd
                .find_subcommand("lesson")
                .and_then(|s| s.get_arguments().find(|a| a.get_id() == "id"));
            for v in lesson.map(|a| a.get_possible_values()).unwrap_or_default() {
                let help = v.get_help().map(|h| h.to_string()).unwrap_or_default();
                let _ = writeln!(
                    out,
                    "complete -c workbench -n \"__fish_workbench_using_subcommand lesson\" -f -a '{}' -d '{}'",
                    v.get_name(),
                    help.replace('\\', "\\\\").replace('\'', "\\'")
                );
            }
        }
    }
}

/// The man page of `workbench` itself, as roff.
pub fn man_page() -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(command()).render(&mut buf)?;
    Ok(buf)
}

/// Write `workbench.1` and one `workbench-<sub>.1` per visible subcommand
/// into `dir`; returns the file names written.
pub fn write_man_pages(dir: &Path) -> std::io::Result<Vec<String>> {
    std::fs::create_dir_all(dir)?;
    let cmd = command();
    // generate_to names the subcommand pages after the command's own name.
    clap_mangen::generate_to(cmd.clone(), dir)?;
    let mut names = vec!["workbench.1".to_string()];
    for s in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        names.push(format!("workbench-{}.1", s.get_name()));
    }
    // generate_to also writes pages of hidden subcommands; they are not for users.
    for s in cmd.get_subcommands().filter(|s| s.is_hide_set()) {
        let _ = std::fs::remove_file(dir.join(format!("workbench-{}.1", s.get_name())));
    }
    names.retain(|n| dir.join(n).exists());
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(shell: Shell) -> String {
        let mut out = Vec::new();
        completions(shell, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn every_shell_completes_subcommands_and_lessons() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let s = script(shell);
            for word in ["doctor", "cleanup", "run", "pid-ns", "unshare-pid", "vxlan-overlay"] {
                assert!(s.contains(word), "{shell:?} completion lacks {word}");
            }
        }
    }

    #[test]
    fn hidden_subcommands_are_not_completed() {
        assert!(!script(Shell::Bash).contains("internal-hog"));
    }

    #[test]
    fn man_page_names_the_subcommands() {
        let page = String::from_utf8(man_page().unwrap()).unwrap();
        assert!(
            page.starts_with(".ie \\n(.g .ds Aq") || page.contains(".TH workbench"),
            "{}",
            &page[..200.min(page.len())]
        );
        for sub in [
            "workbench\\-lesson",
            "workbench\\-run",
            "workbench\\-doctor",
            "workbench\\-completions",
        ] {
            assert!(page.contains(sub), "man page lacks {sub}");
        }
        assert!(!page.contains("internal\\-hog"));
    }
}
