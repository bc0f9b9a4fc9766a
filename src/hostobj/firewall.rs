//! NAT and filter rules through nftables (preferred) or iptables, recorded and removable.
//!
//! Netfilter lets rules see a packet at five hooks: `prerouting` (just
//! arrived), `input` (for this host), `forward` (routed through it), `output`
//! (made by this host) and `postrouting` (about to leave). NAT rules act on
//! the *first* packet of a connection: DNAT in prerouting/output rewrites its
//! destination (port mapping), MASQUERADE in postrouting rewrites its source
//! to the outgoing interface's address; connection tracking remembers the
//! rewrite and applies it to every later packet and, reversed, to the
//! replies. Docker's `-p 8080:80` and its outbound NAT are exactly such rules.
//!
//! workbench keeps its rules apart from the host's: with nftables it puts
//! them in a table of its own (`table ip wb…`), so removing them is deleting
//! that table; with iptables each rule carries a `wb…` comment and is deleted
//! by its exact specification. Existing tables, chains and rules are never
//! changed.

use std::collections::BTreeSet;
use std::process::Command;

use super::Resource;

/// Which tool programs netfilter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `nft`: a table of our own.
    Nft,
    /// `iptables`: tagged rules in the built-in `nat` and `filter` chains.
    Iptables,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Nft => "nftables (nft)",
            Backend::Iptables => "iptables",
        }
    }
}

/// Errors of the firewall layer; each names the command that failed.
#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    #[error("run {command}: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{command}: {status}: {stderr}")]
    Failed {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("firewall: {0}")]
    Invalid(String),
}

fn tool_works(prog: &str, args: &[&str]) -> bool {
    Command::new(prog).args(args).output().is_ok_and(|o| o.status.success())
}

/// Is `iptables` the nf_tables variant (`iptables v1.8.9 (nf_tables)`)? Its
/// rules live in nft tables `ip nat` / `ip filter` that it creates on demand.
pub fn iptables_is_nft_variant() -> bool {
    Command::new("iptables")
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("nf_tables"))
}

fn nft_works() -> bool {
    tool_works("nft", &["list", "tables"])
}

/// Pick the backend: `WORKBENCH_FIREWALL=nft|iptables` if set, else nft when
/// it works, else legacy iptables. The error is a one-line remedy.
pub fn detect() -> Result<Backend, String> {
    let iptables = || -> Result<Backend, String> {
        if !tool_works("iptables", &["--version"]) {
            return Err("iptables does not work on this host: run scripts/setup, or apt-get install nftables".into());
        }
        // iptables-nft creates base chains it never removes; only nft can.
        if iptables_is_nft_variant() && !nft_works() {
            return Err("iptables here is the nf_tables variant and nft is missing, so workbench could not remove the chains iptables creates: apt-get install nftables".into());
        }
        Ok(Backend::Iptables)
    };
    match std::env::var("WORKBENCH_FIREWALL").ok().as_deref() {
        Some("nft") if nft_works() => return Ok(Backend::Nft),
        Some("nft") => {
            return Err("WORKBENCH_FIREWALL=nft but `nft list tables` fails: apt-get install nftables".into())
        }
        Some("iptables") => return iptables(),
        Some(other) if !other.is_empty() => {
            return Err(format!("WORKBENCH_FIREWALL must be nft or iptables, not {other:?}"))
        }
        _ => {}
    }
    if nft_works() {
        Ok(Backend::Nft)
    } else {
        iptables().map_err(|_| {
            "neither nft nor iptables works on this host: run scripts/setup, or apt-get install nftables".to_string()
        })
    }
}

/// A netfilter hook workbench puts rules on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Hook {
    Prerouting,
    Output,
    Postrouting,
    Forward,
}

impl Hook {
    /// Our nft chain for this hook (named after it).
    pub fn nft_chain(self) -> &'static str {
        match self {
            Hook::Prerouting => "prerouting",
            Hook::Output => "output",
            Hook::Postrouting => "postrouting",
            Hook::Forward => "forward",
        }
    }

    /// The base-chain declaration for `nft add chain`.
    pub fn nft_chain_spec(self) -> &'static str {
        match self {
            Hook::Prerouting => "{ type nat hook prerouting priority dstnat; policy accept; }",
            Hook::Output => "{ type nat hook output priority -100; policy accept; }",
            Hook::Postrouting => "{ type nat hook postrouting priority srcnat; policy accept; }",
            Hook::Forward => "{ type filter hook forward priority filter; policy accept; }",
        }
    }

    /// The iptables table and built-in chain.
    pub fn iptables_place(self) -> (&'static str, &'static str) {
        match self {
            Hook::Prerouting => ("nat", "PREROUTING"),
            Hook::Output => ("nat", "OUTPUT"),
            Hook::Postrouting => ("nat", "POSTROUTING"),
            Hook::Forward => ("filter", "FORWARD"),
        }
    }
}

