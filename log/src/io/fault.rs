//! Fault injection for [`SimStorage`](super::SimStorage): which call fails, and how.
//!
//! A [`FaultPlan`] is a list of [`FaultRule`]s. Every storage call names its [`Site`] and path;
//! each rule whose site matches and whose path filter matches counts the call, and the first
//! rule whose [`Trigger`] fires decides the [`Fault`]. Probabilistic triggers draw from the
//! plan's own seeded generator, so a (plan, seed, operation sequence) triple always injects the
//! same faults. [`FaultCounts`] tallies injected faults per site, for "cases per site" reports.
//!
//! Why faults live inside the simulator rather than in a `FaultyStorage<S>` wrapper: the
//! consequences that matter are the simulator's to model. After a failed sync the unsynced
//! writes must be partly or wholly dropped (Linux marks the dirty pages clean after a writeback
//! error, so a retried fsync "succeeds" without writing them), and a torn write must land its
//! prefix in the same volatile image the crash logic later resolves. A wrapper cannot reach into
//! another implementation's page cache, and over the real file system it could only fake the
//! error code. One lock, one trace and one seed also keep the schedule deterministic.
//!
//! What each fault does at each site (rules pairing a fault with a site it does not apply to
//! panic at construction):
//! - `Eio`: every site. The call fails with `EIO` and has no effect, except at `SyncData`/
//!   `SyncAll` where the unsynced writes of the file are resolved like a crash (each kept,
//!   dropped or torn) and the volatile image reverts to that result.
//! - `Enospc`: `Create`, `CreateDir`, `Rename`, `Write`, `SetLen`: fails with `ENOSPC`, no effect.
//!   At `SyncData`/`SyncAll`/`SyncDir` (fsync(2) may report `ENOSPC`, e.g. on thin-provisioned
//!   or network storage) it has the same effect as `Eio` there, with the `ENOSPC` code.
//! - `ShortWrite`: `Write` only: writes a random non-empty strict prefix and returns its length
//!   (a 1-byte write is written whole).
//! - `TornWrite`: `Write` only: writes a random strict prefix (maybe empty), then fails `EIO`.
//! - `BitFlip`: `Read` only: the read succeeds but one bit of the returned bytes is flipped
//!   (the stored data is unchanged; a re-read is clean unless the rule fires again).
//!
//! `exists` and `len` are not fault sites: they are lookups in the simulator's memory and the
//! log has no recovery path of its own for them beyond passing the error up.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::Path;

use super::rng::SimRng;

/// A kind of storage call where a fault can be injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Site {
    /// `open_file` of an existing file.
    Open,
    /// `open_file` that creates the file.
    Create,
    /// `create_dir_all` (checked once per call, before any directory is created).
    CreateDir,
    /// `read_dir`.
    ReadDir,
    /// `rename`.
    Rename,
    /// `remove_file`.
    Remove,
    /// `sync_dir`.
    SyncDir,
    /// `read_at`.
    Read,
    /// `write_at`.
    Write,
    /// `set_len`.
    SetLen,
    /// `sync_data`.
    SyncData,
    /// `sync_all`.
    SyncAll,
}

impl Site {
    /// Every site, in declaration order.
    pub const ALL: [Site; 12] = [
        Site::Open,
        Site::Create,
        Site::CreateDir,
        Site::ReadDir,
        Site::Rename,
        Site::Remove,
        Site::SyncDir,
        Site::Read,
        Site::Write,
        Site::SetLen,
        Site::SyncData,
        Site::SyncAll,
    ];
}

/// What an injected fault does (see the module docs for the effect at each site).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    /// Fail with `EIO`.
    Eio,
    /// Fail with `ENOSPC`.
    Enospc,
    /// Write a strict, non-empty prefix and report its length.
    ShortWrite,
    /// Write a strict prefix, then fail with `EIO`.
    TornWrite,
    /// Return read data with one bit flipped.
    BitFlip,
}

impl Fault {
    /// Whether this fault can be injected at `site`.
    pub fn applies_to(self, site: Site) -> bool {
        match self {
            Fault::Eio => true,
            Fault::Enospc => matches!(
                site,
                Site::Create
                    | Site::CreateDir
                    | Site::Rename
                    | Site::Write
                    | Site::SetLen
                    | Site::SyncData
                    | Site::SyncAll
                    | Site::SyncDir
            ),
            Fault::ShortWrite | Fault::TornWrite => site == Site::Write,
            Fault::BitFlip => site == Site::Read,
        }
    }

