//! A network partition between two groups of processes on the loopback
//! interface, made with `iptables` (Linux, root only): see [`Partition`].

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use crate::proc::run_with_timeout;
use crate::{RunAs, TestkitError};

/// The connmark bit of connections opened by side B.
const MARK: &str = "0x10000000/0x10000000";
/// Prefix of the chain jumped to from `OUTPUT` (classification).
const MAIN_PREFIX: &str = "SESAME_PART_";
/// Prefix of the chain holding the cut's rules.
const CUT_PREFIX: &str = "SESAME_CUT_";
/// Prefix of the scratch chain of [`Partition::available`].
const PROBE_PREFIX: &str = "SESAME_PROBE_";
/// How long one `iptables` call may take (it may wait for the xtables lock).
const IPTABLES_TIMEOUT: Duration = Duration::from_secs(30);
/// How long installing iptables may take.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(300);
/// Most ports one `multiport` match takes.
const MULTIPORT_MAX: usize = 15;

/// One `iptables` change at a time in this process: parallel tests share the
/// `OUTPUT` chain.
static IPTABLES: Mutex<()> = Mutex::new(());
/// Numbers the partitions of this process.
static NEXT: AtomicU32 = AtomicU32::new(0);

/// A network partition between two groups of processes on the loopback
/// interface, made with `iptables` (Linux, root only).
///
/// Everything runs on `127.0.0.1`, so the two sides are told apart by user:
/// side B is every process of one user (a [`RunAs`] user, e.g. the replicas and
/// sentinels of a [`SentinelGroup`](crate::SentinelGroup) started with
/// [`SentinelOptions::run_as`](crate::SentinelOptions::run_as)), side A every
/// other process (the master and the test process with its store). A cut drops
/// every packet, in both directions, of each TCP connection between a side-B
/// process and a side-A server, or between a side-A process and a side-B
/// server: connections being opened time out, and open ones stall as if the
/// packets were lost on the way (nothing is refused or reset).
///
/// How: a chain of this process's own (`SESAME_PART_<pid>_<n>`), jumped to
/// from `OUTPUT`, marks each new connection a side-B process opens (connmark
/// bit `0x10000000`, from the owner of the socket sending the first packet).
/// The mark is what lets replies be dropped as well: a reply leaves through
/// the server's socket, which says nothing of the client's user, and dropping
/// only what clients send would still let a master's replication stream reach
/// a cut-off replica. A cut fills a second chain (`SESAME_CUT_<pid>_<n>`) with
/// four rules, each matching only the given ports on `lo`:
///
/// - marked connections to a side-A port, and their replies from it;
/// - unmarked connections to a side-B port, and their replies from it.
///
/// A heal empties that chain. Dropping the [`Partition`] removes the jump and
/// both chains (also while a panicking test unwinds), and creating one first
/// removes the chains of earlier test processes that died without cleaning up.
///
/// Connections are classified when they open, so create the [`Partition`]
/// *before* the processes it separates. Partitions alive at the same time
/// share the mark, so they must use the same side-B user; the mark stays on
/// connections after the partition is gone (nothing else looks at it).
///
/// ```no_run
/// use sesame_testkit::{Partition, RunAs, SentinelGroup, SentinelOptions};
/// if let Err(why) = Partition::available() {
///     eprintln!("skipped: {why}");
///     return;
/// }
/// // Before the processes: their connections are classified as they open.
/// let mut partition = Partition::new(RunAs::NOBODY).unwrap();
/// let opts = SentinelOptions { run_as: Some(RunAs::NOBODY), ..SentinelOptions::default() };
/// let group = SentinelGroup::start_with(opts).unwrap();
/// let (a, b): (Vec<_>, Vec<_>) = group.data_nodes().iter().partition(|n| n.run_as().is_none());
/// let a: Vec<u16> = a.iter().map(|n| n.port()).collect();
/// let mut b: Vec<u16> = b.iter().map(|n| n.port()).collect();
/// b.extend(group.sentinel_ports());
/// partition.cut(&a, &b).unwrap();
/// // ... the master and this process on one side, replicas and sentinels on the other ...
/// partition.heal().unwrap();
/// ```
#[derive(Debug)]
pub struct Partition {
    iptables: PathBuf,
    uid: u32,
    main: String,
    cut: String,
    is_cut: bool,
}