/// What a matching packet gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Masquerade,
    Dnat { addr: String, port: u16 },
    Drop,
}

/// One rule, expressible in both nft and iptables syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub hook: Hook,
    pub iif: Option<String>,
    pub oif: Option<String>,
    /// Matches packets leaving through any interface *but* this one.
    pub oif_not: Option<String>,
    pub saddr: Option<String>,
    pub daddr: Option<String>,
    pub tcp_dport: Option<u16>,
    pub action: Action,
}

impl Rule {
    pub fn new(hook: Hook, action: Action) -> Rule {
        Rule {
            hook,
            iif: None,
            oif: None,
            oif_not: None,
            saddr: None,
            daddr: None,
            tcp_dport: None,
            action,
        }
    }

    /// The rule's matches, in nft (`iifname X`) or iptables (`-i X`) words:
    /// one table of the matches for both syntaxes.
    fn match_words(&self, nft: bool) -> Vec<String> {
        let port = self.tcp_dport.map(|p| p.to_string());
        let matches: [(Option<&str>, &[&str], &[&str]); 6] = [
            (self.iif.as_deref(), &["iifname"], &["-i"]),
            (self.oif.as_deref(), &["oifname"], &["-o"]),
            (self.oif_not.as_deref(), &["oifname", "!="], &["!", "-o"]),
            (self.saddr.as_deref(), &["ip", "saddr"], &["-s"]),
            (self.daddr.as_deref(), &["ip", "daddr"], &["-d"]),
            (port.as_deref(), &["tcp", "dport"], &["-p", "tcp", "--dport"]),
        ];
        let mut w = Vec::new();
        for (value, nft_words, iptables_words) in matches {
            if let Some(v) = value {
                words(&mut w, if nft { nft_words } else { iptables_words });
                w.push(v.to_string());
            }
        }
        w
    }

    /// The rule in nft syntax, as words (`ip saddr 10.0.0.0/24 oifname wbx counter masquerade`).
    pub fn nft_words(&self) -> Vec<String> {
        let mut w = self.match_words(true);
        w.push("counter".into());
        match &self.action {
            Action::Masquerade => words(&mut w, &["masquerade"]),
            Action::Dnat { addr, port } => words(&mut w, &["dnat", "to", &format!("{addr}:{port}")]),
            Action::Drop => words(&mut w, &["drop"]),
        }
        w
    }

    /// The rule as iptables match/target arguments, tagged with a comment.
    pub fn iptables_args(&self, tag: &str) -> Vec<String> {
        let mut a = self.match_words(false);
        words(&mut a, &["-m", "comment", "--comment", tag]);
        match &self.action {
            Action::Masquerade => words(&mut a, &["-j", "MASQUERADE"]),
            Action::Dnat { addr, port } => {
                words(&mut a, &["-j", "DNAT", "--to-destination", &format!("{addr}:{port}")])
            }
            Action::Drop => words(&mut a, &["-j", "DROP"]),
        }
        a
    }
}

fn words(v: &mut Vec<String>, w: &[&str]) {
    v.extend(w.iter().map(|s| s.to_string()));
}

