//! The machine a report was measured on: CPU, cores, RAM, kernel, rustc, load, date and commit.

use std::process::Command;

pub struct Machine {
    pub cpu: String,
    pub cores: String,
    pub ram: String,
    pub kernel: String,
    pub rustc: String,
    pub load: String,
    pub date: String,
    pub commit: String,
}

impl Machine {
    /// Reads `/proc` and asks `rustc`, `date` and `git`; anything unknown reads "unknown".
    pub fn describe() -> Machine {
        let cpuinfo = read("/proc/cpuinfo");
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_else(unknown);
        let logical = cpuinfo
            .lines()
            .filter(|l| l.starts_with("processor"))
            .count();
        let usable = std::thread::available_parallelism().map_or(0, |n| n.get());
        let cores = format!("{usable} usable ({logical} logical CPUs in /proc/cpuinfo)");
        let ram = read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kib| format!("{:.1} GiB", kib as f64 / (1024.0 * 1024.0)))
            .unwrap_or_else(unknown);
        let kernel = format!(
            "{} {}",
            read("/proc/sys/kernel/ostype").trim(),
            read("/proc/sys/kernel/osrelease").trim()
        );
        let rustc = run(
            &std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()),
            &["--version"],
        );
        let load = read("/proc/loadavg")
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ");
        let date = run("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
        let mut commit = run("git", &["rev-parse", "--short", "HEAD"]);
        if run("git", &["status", "--porcelain", "--untracked-files=no"]) != "unknown" {
            commit.push_str(" (with uncommitted changes)");
        }
        Machine {
            cpu,
            cores,
            ram,
            kernel,
            rustc,
            load,
            date,
            commit,
        }
    }
}

fn unknown() -> String {
    "unknown".to_owned()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// First line of a command's stdout, or "unknown".
fn run(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_owned)
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(unknown)
}