impl Partition {
    /// `Ok` when partitions can be made here: this process runs as root,
    /// `iptables` is there (installed with `apt-get` when missing and
    /// possible) and accepts the matches used (`owner`, `conntrack`,
    /// `connmark`, `multiport`, the `CONNMARK` target). Otherwise the reason,
    /// for a test to print when it skips.
    pub fn available() -> Result<(), String> {
        static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
        CHECKED.get_or_init(check_available).clone()
    }

    /// Sets up the classification of connections for a partition whose side B
    /// is `side_b`'s user (its group is not used); nothing is cut yet. Also
    /// removes what earlier, dead test processes left behind.
    pub fn new(side_b: RunAs) -> Result<Partition, TestkitError> {
        Self::available().map_err(TestkitError::Partition)?;
        let iptables = iptables_path().map_err(TestkitError::Partition)?;
        let _one = IPTABLES.lock().unwrap_or_else(PoisonError::into_inner);
        remove_stale(&iptables);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let partition = Partition {
            iptables,
            uid: side_b.uid,
            main: format!("{MAIN_PREFIX}{pid}_{n}"),
            cut: format!("{CUT_PREFIX}{pid}_{n}"),
            is_cut: false,
        };
        let installed = partition.install();
        drop(_one);
        // On an error, dropping `partition` (with the lock released) removes
        // whatever was made.
        installed?;
        Ok(partition)
    }

    /// Cuts side A (the servers on `side_a` ports and every process not of
    /// side B's user) off from side B (the servers on `side_b` ports and every
    /// process of that user). Cutting again replaces the earlier cut.
    pub fn cut(&mut self, side_a: &[u16], side_b: &[u16]) -> Result<(), TestkitError> {
        let (a, b): (BTreeSet<u16>, BTreeSet<u16>) =
            (side_a.iter().copied().collect(), side_b.iter().copied().collect());
        if a.is_empty() || b.is_empty() || !a.is_disjoint(&b) {
            return Err(TestkitError::Partition(format!(
                "a cut needs ports on both sides, none on both (side A {a:?}, side B {b:?})"
            )));
        }
        let _one = IPTABLES.lock().unwrap_or_else(PoisonError::into_inner);
        self.run(&["-F", &self.cut])?;
        self.is_cut = true;
        for (ports, marked) in [(&a, true), (&b, false)] {
            let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
            for chunk in ports.chunks(MULTIPORT_MAX) {
                let list = chunk.join(",");
                for direction in ["--dports", "--sports"] {
                    let mut rule = vec!["-A", &self.cut, "-o", "lo", "-p", "tcp", "-m", "connmark"];
                    if !marked {
                        rule.push("!");
                    }
                    rule.extend([
                        "--mark",
                        MARK,
                        "-m",
                        "multiport",
                        direction,
                        &list,
                        "-j",
                        "DROP",
                    ]);
                    self.run(&rule)?;
                }
            }
        }
        Ok(())
    }

    /// Ends the cut: every packet flows again (connections that stalled carry
    /// on once TCP retransmits).
    pub fn heal(&mut self) -> Result<(), TestkitError> {
        let _one = IPTABLES.lock().unwrap_or_else(PoisonError::into_inner);
        self.run(&["-F", &self.cut])?;
        self.is_cut = false;
        Ok(())
    }

    /// Whether a cut is in place.
    pub fn is_cut(&self) -> bool {
        self.is_cut
    }

