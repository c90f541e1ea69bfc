//! Bounded polling for multi-process topologies.

use std::thread;
use std::time::{Duration, Instant};

use crate::TestkitError;

/// Pause between two checks.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Calls `check` until it returns `Ok`, for at most `timeout`.
///
/// `check` returns `Err(reason)` while the state is not reached yet; the last
/// reason ends up in the [`TestkitError::Timeout`], together with
/// `diagnostics()` (the relevant log tails), when time runs out. `check` runs
/// at least once, even with a zero timeout.
pub(crate) fn wait_until<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<T, String>,
    diagnostics: impl FnOnce() -> String,
) -> Result<T, TestkitError> {
    let started = Instant::now();
    loop {
        let last = match check() {
            Ok(value) => return Ok(value),
            Err(reason) => reason,
        };
        if started.elapsed() >= timeout {
            return Err(TestkitError::Timeout {
                what: what.to_owned(),
                waited: started.elapsed(),
                last,
                log_tail: diagnostics(),
            });
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// The value of `field` in `INFO`-style text (`field:value` lines).
pub(crate) fn info_field<'a>(info: &'a str, field: &str) -> Option<&'a str> {
    info.lines().find_map(|line| line.trim().strip_prefix(field)?.strip_prefix(':'))
}

/// The first line of an error message (the log tail follows on later lines),
/// for the "last state" of a [`wait_until`] check.
pub(crate) fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_owned()
}

/// Time left until `deadline` (zero once it has passed).
pub(crate) fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_out_with_the_last_reason() {
        let mut calls = 0;
        let err = wait_until::<()>(
            "nothing",
            Duration::from_millis(250),
            || {
                calls += 1;
                Err(format!("attempt {calls}"))
            },
            || "LOGS".to_owned(),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("waiting for nothing"), "{text}");
        assert!(text.contains(&format!("attempt {calls}")), "{text}");
        assert!(text.contains("LOGS"), "{text}");
        assert!(calls >= 2);
    }

    #[test]
    fn returns_the_first_success() {
        let mut calls = 0;
        let value = wait_until(
            "three calls",
            Duration::from_secs(10),
            || {
                calls += 1;
                if calls == 3 {
                    Ok(calls)
                } else {
                    Err("not yet".to_owned())
                }
            },
            String::new,
        )
        .unwrap();
        assert_eq!(value, 3);
    }

    #[test]
    fn reads_info_fields() {
        let info = "# Replication\r\nrole:slave\r\nmaster_link_status:up\r\n";
        assert_eq!(info_field(info, "role"), Some("slave"));
        assert_eq!(info_field(info, "master_link_status"), Some("up"));
        assert_eq!(info_field(info, "master_link"), None);
    }
}