    /// The error a failing call returns for this fault.
    pub fn error(self) -> io::Error {
        match self {
            Fault::Enospc => io::Error::from_raw_os_error(libc::ENOSPC),
            _ => io::Error::from_raw_os_error(libc::EIO),
        }
    }
}

/// When a rule fires, counted over the calls it matches.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Trigger {
    /// On the `n`th matching call only (1-based).
    Nth(u64),
    /// On the `n`th matching call and every one after it.
    FromNth(u64),
    /// On each matching call independently with probability `p`.
    Probability(f64),
}

/// One injection rule: at `site`, for paths containing `path_contains`, when `trigger` fires,
/// inject `fault`, at most `max_hits` times.
#[derive(Debug, Clone)]
pub struct FaultRule {
    site: Site,
    fault: Fault,
    trigger: Trigger,
    path_contains: Option<String>,
    max_hits: Option<u64>,
    calls: u64,
    hits: u64,
}

impl FaultRule {
    /// A rule injecting `fault` at `site` when `trigger` fires. Panics if `fault` does not apply
    /// to `site`, or on a zero `Nth`/`FromNth` or a probability outside `0.0..=1.0`.
    pub fn new(site: Site, fault: Fault, trigger: Trigger) -> Self {
        assert!(
            fault.applies_to(site),
            "{fault:?} cannot be injected at {site:?}"
        );
        match trigger {
            Trigger::Nth(n) | Trigger::FromNth(n) => assert!(n > 0, "call counts are 1-based"),
            Trigger::Probability(p) => assert!((0.0..=1.0).contains(&p), "probability {p}"),
        }
        Self {
            site,
            fault,
            trigger,
            path_contains: None,
            max_hits: None,
            calls: 0,
            hits: 0,
        }
    }

    /// Fail the `n`th (1-based) call at `site` with `fault`.
    pub fn nth(site: Site, n: u64, fault: Fault) -> Self {
        Self::new(site, fault, Trigger::Nth(n))
    }

    /// Fail each call at `site` with probability `p`.
    pub fn probability(site: Site, p: f64, fault: Fault) -> Self {
        Self::new(site, fault, Trigger::Probability(p))
    }

    /// Only match calls whose path contains `needle` (as a string).
    pub fn path_contains(mut self, needle: impl Into<String>) -> Self {
        self.path_contains = Some(needle.into());
        self
    }

    /// Stop injecting after `n` faults.
    pub fn max_hits(mut self, n: u64) -> Self {
        self.max_hits = Some(n);
        self
    }

    fn matches(&self, site: Site, path: &Path) -> bool {
        site == self.site
            && self
                .path_contains
                .as_deref()
                .is_none_or(|needle| path.to_string_lossy().contains(needle))
    }

    /// Counts one matching call and says whether the rule fires on it.
    fn fires(&mut self, rng: &mut SimRng) -> bool {
        self.calls += 1;
        if self.max_hits.is_some_and(|max| self.hits >= max) {
            return false;
        }
        let fire = match self.trigger {
            Trigger::Nth(n) => self.calls == n,
            Trigger::FromNth(n) => self.calls >= n,
            Trigger::Probability(p) => rng.chance(p),
        };
        self.hits += u64::from(fire);
        fire
    }
}

/// A seeded set of rules, evaluated in order on every storage call.
#[derive(Debug, Clone)]
pub struct FaultPlan {
    rules: Vec<FaultRule>,
    rng: SimRng,
}