    /// Creates both chains, the classification rule and the jump from
    /// `OUTPUT` (first, so no earlier rule lets packets bypass it).
    fn install(&self) -> Result<(), TestkitError> {
        let uid = self.uid.to_string();
        self.run(&["-N", &self.cut])?;
        self.run(&["-N", &self.main])?;
        self.run(&[
            "-A",
            &self.main,
            "-o",
            "lo",
            "-p",
            "tcp",
            "-m",
            "conntrack",
            "--ctstate",
            "NEW",
            "-m",
            "owner",
            "--uid-owner",
            &uid,
            "-j",
            "CONNMARK",
            "--set-xmark",
            MARK,
        ])?;
        self.run(&["-A", &self.main, "-j", &self.cut])?;
        self.run(&["-I", "OUTPUT", "1", "-j", &self.main])
    }

    /// Runs `iptables -w 10 ARGS`.
    fn run(&self, args: &[&str]) -> Result<(), TestkitError> {
        iptables(&self.iptables, args).map_err(TestkitError::Partition)
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        let _one = IPTABLES.lock().unwrap_or_else(PoisonError::into_inner);
        remove_chains(&self.iptables, &self.main, &self.cut);
    }
}

/// Runs `iptables -w 10 ARGS` (waiting up to 10 s for the xtables lock); the
/// error names the command and what it printed.
fn iptables(path: &Path, args: &[&str]) -> Result<(), String> {
    let mut cmd = Command::new(path);
    cmd.args(["-w", "10"]).args(args);
    let done = run_with_timeout(cmd, IPTABLES_TIMEOUT)
        .map_err(|e| format!("cannot run {}: {e}", path.display()))?;
    match done.status {
        Some(status) if status.success() => Ok(()),
        status => Err(format!(
            "iptables {} failed ({}): {}",
            args.join(" "),
            status.map_or_else(|| "timed out".to_owned(), |s| s.to_string()),
            done.stderr.trim()
        )),
    }
}

/// Removes the jump to `main` from `OUTPUT`, then both chains; best effort.
fn remove_chains(path: &Path, main: &str, cut: &str) {
    // A jump inserted twice (it never is) would need two deletions.
    while iptables(path, &["-D", "OUTPUT", "-j", main]).is_ok() {}
    for chain in [main, cut] {
        let _ = iptables(path, &["-F", chain]);
    }
    for chain in [main, cut] {
        if let Err(e) = iptables(path, &["-X", chain]) {
            // Gone already is fine; anything else is worth a line on stderr.
            if !e.contains("No chain") && !e.contains("does not exist") {
                eprintln!("partition: cannot remove chain {chain}: {e}");
            }
        }
    }
}

/// Removes the chains (and their jumps) of test processes that are no longer
/// running; never those of a live process.
fn remove_stale(path: &Path) {
    let Ok(listing) = listing(path) else { return };
    let mut dead = BTreeSet::new();
    for line in listing.lines() {
        let Some(chain) = line.strip_prefix("-N ") else { continue };
        if let Some(pid) = chain.strip_prefix(PROBE_PREFIX).and_then(|p| p.parse::<u32>().ok()) {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = iptables(path, &["-F", chain]);
                let _ = iptables(path, &["-X", chain]);
            }
            continue;
        }
        let Some(rest) = chain.strip_prefix(MAIN_PREFIX).or_else(|| chain.strip_prefix(CUT_PREFIX))
        else {
            continue;
        };
        let Some((pid, n)) = rest.split_once('_') else { continue };
        let (Ok(pid), Ok(n)) = (pid.parse::<u32>(), n.parse::<u32>()) else { continue };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            dead.insert((pid, n));
        }
    }
    for (pid, n) in dead {
        eprintln!("partition: removing the chains of dead process {pid}");
        remove_chains(path, &format!("{MAIN_PREFIX}{pid}_{n}"), &format!("{CUT_PREFIX}{pid}_{n}"));
    }
}

/// `iptables -S`: every rule and chain of the filter table.
fn listing(path: &Path) -> Result<String, String> {
    let mut cmd = Command::new(path);
    cmd.args(["-w", "10", "-S"]);
    let done = run_with_timeout(cmd, IPTABLES_TIMEOUT).map_err(|e| e.to_string())?;
    match done.status {
        Some(status) if status.success() => Ok(done.stdout),
        _ => Err(done.stderr),
    }
}