fn run(prog: &str, args: &[String]) -> Result<String, FirewallError> {
    let command = format!("{prog} {}", args.join(" "));
    let out = Command::new(prog)
        .args(args)
        .output()
        .map_err(|source| FirewallError::Spawn {
            command: command.clone(),
            source,
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" / ");
        return Err(FirewallError::Failed {
            command,
            status: out.status.to_string(),
            stderr: stderr.to_lowercase(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// A shell-ready rendering of an argument list: a word with anything but
/// letters, digits and `-_./:,=+@%!` is put in single quotes (a `'` inside as `'\''`).
pub fn shell_words(prog: &str, args: &[String]) -> String {
    let mut s = prog.to_string();
    for a in args {
        s.push(' ');
        s.push_str(&shell_quote(a));
    }
    s
}

fn shell_quote(a: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./:,=+@%!".contains(c);
    if !a.is_empty() && a.chars().all(safe) {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', "'\\''"))
    }
}

/// Load an nft script (`nft -f -`) in one transaction: every command in it
/// takes effect, or (on any error) none does.
pub fn apply_ruleset(script: &str) -> Result<(), FirewallError> {
    use std::io::Write;
    let command = "nft -f -".to_string();
    let spawn = |source| FirewallError::Spawn {
        command: command.clone(),
        source,
    };
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(spawn)?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(script.as_bytes())
        .map_err(spawn)?;
    let out = child.wait_with_output().map_err(spawn)?;
    if !out.status.success() {
        return Err(FirewallError::Failed {
            command,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// The rules of one run.
#[derive(Debug)]
pub struct Firewall {
    pub backend: Backend,
    /// The nft table name, which is also the iptables comment tag (`wb…`).
    pub table: String,
    table_made: bool,
    chains: BTreeSet<Hook>,
}

impl Firewall {
    pub fn new(backend: Backend, table: &str) -> Result<Firewall, FirewallError> {
        if !table.starts_with(super::PREFIX) || table.len() > 32 || !table.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(FirewallError::Invalid(format!(
                "table name {table:?} must be wb followed by letters and digits"
            )));
        }
        Ok(Firewall {
            backend,
            table: table.to_string(),
            table_made: false,
            chains: BTreeSet::new(),
        })
    }

    /// The objects [`add`](Self::add) would create for `rule` that teardown
    /// must remove (`remove_nft_table`, `remove_iptables_rule`,
    /// `remove_xtables_chain`): the caller records them in the run ledger first.
    pub fn objects_for(&self, rule: &Rule) -> Vec<Resource> {
        match self.backend {
            Backend::Nft if self.table_made => Vec::new(),
            Backend::Nft => vec![Resource::NftTable {
                family: "ip".into(),
                name: self.table.clone(),
            }],
            Backend::Iptables => {
                let (table, chain) = rule.hook.iptables_place();
                let mut v = Vec::new();
                // iptables-nft creates the nft table and base chain on first
                // use and never deletes them: record them for removal (when
                // empty again) if they do not exist yet.
                if iptables_is_nft_variant() && !tool_works("nft", &["list", "chain", "ip", table, chain]) {
                    let drop_table = !tool_works("nft", &["list", "table", "ip", table]);
                    v.push(Resource::XtablesChain {
                        table: table.into(),
                        chain: chain.into(),
                        drop_table,
                    });
                }
                v.push(Resource::IptablesRule {
                    table: table.into(),
                    chain: chain.into(),
                    spec: rule.iptables_args(&self.table),
                });
                v
            }
        }
    }

    /// Add `rule` (creating our table and the hook's chain on first use).
    /// The caller has recorded [`objects_for`](Self::objects_for) before.
    /// Returns the commands run, for the transcript.
    pub fn add(&mut self, rule: &Rule) -> Result<Vec<String>, FirewallError> {
        let mut ran = Vec::new();
        match self.backend {
            Backend::Nft => {
                // One transaction (`nft -f -`); the learner sees each command of it.
                let mut commands = Vec::new();
                if !self.table_made {
                    commands.push(strings(&["add", "table", "ip", &self.table]));
                }
                if !self.chains.contains(&rule.hook) {
                    commands.push(strings(&[
                        "add",
                        "chain",
                        "ip",
                        &self.table,
                        rule.hook.nft_chain(),
                        rule.hook.nft_chain_spec(),
                    ]));
                }
                let mut args = strings(&["add", "rule", "ip", &self.table, rule.hook.nft_chain()]);
                args.extend(rule.nft_words());
                commands.push(args);
                apply_ruleset(&commands.iter().map(|c| c.join(" ") + "\n").collect::<String>())?;
                self.table_made = true;
                self.chains.insert(rule.hook);
                ran.extend(commands.iter().map(|c| shell_words("nft", c)));
            }
            Backend::Iptables => {
                let (table, chain) = rule.hook.iptables_place();
                let spec = rule.iptables_args(&self.table);
                // Inserted first in the chain: the rule only matches our own
                // interfaces and addresses, and must not be shadowed.
                let mut args = strings(&["-t", table, "-I", chain, "1"]);
                args.extend(spec);
                run("iptables", &args)?;
                ran.push(shell_words("iptables", &args));
            }
        }
        Ok(ran)
    }

    /// The command that lists our rules with their packet counters.
    pub fn list_command(&self) -> String {
        match self.backend {
            Backend::Nft => format!("nft list table ip {}", self.table),
            Backend::Iptables => format!("iptables-save -c | grep {}", self.table),
        }
    }

    /// Our rules, as the tool prints them (with packet counters).
    pub fn list(&self) -> Result<String, FirewallError> {
        match self.backend {
            Backend::Nft if !self.table_made => Ok(String::new()),
            Backend::Nft => run("nft", &strings(&["list", "table", "ip", &self.table])),
            Backend::Iptables => {
                let all = run("iptables-save", &strings(&["-c"]))?;
                Ok(all
                    .lines()
                    .filter(|l| l.contains(&self.table))
                    .collect::<Vec<_>>()
                    .join("\n"))
            }
        }
    }

    /// Each of our rules with the number of packets it matched.
    pub fn counters(&self) -> Result<Vec<(String, u64)>, FirewallError> {
        let text = self.list()?;
        Ok(match self.backend {
            Backend::Nft => nft_counters(&text),
            Backend::Iptables => iptables_counters(&text),
        })
    }
}

/// `... counter packets 3 bytes 180 dnat to ...` in chain `prerouting` →
/// (`prerouting: ... dnat to ...`, 3).
pub fn nft_counters(listing: &str) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut chain = String::new();
    for line in listing.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("chain ") {
            chain = rest.trim_end_matches('{').trim().to_string();
            continue;
        }
        let Some(i) = line.find("counter packets ") else {
            continue;
        };
        let rest = &line[i + "counter packets ".len()..];
        let mut words = rest.split_whitespace();
        let Some(n) = words.next().and_then(|w| w.parse().ok()) else {
            continue;
        };
        // skip "bytes N"
        let _ = words.next();
        let _ = words.next();
        let tail: Vec<&str> = words.collect();
        let rule = format!("{}{}", &line[..i], tail.join(" "));
        out.push((format!("{chain}: {}", rule.trim()), n));
    }
    out
}

/// `[3:180] -A PREROUTING ...` → (rule, 3).
pub fn iptables_counters(listing: &str) -> Vec<(String, u64)> {
    listing
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let rest = l.strip_prefix('[')?;
            let (counts, rule) = rest.split_once(']')?;
            let packets = counts.split(':').next()?.parse().ok()?;
            Some((rule.trim().to_string(), packets))
        })
        .collect()
}

/// `nft delete table FAMILY NAME`, for cleanup. A missing table is fine;
/// names without the `wb` prefix are refused.
pub fn remove_nft_table(family: &str, name: &str) -> Result<(), String> {
    if !name.starts_with(super::PREFIX)
        || !name.chars().all(|c| c.is_ascii_alphanumeric())
        || !matches!(family, "ip" | "ip6" | "inet")
    {
        return Err(format!(
            "refusing to delete nft table {family} {name}: not a workbench table"
        ));
    }
    if !tool_works("nft", &["list", "table", family, name]) {
        return Ok(());
    }
    run("nft", &strings(&["delete", "table", family, name]))
        .map(drop)
        .map_err(|e| e.to_string())
}

/// `iptables -t TABLE -D CHAIN SPEC`, for cleanup. A missing rule is fine;
/// rules without a `wb` comment are refused.
pub fn remove_iptables_rule(table: &str, chain: &str, spec: &[String]) -> Result<(), String> {
    let tagged = spec
        .windows(2)
        .any(|w| w[0] == "--comment" && w[1].starts_with(super::PREFIX));
    if !tagged {
        return Err(format!(
            "refusing to delete iptables rule in {table} {chain}: it carries no workbench comment"
        ));
    }
    let mut check = strings(&["-t", table, "-C", chain]);
    check.extend(spec.iter().cloned());
    if Command::new("iptables")
        .args(&check)
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        return Ok(());
    }
    let mut del = strings(&["-t", table, "-D", chain]);
    del.extend(spec.iter().cloned());
    run("iptables", &del).map(drop).map_err(|e| e.to_string())
}

/// Delete a base chain iptables-nft created for our rules, if no rule is
/// left in it — and its table, if that was created too and is now empty.
pub fn remove_xtables_chain(table: &str, chain: &str, drop_table: bool) -> Result<(), String> {
    let known = matches!(
        (table, chain),
        ("nat", "PREROUTING" | "OUTPUT" | "POSTROUTING" | "INPUT") | ("filter", "FORWARD" | "INPUT" | "OUTPUT")
    );
    if !known {
        return Err(format!(
            "refusing to delete chain ip {table} {chain}: not an iptables built-in chain"
        ));
    }
    let listing = |args: &[&str]| {
        Command::new("nft")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    };
    if let Some(text) = listing(&["list", "chain", "ip", table, chain]) {
        if chain_rule_count(&text) > 0 {
            return Ok(()); // someone else's rules arrived meanwhile: leave it
        }
        run("nft", &strings(&["delete", "chain", "ip", table, chain])).map_err(|e| e.to_string())?;
    }
    if drop_table {
        if let Some(text) = listing(&["list", "table", "ip", table]) {
            if !text.lines().any(|l| l.trim_start().starts_with("chain ")) {
                run("nft", &strings(&["delete", "table", "ip", table])).map_err(|e| e.to_string())?;
            }
        }
    }
    Ok(())
}

/// Rules in an `nft list chain` listing (lines that are not the table/chain
/// headers, the `type ... hook` line or closing braces).
pub fn chain_rule_count(listing: &str) -> usize {
    listing
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty()
                && *l != "}"
                && !l.starts_with("table ")
                && !l.starts_with("chain ")
                && !l.starts_with("type ")
        })
        .count()
}

/// Chains hooked at `forward` whose policy drops packets, from `nft list
/// ruleset` text: `["ip filter FORWARD"]`. Tables named `wb…` are ours and skipped.
pub fn forward_drop_chains(ruleset: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut table = String::new();
    let mut chain = String::new();
    for line in ruleset.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("table ") {
            table = rest.trim_end_matches('{').trim().to_string();
        } else if let Some(rest) = line.strip_prefix("chain ") {
            chain = rest.trim_end_matches('{').trim().to_string();
        } else if line.contains("hook forward") && line.contains("policy drop") {
            let ours = table
                .split_whitespace()
                .nth(1)
                .is_some_and(|n| n.starts_with(super::PREFIX));
            if !ours {
                out.push(format!("{table} {chain}"));
            }
        }
    }
    out
}

