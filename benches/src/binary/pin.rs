//! CPU pinning with `taskset` (util-linux): the bench process (load generator and stub
//! API threads) on one CPU, the server under test on another, so that the server, not
//! the harness sharing its cores, sets the delivered rate.

use std::path::PathBuf;
use std::process::Command;

/// Where the harness and the server run.
#[derive(Debug, Clone)]
pub enum Pinning {
    /// The harness is pinned to `harness_cpu`; servers start under `taskset -c server_cpu`.
    Pinned {
        /// The `taskset` executable.
        taskset: PathBuf,
        /// The CPU of the load generator and the stub.
        harness_cpu: usize,
        /// The CPU of the server under test.
        server_cpu: usize,
    },
    /// Nothing pinned, and why.
    Unpinned(String),
}

impl Pinning {
    /// Pins this process (every thread it has now, and so every thread it starts later)
    /// to the first CPU it may use, and reserves the second for the servers. Falls back
    /// to [`Pinning::Unpinned`] when `taskset` is missing, fewer than two CPUs are
    /// allowed, or pinning fails.
    pub fn harness_and_server() -> Pinning {
        let Some(taskset) = find_in_path("taskset") else {
            return Pinning::Unpinned("`taskset` (util-linux) not found".to_owned());
        };
        let cpus = allowed_cpus();
        let (Some(&harness_cpu), Some(&server_cpu)) = (cpus.first(), cpus.get(1)) else {
            return Pinning::Unpinned(format!(
                "{} CPU(s) allowed, 2 needed to separate the harness from the server",
                cpus.len()
            ));
        };
        let pinned = Command::new(&taskset)
            .args(["--all-tasks", "--cpu-list", "--pid"])
            .arg(harness_cpu.to_string())
            .arg(std::process::id().to_string())
            .stdout(std::process::Stdio::null())
            .status();
        match pinned {
            Ok(s) if s.success() => Pinning::Pinned {
                taskset,
                harness_cpu,
                server_cpu,
            },
            other => Pinning::Unpinned(format!("`taskset --pid` failed: {other:?}")),
        }
    }

    /// A command that runs `program` on the server's CPU when pinned, else `program`.
    pub fn command(&self, program: &std::path::Path) -> Command {
        match self {
            Pinning::Pinned {
                taskset,
                server_cpu,
                ..
            } => {
                let mut cmd = Command::new(taskset);
                cmd.args(["--cpu-list", &server_cpu.to_string()])
                    .arg(program);
                cmd
            }
            Pinning::Unpinned(_) => Command::new(program),
        }
    }

    /// One line for the bench's output.
    pub fn describe(&self) -> String {
        match self {
            Pinning::Pinned {
                harness_cpu,
                server_cpu,
                ..
            } => format!(
                "pinned with taskset: load generator and stub API on CPU {harness_cpu}, the server under test on CPU {server_cpu}"
            ),
            Pinning::Unpinned(why) => format!(
                "not pinned ({why}): the load generator and the stub share the CPUs with the server"
            ),
        }
    }
}

/// The CPUs this process may run on (`Cpus_allowed_list` of `/proc/self/status`).
pub fn allowed_cpus() -> Vec<usize> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap_or("")
        .trim();
    parse_cpu_list(list)
}

/// Parses a kernel CPU list such as `0-2,5` into `[0, 1, 2, 5]`; malformed parts are
/// skipped.
pub fn parse_cpu_list(list: &str) -> Vec<usize> {
    let mut cpus = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
                    cpus.extend(a..=b);
                }
            }
            None => cpus.extend(part.parse::<usize>().ok()),
        }
    }
    cpus
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-2,5"), vec![0, 1, 2, 5]);
        assert_eq!(parse_cpu_list("1"), vec![1]);
        assert_eq!(parse_cpu_list(""), Vec::<usize>::new());
        assert_eq!(parse_cpu_list("x,3"), vec![3]);
    }
}
