//! Resident memory of this process, from `/proc/self/status` (Linux): each engine runs in a
//! child process of its own, so the child's figures are the engine's (plus the harness's keys,
//! reported beside them).

/// The value of one `kB` field of `/proc/self/status`, in bytes; `None` off Linux.
fn status_field_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// Peak resident set size so far (`VmHWM`): anonymous memory plus resident file pages, so a
/// store that maps its file (LMDB) counts the pages it touched.
pub fn peak_bytes() -> Option<u64> {
    status_field_bytes("VmHWM:")
}

/// Current resident set size (`VmRSS`).
pub fn current_bytes() -> Option<u64> {
    status_field_bytes("VmRSS:")
}

#[cfg(test)]
mod tests {
    #[test]
    fn peak_is_at_least_current() {
        // Current first: other tests allocate concurrently, so a later `VmRSS` may pass an
        // earlier `VmHWM`.
        let now = super::current_bytes();
        let (Some(peak), Some(now)) = (super::peak_bytes(), now) else {
            return; // not Linux
        };
        assert!(peak >= now, "VmHWM {peak} < VmRSS {now}");
        assert!(now > 0);
    }
}
