//! The report: rows of measurements, the latency-budget table, notes, and their markdown.

use std::fmt::Write as _;
use std::time::Duration;

use crate::machine::Machine;
use crate::stats::{fmt_duration, fmt_mib, Summary};

/// What a row is held to; the report says whether it was met, never fails on it.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    None,
    P50Below(Duration),
    P99Below(Duration),
    BytesBelow(u64),
    /// An instruction count below this many.
    CountBelow(u64),
}

/// One measured quantity.
pub struct Row {
    pub group: &'static str,
    pub name: String,
    pub n: String,
    pub p50: String,
    pub p99: String,
    pub target: String,
    pub met: &'static str,
}

impl Row {
    /// A timing: its median and 99th percentile against `target`.
    pub fn timing(
        group: &'static str,
        name: impl Into<String>,
        s: &Summary,
        target: Target,
    ) -> Row {
        let (target_text, met) = match target {
            Target::P50Below(t) => (format!("p50 < {}", fmt_duration(t)), Some(s.p50 < t)),
            Target::P99Below(t) => (format!("p99 < {}", fmt_duration(t)), Some(s.p99 < t)),
            Target::None | Target::BytesBelow(_) | Target::CountBelow(_) => (String::new(), None),
        };
        Row {
            group,
            name: name.into(),
            n: s.n.to_string(),
            p50: fmt_duration(s.p50),
            p99: fmt_duration(s.p99),
            target: target_text,
            met: verdict(met),
        }
    }

    /// A size in bytes (one reading, in the p50 column).
    pub fn bytes(group: &'static str, name: impl Into<String>, bytes: u64, target: Target) -> Row {
        let (target_text, met) = match target {
            Target::BytesBelow(t) => (format!("< {}", fmt_mib(t)), Some(bytes < t)),
            _ => (String::new(), None),
        };
        Row {
            group,
            name: name.into(),
            n: "1".into(),
            p50: fmt_mib(bytes),
            p99: String::new(),
            target: target_text,
            met: verdict(met),
        }
    }

    /// An instruction count (one reading, in the p50 column), in millions.
    pub fn count(group: &'static str, name: impl Into<String>, count: u64, target: Target) -> Row {
        let (target_text, met) = match target {
            Target::CountBelow(t) => (format!("< {}", fmt_count(t)), Some(count < t)),
            _ => (String::new(), None),
        };
        Row {
            group,
            name: name.into(),
            n: "1".into(),
            p50: fmt_count(count),
            p99: String::new(),
            target: target_text,
            met: verdict(met),
        }
    }

    /// A plain count (one reading, in the p50 column); what it is held to is said in its name.
    pub fn count_plain(group: &'static str, name: impl Into<String>, count: u64) -> Row {
        Row {
            group,
            name: name.into(),
            n: "1".into(),
            p50: count.to_string(),
            p99: String::new(),
            target: String::new(),
            met: verdict(None),
        }
    }

    /// A derived figure with no samples of its own (e.g. a difference of two medians).
    pub fn derived(
        group: &'static str,
        name: impl Into<String>,
        p50: Duration,
        target: Target,
    ) -> Row {
        let (target_text, met) = match target {
            Target::P50Below(t) => (format!("p50 < {}", fmt_duration(t)), Some(p50 < t)),
            _ => (String::new(), None),
        };
        Row {
            group,
            name: name.into(),
            n: "–".into(),
            p50: fmt_duration(p50),
            p99: String::new(),
            target: target_text,
            met: verdict(met),
        }
    }
}

/// Instructions in millions (`4.26 M instr`).
fn fmt_count(n: u64) -> String {
    format!("{:.3} M instr", n as f64 / 1e6)
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "yes",
        Some(false) => "**no**",
        None => "",
    }
}

/// One run of the latency-budget experiment.
pub struct TailRow {
    pub model: String,
    pub hedging: String,
    pub asks: usize,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub over_budget: f64,
    pub failed_other: usize,
    pub extra: f64,
    pub hedge_delay: String,
}

#[derive(Default)]
pub struct Report {
    pub rows: Vec<Row>,
    pub tail: Vec<TailRow>,
    /// Sections of their own (a title and markdown), printed after the latency table.
    pub sections: Vec<(String, String)>,
    /// Paragraphs printed after the tables (method notes per benchmark).
    pub notes: Vec<String>,
    /// Benchmarks that could not run, with why.
    pub failures: Vec<String>,
}