impl FaultPlan {
    /// An empty plan whose probabilistic rules draw from a generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            rules: Vec::new(),
            rng: SimRng::new(seed),
        }
    }

    /// Adds a rule (earlier rules win when several fire on one call).
    pub fn rule(mut self, rule: FaultRule) -> Self {
        self.rules.push(rule);
        self
    }

    /// A plan that injects, at every site, each fault applicable there with probability `p`
    /// (so a call fails with probability about `p` times the number of fault kinds).
    pub fn random(seed: u64, p: f64) -> Self {
        let kinds = [
            Fault::Eio,
            Fault::Enospc,
            Fault::ShortWrite,
            Fault::TornWrite,
            Fault::BitFlip,
        ];
        let mut plan = Self::new(seed);
        for site in Site::ALL {
            for fault in kinds.into_iter().filter(|f| f.applies_to(site)) {
                plan = plan.rule(FaultRule::probability(site, p, fault));
            }
        }
        plan
    }

    /// Decides whether the call at `site` on `path` fails, and how. Every matching rule counts
    /// the call, so `Nth` rules are independent of each other.
    pub fn decide(&mut self, site: Site, path: &Path) -> Option<Fault> {
        let mut chosen = None;
        for rule in &mut self.rules {
            if rule.matches(site, path) && rule.fires(&mut self.rng) && chosen.is_none() {
                chosen = Some(rule.fault);
            }
        }
        chosen
    }

    /// The plan's generator, for drawing the details of an injected fault (prefix lengths,
    /// which bit to flip) in the same deterministic sequence.
    pub fn rng(&mut self) -> &mut SimRng {
        &mut self.rng
    }
}

/// Number of injected faults per site.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultCounts {
    by_site: BTreeMap<Site, u64>,
}

impl FaultCounts {
    /// Counts one injected fault at `site`.
    pub fn record(&mut self, site: Site) {
        *self.by_site.entry(site).or_default() += 1;
    }

    /// Faults injected at `site`.
    pub fn at(&self, site: Site) -> u64 {
        self.by_site.get(&site).copied().unwrap_or(0)
    }

    /// Faults injected at all sites.
    pub fn total(&self) -> u64 {
        self.by_site.values().sum()
    }

    /// Adds another tally into this one (to sum over the runs of a randomized test).
    pub fn merge(&mut self, other: &FaultCounts) {
        for (site, n) in &other.by_site {
            *self.by_site.entry(*site).or_default() += n;
        }
    }
}

impl fmt::Display for FaultCounts {
    /// One `site=count` pair per site, all sites listed (zeroes included) so gaps show.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, site) in Site::ALL.iter().enumerate() {
            let sep = if i == 0 { "" } else { " " };
            write!(f, "{sep}{site:?}={}", self.at(*site))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nth_rule_fires_once_on_the_nth_matching_call() {
        let mut plan =
            FaultPlan::new(0).rule(FaultRule::nth(Site::Write, 3, Fault::Eio).path_contains("seg"));
        let seg = Path::new("/db/seg");
        let other = Path::new("/db/other");
        assert_eq!(plan.decide(Site::Write, seg), None);
        assert_eq!(
            plan.decide(Site::Write, other),
            None,
            "other paths are not counted"
        );
        assert_eq!(
            plan.decide(Site::Read, seg),
            None,
            "other sites are not counted"
        );
        assert_eq!(plan.decide(Site::Write, seg), None);
        assert_eq!(plan.decide(Site::Write, seg), Some(Fault::Eio));
        assert_eq!(plan.decide(Site::Write, seg), None);
    }

    #[test]
    fn from_nth_with_max_hits() {
        let mut plan = FaultPlan::new(0)
            .rule(FaultRule::new(Site::SyncData, Fault::Eio, Trigger::FromNth(2)).max_hits(2));
        let f = Path::new("f");
        let got: Vec<_> = (0..5)
            .map(|_| plan.decide(Site::SyncData, f).is_some())
            .collect();
        assert_eq!(got, [false, true, true, false, false]);
    }

    #[test]
    fn probability_is_seeded() {
        let run = |seed| {
            let mut plan = FaultPlan::random(seed, 0.1);
            (0..200)
                .map(|i| plan.decide(Site::ALL[i % 12], Path::new("x")))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(5), run(5));
        assert!(run(5).iter().any(Option::is_some));
    }

    #[test]
    #[should_panic(expected = "cannot be injected")]
    fn mismatched_fault_and_site_panics() {
        let _ = FaultRule::nth(Site::Read, 1, Fault::ShortWrite);
    }

    #[test]
    fn counts_display_lists_every_site() {
        let mut c = FaultCounts::default();
        c.record(Site::Write);
        c.record(Site::Write);
        assert_eq!(c.at(Site::Write), 2);
        assert_eq!(c.total(), 2);
        let text = c.to_string();
        assert!(
            text.contains("Write=2") && text.contains("SyncDir=0"),
            "{text}"
        );
    }
}
