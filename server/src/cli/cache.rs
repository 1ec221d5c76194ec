//! `codetier cache stats|clear`: the response cache from the shell (no key needed).

use super::setup::{self, Failure};
use super::{emit, exit, CacheAction, Global};
use crate::cache::Cache;

pub fn run(global: &Global, action: CacheAction) -> Result<u8, Failure> {
    let loaded = setup::load(global)?;
    let cache = Cache::open(&loaded.config.cache);
    if let Some(warning) = cache.warning() {
        super::report(&format!("codetier: {warning}"));
    }
    match action {
        CacheAction::Stats => {
            let s = cache.stats();
            // Hits and misses are counted per process, so a fresh `cache stats` has none.
            let hit_rate = match s.hit_rate() {
                Some(rate) => format!(
                    "{:.1}% ({} hits, {} misses)",
                    rate * 100.0,
                    s.hits,
                    s.misses
                ),
                None => "unknown (hits are counted per process; none in this one)".to_owned(),
            };
            let oldest = match s.oldest_unix {
                Some(t) => format!("{} ({})", age(t), t),
                None => "none".to_owned(),
            };
            let path = match &s.path {
                Some(p) if s.disk_active => p.display().to_string(),
                Some(p) => format!("{} (not in use: memory only)", p.display()),
                None => "memory only (no disk cache)".to_owned(),
            };
            emit(&format!(
                "entries:  {}\nbytes:    {} ({})\nhit rate: {hit_rate}\noldest:   {oldest}\npath:     {path}\n",
                s.entries,
                s.bytes,
                human_bytes(s.bytes as f64),
            ));
        }
        CacheAction::Clear => {
            let removed = cache
                .clear()
                .map_err(|e| Failure::usage(format!("codetier: cannot clear the cache: {e}")))?;
            emit(&format!(
                "removed {removed} cached answer{}\n",
                if removed == 1 { "" } else { "s" }
            ));
        }
    }
    Ok(exit::OK)
}

/// "3 days ago" style age of a unix timestamp.
fn age(unix: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(unix);
    let secs = now.saturating_sub(unix);
    match secs {
        0..=59 => format!("{secs} s ago"),
        60..=3599 => format!("{} min ago", secs / 60),
        3600..=86_399 => format!("{} h ago", secs / 3600),
        _ => format!("{} days ago", secs / 86_400),
    }
}

fn human_bytes(n: f64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = n;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{v:.0} {}", UNITS[unit])
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_ages_read_well() {
        assert_eq!(human_bytes(512.0), "512 B");
        assert_eq!(human_bytes(1536.0), "1.5 KiB");
        assert_eq!(human_bytes(3.0 * 1024.0 * 1024.0), "3.0 MiB");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        assert_eq!(age(now.saturating_sub(2 * 86_400)), "2 days ago");
    }
}