/// How the run was made, for the report's header.
pub struct Run<'a> {
    pub command: &'a str,
    pub quick: bool,
    pub binary: &'a str,
    pub elapsed: Duration,
}

impl Report {
    pub fn push(&mut self, row: Row) {
        eprintln!(
            "  {:<58} n={:<6} p50 {:>10}  p99 {:>10}  {} {}",
            row.name, row.n, row.p50, row.p99, row.target, row.met
        );
        self.rows.push(row);
    }

    pub fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }

    pub fn markdown(&self, machine: &Machine, run: &Run<'_>) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "# codetier benchmarks\n");
        let _ = writeln!(
            md,
            "Written by `{}` ({}) in {:.0} s. Regenerate with `scripts/bench` \
             (`cargo run --release -p codetier-bench`); `--quick` is the short CI version.\n",
            run.command,
            if run.quick {
                "quick run: fewer samples, coarser simulation"
            } else {
                "full run"
            },
            run.elapsed.as_secs_f64(),
        );
        let _ = writeln!(md, "| machine | |\n|---|---|");
        let _ = writeln!(md, "| CPU | {} |", machine.cpu);
        let _ = writeln!(md, "| cores | {} |", machine.cores);
        let _ = writeln!(md, "| RAM | {} |", machine.ram);
        let _ = writeln!(md, "| kernel | {} |", machine.kernel);
        let _ = writeln!(md, "| rustc | {} |", machine.rustc);
        let _ = writeln!(md, "| load average at start | {} |", machine.load);
        let _ = writeln!(md, "| date | {} |", machine.date);
        let _ = writeln!(md, "| commit | {} |", machine.commit);
        let _ = writeln!(md, "| server binary | `{}` |\n", run.binary);
        let _ = writeln!(
            md,
            "Timings are wall-clock on a machine that may be busy (see the load average above), \
             so read the medians first: a p99 says as much about the neighbours as about \
             codetier. \"Met\" compares with the target once; nothing fails on timing.\n"
        );
        if !self.failures.is_empty() {
            let _ = writeln!(md, "## Benchmarks that did not run\n");
            for f in &self.failures {
                let _ = writeln!(md, "- {f}");
            }
            md.push('\n');
        }
        // Rows grouped by section, sections in the order they first appear.
        let mut groups: Vec<&str> = Vec::new();
        for row in &self.rows {
            if !groups.contains(&row.group) {
                groups.push(row.group);
            }
        }
        for group in groups {
            let _ = writeln!(
                md,
                "\n## {group}\n\n| benchmark | n | p50 | p99 | target | met |\n|---|---:|---:|---:|---|---|"
            );
            for row in self.rows.iter().filter(|r| r.group == group) {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} | {} |",
                    row.name, row.n, row.p50, row.p99, row.target, row.met
                );
            }
        }
        if !self.tail.is_empty() {
            let _ = writeln!(
                md,
                "\n## Latency budget under a heavy-tailed provider\n\n\
                 End-to-end time of each flash ask through the router, over HTTP to the fake provider, \
                 in simulated (scaled back up) milliseconds. Budget 2500 ms.\n\n\
                 | provider TTFT | hedging | asks | p50 | p90 | p99 | over budget | other errors | extra requests | router's TTFT p90 at end |\n\
                 |---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
            );
            for t in &self.tail {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} | {} | {:.1}% | {} | {:.1}% | {} |",
                    t.model,
                    t.hedging,
                    t.asks,
                    fmt_duration(t.p50),
                    fmt_duration(t.p90),
                    fmt_duration(t.p99),
                    100.0 * t.over_budget,
                    t.failed_other,
                    100.0 * t.extra,
                    t.hedge_delay,
                );
            }
        }
        for (title, body) in &self.sections {
            let _ = writeln!(md, "\n## {title}\n\n{}", body.trim_end());
        }
        if !self.notes.is_empty() {
            let _ = writeln!(md, "\n## How each number was measured\n");
            for n in &self.notes {
                let _ = writeln!(md, "- {n}");
            }
        }
        md
    }
}