/// The checks behind [`Partition::available`].
fn check_available() -> Result<(), String> {
    match effective_uid() {
        Some(0) => {}
        Some(uid) => return Err(format!("needs root to change iptables (running as uid {uid})")),
        None => return Err("cannot tell this process's uid from /proc/self/status".to_owned()),
    }
    let path = iptables_path()?;
    // Try every match on a scratch chain of this process, then remove it.
    let _one = IPTABLES.lock().unwrap_or_else(PoisonError::into_inner);
    let chain = format!("{PROBE_PREFIX}{}", std::process::id());
    iptables(&path, &["-N", &chain])?;
    let rules: [&[&str]; 2] = [
        &[
            "-A",
            &chain,
            "-o",
            "lo",
            "-p",
            "tcp",
            "-m",
            "conntrack",
            "--ctstate",
            "NEW",
            "-m",
            "owner",
            "--uid-owner",
            "65534",
            "-j",
            "CONNMARK",
            "--set-xmark",
            MARK,
        ],
        &[
            "-A",
            &chain,
            "-o",
            "lo",
            "-p",
            "tcp",
            "-m",
            "connmark",
            "!",
            "--mark",
            MARK,
            "-m",
            "multiport",
            "--dports",
            "1,2",
            "-j",
            "DROP",
        ],
    ];
    let tried = rules.iter().try_for_each(|rule| iptables(&path, rule));
    let _ = iptables(&path, &["-F", &chain]);
    let _ = iptables(&path, &["-X", &chain]);
    tried.map_err(|e| format!("iptables refuses a rule a partition needs: {e}"))
}

/// The effective uid, from `/proc/self/status`.
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Where `iptables` is, installing it with `apt-get` (once per process) when
/// it is missing.
fn iptables_path() -> Result<PathBuf, String> {
    static FOUND: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            if let Some(path) = find_iptables() {
                return Ok(path);
            }
            install_iptables()?;
            find_iptables().ok_or_else(|| "iptables is still missing after apt-get".to_owned())
        })
        .clone()
}

/// An `iptables` that runs, on `PATH` or in the usual system directories.
fn find_iptables() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("iptables")).collect())
        .unwrap_or_default();
    candidates.extend(["/usr/sbin/iptables", "/sbin/iptables"].map(PathBuf::from));
    candidates.into_iter().find(|path| {
        path.is_file() && {
            let mut cmd = Command::new(path);
            cmd.arg("--version");
            run_with_timeout(cmd, IPTABLES_TIMEOUT)
                .is_ok_and(|done| done.status.is_some_and(|s| s.success()))
        }
    })
}

/// `apt-get install -y iptables` (after `apt-get update` when the first try
/// fails), when `apt-get` exists.
fn install_iptables() -> Result<(), String> {
    let apt = ["/usr/bin/apt-get", "/bin/apt-get"].into_iter().find(|p| Path::new(p).is_file());
    let Some(apt) = apt else {
        return Err("iptables is missing and there is no apt-get to install it".to_owned());
    };
    let apt_get = |args: &[&str]| -> Result<(), String> {
        let mut cmd = Command::new(apt);
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        let done = run_with_timeout(cmd, INSTALL_TIMEOUT).map_err(|e| e.to_string())?;
        match done.status {
            Some(status) if status.success() => Ok(()),
            _ => Err(format!("apt-get {} failed: {}", args.join(" "), done.stderr.trim())),
        }
    };
    let install = ["install", "-y", "-q", "--no-install-recommends", "iptables"];
    if apt_get(&install).is_ok() {
        return Ok(());
    }
    apt_get(&["update", "-q"])?;
    apt_get(&install).map_err(|e| format!("iptables is missing and cannot be installed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_effective_uid() {
        // Whoever runs the tests, /proc/self/status has a numeric effective uid.
        assert!(effective_uid().is_some());
    }
}
