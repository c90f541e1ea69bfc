//! Parsing the text of Redis's `INFO` replies.

use std::collections::BTreeMap;

/// Parses `INFO` text into field → value.
pub fn parse_info(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.trim().split_once(':'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Parses `INFO commandstats` into command (lowercase) → (calls, usec).
pub fn parse_commandstats(text: &str) -> BTreeMap<String, (u64, u64)> {
    let mut out = BTreeMap::new();
    for (name, fields) in parse_info(text) {
        let Some(name) = name.strip_prefix("cmdstat_") else {
            continue;
        };
        let field = |key: &str| {
            fields
                .split(',')
                .find_map(|f| f.strip_prefix(key)?.strip_prefix('='))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        out.insert(name.to_ascii_lowercase(), (field("calls"), field("usec")));
    }
    out
}

/// Whether a command (as named by `INFO commandstats`, lowercase, subcommands as
/// `name|sub`) is one a measurement sends itself rather than one the store sends:
/// `INFO`, `CONFIG` and `SCRIPT` with any subcommand.
pub fn is_measuring_command(name: &str) -> bool {
    matches!(name.split('|').next(), Some("info" | "config" | "script"))
}

/// Calls per command from `INFO commandstats` text, the measuring commands left out.
pub fn store_calls(text: &str) -> BTreeMap<String, u64> {
    parse_commandstats(text)
        .into_iter()
        .filter(|(name, _)| !is_measuring_command(name))
        .map(|(name, (calls, _))| (name, calls))
        .collect()
}
