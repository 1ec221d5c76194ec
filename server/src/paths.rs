//! Where codetier keeps its files: the XDG base directories, resolved in one place.

use std::ffi::OsString;
use std::path::PathBuf;

/// The current user's home directory, from `HOME` (or `USERPROFILE` on Windows).
pub fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .or_else(|| std::env::var_os("USERPROFILE"))
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

/// `$XDG_CONFIG_HOME/codetier`, else `~/.config/codetier`.
pub fn config_dir() -> Option<PathBuf> {
    base_dir(std::env::var_os("XDG_CONFIG_HOME"), home_dir(), ".config")
}

/// `$XDG_CACHE_HOME/codetier`, else `~/.cache/codetier`.
pub fn cache_dir() -> Option<PathBuf> {
    base_dir(std::env::var_os("XDG_CACHE_HOME"), home_dir(), ".cache")
}

/// `xdg/codetier` when `xdg` is absolute (the XDG spec says a relative value is invalid and
/// must be ignored), else `home/fallback/codetier`.
fn base_dir(xdg: Option<OsString>, home: Option<PathBuf>, fallback: &str) -> Option<PathBuf> {
    let base = xdg
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| home.filter(|h| h.is_absolute()).map(|h| h.join(fallback)))?;
    Some(base.join("codetier"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_xdg_and_ignores_relative_values() {
        let home = Some(PathBuf::from("/home/u"));
        let dir = |xdg: Option<&str>, home: Option<PathBuf>| {
            base_dir(xdg.map(OsString::from), home, ".config")
        };
        assert_eq!(
            dir(Some("/xdg"), home.clone()),
            Some(PathBuf::from("/xdg/codetier"))
        );
        assert_eq!(
            dir(Some("relative"), home.clone()),
            Some(PathBuf::from("/home/u/.config/codetier"))
        );
        assert_eq!(
            dir(None, home),
            Some(PathBuf::from("/home/u/.config/codetier"))
        );
        assert_eq!(dir(None, None), None);
        assert_eq!(dir(None, Some(PathBuf::from("relative-home"))), None);
    }
}