/// Does the host's firewall drop forwarded packets by default? (ufw and
/// docker set the FORWARD policy to DROP.) Returns the chains that do.
pub fn host_forward_blockers() -> Vec<String> {
    let mut v = Vec::new();
    if let Ok(o) = Command::new("nft").args(["list", "ruleset"]).output() {
        if o.status.success() {
            v.extend(forward_drop_chains(&String::from_utf8_lossy(&o.stdout)));
        }
    }
    // Legacy iptables rules are invisible to nft.
    let legacy = Command::new("iptables")
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("legacy"));
    if legacy {
        if let Ok(o) = Command::new("iptables").args(["-S", "FORWARD"]).output() {
            if String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.trim() == "-P FORWARD DROP")
            {
                v.push("iptables (legacy) filter FORWARD".into());
            }
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dnat() -> Rule {
        Rule {
            iif: Some("wbab12cdo0".into()),
            daddr: Some("10.214.0.1".into()),
            tcp_dport: Some(8080),
            ..Rule::new(
                Hook::Prerouting,
                Action::Dnat {
                    addr: "10.213.0.2".into(),
                    port: 80,
                },
            )
        }
    }

    /// A forward guard: from `iif` out anywhere but `oif_not`, dropped.
    fn guard(iif: &str, oif_not: &str) -> Rule {
        Rule {
            iif: Some(iif.into()),
            oif_not: Some(oif_not.into()),
            ..Rule::new(Hook::Forward, Action::Drop)
        }
    }

    #[test]
    fn rules_in_nft_syntax() {
        let masq = Rule {
            saddr: Some("10.213.0.0/24".into()),
            oif: Some("wbab12cdo0".into()),
            ..Rule::new(Hook::Postrouting, Action::Masquerade)
        };
        for (rule, want) in [
            (
                dnat(),
                "iifname wbab12cdo0 ip daddr 10.214.0.1 tcp dport 8080 counter dnat to 10.213.0.2:80",
            ),
            (masq, "oifname wbab12cdo0 ip saddr 10.213.0.0/24 counter masquerade"),
            (
                guard("wbab12cdbr", "wbab12cdo0"),
                "iifname wbab12cdbr oifname != wbab12cdo0 counter drop",
            ),
        ] {
            assert_eq!(rule.nft_words().join(" "), want);
        }
    }

    #[test]
    fn rules_in_iptables_syntax() {
        for (rule, tag, want) in [
            (
                dnat(),
                "wbab12cd",
                "-i wbab12cdo0 -d 10.214.0.1 -p tcp --dport 8080 -m comment --comment wbab12cd -j DNAT --to-destination 10.213.0.2:80",
            ),
            (guard("wbx", "wby"), "wbt", "-i wbx ! -o wby -m comment --comment wbt -j DROP"),
        ] {
            assert_eq!(rule.iptables_args(tag).join(" "), want);
        }
        assert_eq!(Hook::Forward.iptables_place(), ("filter", "FORWARD"));
    }

    #[test]
    fn shell_words_quote_what_a_shell_would_expand() {
        let args = strings(&["-m", "comment", "--comment", "it's $HOME", "", "a\"b", "! -o"]);
        assert_eq!(
            shell_words("iptables", &args),
            r#"iptables -m comment --comment 'it'\''s $HOME' '' 'a"b' '! -o'"#
        );
        assert_eq!(
            shell_words("nft", &strings(&["oifname", "!=", "wbx", "dnat", "to", "10.0.0.2:80"])),
            "nft oifname != wbx dnat to 10.0.0.2:80"
        );
    }

    #[test]
    fn shell_words_quote_chain_specs() {
        let args = strings(&["add", "chain", "ip", "wbt", "output", Hook::Output.nft_chain_spec()]);
        assert_eq!(
            shell_words("nft", &args),
            "nft add chain ip wbt output '{ type nat hook output priority -100; policy accept; }'"
        );
    }

    #[test]
    fn table_names_must_be_ours() {
        assert!(Firewall::new(Backend::Nft, "wbab12cd").is_ok());
        for bad in ["filter", "wb x", "wb;flush ruleset", ""] {
            assert!(Firewall::new(Backend::Nft, bad).is_err(), "{bad}");
        }
        assert!(remove_nft_table("ip", "nat").unwrap_err().starts_with("refusing"));
        assert!(remove_nft_table("bridge", "wbx").is_err());
        assert!(
            remove_iptables_rule("nat", "POSTROUTING", &strings(&["-j", "MASQUERADE"]))
                .unwrap_err()
                .starts_with("refusing")
        );
    }

    #[test]
    fn parses_counters() {
        let nft = "table ip wbt {\n\tchain prerouting {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\t\tiifname \"wbo\" ip daddr 10.214.0.1 tcp dport 8080 counter packets 3 bytes 180 dnat to 10.213.0.2:80\n\t}\n}\n";
        assert_eq!(
            nft_counters(nft),
            vec![(
                "prerouting: iifname \"wbo\" ip daddr 10.214.0.1 tcp dport 8080 dnat to 10.213.0.2:80".to_string(),
                3
            )]
        );
        let ipt = "[0:0] -A POSTROUTING -s 10.213.0.0/24 -o wbo -m comment --comment wbt -j MASQUERADE\n[7:420] -A PREROUTING -i wbo -m comment --comment wbt -j DNAT --to-destination 10.213.0.2:80";
        let c = iptables_counters(ipt);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].1, 0);
        assert_eq!(c[1].1, 7);
        assert!(c[1].0.starts_with("-A PREROUTING"));
    }

    #[test]
    fn counts_rules_in_a_chain_listing() {
        let empty = "table ip nat {\n\tchain PREROUTING {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\t}\n}\n";
        assert_eq!(chain_rule_count(empty), 0);
        let one = "table ip nat {\n\tchain PREROUTING {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\t\ttcp dport 80 counter packets 0 bytes 0 dnat to 10.0.0.2\n\t}\n}\n";
        assert_eq!(chain_rule_count(one), 1);
        assert!(remove_xtables_chain("nat", "DOCKER", false)
            .unwrap_err()
            .starts_with("refusing"));
        assert!(remove_xtables_chain("mangle", "PREROUTING", true)
            .unwrap_err()
            .starts_with("refusing"));
    }

    #[test]
    fn finds_forward_drop_policies() {
        let ruleset = "table ip filter {\n\tchain FORWARD {\n\t\ttype filter hook forward priority filter; policy drop;\n\t}\n}\ntable ip wbab12cd {\n\tchain forward {\n\t\ttype filter hook forward priority filter; policy drop;\n\t}\n}\ntable inet fw {\n\tchain fwd {\n\t\ttype filter hook forward priority 0; policy accept;\n\t}\n}\n";
        assert_eq!(forward_drop_chains(ruleset), vec!["ip filter FORWARD"]);
        assert!(forward_drop_chains("").is_empty());
    }
}
