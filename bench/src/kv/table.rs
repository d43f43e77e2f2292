//! The `kv` table: one row per phase, one column per engine, each peer's figure with bwtree's
//! ratio to it (> 1 means bwtree leads), then the best peer and bwtree's ratio to that peer.

use std::fmt::Write as _;

use super::spec::{EngineReport, Phase, Unit};
use crate::report::Row;

/// The project's own engine: the one every ratio is taken against.
pub const OURS: &str = "bwtree";

/// `ours` over `theirs` when higher is better, `theirs` over `ours` otherwise: > 1 means ours
/// leads either way.
pub fn ratio(unit: Unit, ours: f64, theirs: f64) -> f64 {
    if unit.higher_is_better() {
        ours / theirs
    } else {
        theirs / ours
    }
}

/// A ratio for a table cell: two decimals, and "<0.01x" rather than a misleading "0.00x".
fn ratio_cell(r: f64) -> String {
    if r < 0.01 {
        "<0.01x".into()
    } else {
        format!("{r:.2}x")
    }
}

fn phase<'a>(report: &'a EngineReport, name: &str) -> Option<&'a Phase> {
    report.phases.iter().find(|p| p.name == name)
}

/// The best peer (not bwtree) of one phase: its name and figure.
fn best_peer<'a>(reports: &'a [EngineReport], name: &str) -> Option<(&'a str, &'a Phase)> {
    reports
        .iter()
        .filter(|r| r.engine != OURS)
        .filter_map(|r| Some((r.engine.as_str(), phase(r, name)?)))
        .max_by(|a, b| {
            let better = ratio(a.1.unit, a.1.value, b.1.value);
            better.partial_cmp(&1.0).expect("figures are finite")
        })
}

/// The Markdown table of a `kv` run (phases in the order the first report measured them).
pub fn markdown(reports: &[EngineReport]) -> String {
    let Some(first) = reports.first() else {
        return "no kv results\n".into();
    };
    let engines: Vec<&str> = reports.iter().map(|r| r.engine.as_str()).collect();
    let ours = reports.iter().find(|r| r.engine == OURS);
    let mut out = format!(
        "| phase | durability | {} | best peer | {OURS} vs best |\n|---|---|{}---|---:|\n",
        engines.join(" | "),
        "---:|".repeat(engines.len())
    );
    for p in &first.phases {
        let our = ours.and_then(|r| phase(r, &p.name));
        let _ = write!(out, "| {} | {} |", p.name, p.durability);
        for report in reports {
            let cell = match phase(report, &p.name) {
                None => "-".into(),
                Some(q) => match our {
                    Some(o) if report.engine != OURS => {
                        format!(
                            "{} ({})",
                            q.unit.format(q.value),
                            ratio_cell(ratio(q.unit, o.value, q.value))
                        )
                    }
                    _ => q.unit.format(q.value),
                },
            };
            let _ = write!(out, " {cell} |");
        }
        let (best, vs) = match (best_peer(reports, &p.name), our) {
            (Some((name, b)), Some(o)) => (name, ratio_cell(ratio(b.unit, o.value, b.value))),
            (Some((name, _)), None) => (name, "-".into()),
            (None, _) => ("-", "-".into()),
        };
        let _ = writeln!(out, " {best} | {vs} |");
    }
    out.push_str(&notes(reports));
    out
}

/// What a reader of the table must know about one engine's figures.
fn caveat(engine: &str) -> Option<&'static str> {
    match engine {
        "sled" => Some(
            "durable writes end in sync_file_range, not fdatasync (no drive-cache or metadata \
             flush): not comparable with the others'",
        ),
        "lmdb" => {
            Some("no cache of its own (the budget does not apply); mapped pages count in RSS")
        }
        _ => None,
    }
}

/// Size and memory notes (size over raw bytes, harness share of RSS) and caveats below the table.
fn notes(reports: &[EngineReport]) -> String {
    let mut out = String::new();
    for r in reports {
        let notes: Vec<String> = r
            .phases
            .iter()
            .filter(|p| !p.note.is_empty())
            .map(|p| format!("{}: {}", p.name, p.note))
            .chain(caveat(&r.engine).map(String::from))
            .collect();
        if !notes.is_empty() {
            let _ = writeln!(out, "\n{}: {}", r.engine, notes.join("; "));
        }
    }
    out
}

/// The reports of suite `suite` as flat rows for `results.json`.
pub fn rows(suite: &'static str, reports: &[EngineReport]) -> Vec<Row> {
    let mut rows = Vec::new();
    for r in reports {
        for p in &r.phases {
            rows.push(Row {
                suite,
                case: p.name.clone(),
                engine: r.engine.clone(),
                value: p.value,
                unit: p.unit.name(),
                higher_is_better: p.unit.higher_is_better(),
                extra: format!("durability: {}; {}", p.durability, p.note),
            });
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(engine: &str, reads: f64, bytes: f64) -> EngineReport {
        let phase = |name: &str, value, unit| Phase {
            name: name.into(),
            durability: "-".into(),
            value,
            unit,
            ops: 1,
            secs: 1.0,
            note: String::new(),
        };
        EngineReport {
            engine: engine.into(),
            phases: vec![
                phase("reads", reads, Unit::OpsPerSec),
                phase("size", bytes, Unit::Bytes),
            ],
            harness_rss_bytes: 0,
        }
    }

    #[test]
    fn best_peer_and_ratios_respect_direction() {
        let reports = [
            report("bwtree", 200.0, 100.0),
            report("a", 400.0, 50.0),
            report("b", 100.0, 400.0),
        ];
        let table = markdown(&reports);
        // Reads: a is best (400/s); bwtree does half of it.
        assert!(table.contains("| a | 0.50x |"), "{table}");
        assert!(table.contains("100/s (2.00x)"), "{table}");
        // Size: a is best (smallest); bwtree is twice its size.
        let size_row = table
            .lines()
            .find(|l| l.starts_with("| size"))
            .expect("size row");
        assert!(size_row.ends_with("| a | 0.50x |"), "{size_row}");
    }

    #[test]
    fn without_bwtree_the_best_peer_is_still_named() {
        let table = markdown(&[report("a", 1.0, 1.0), report("b", 2.0, 2.0)]);
        assert!(table.contains("| b | - |"), "{table}");
    }
}
