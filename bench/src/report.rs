//! Results: one [`Row`] per measured figure, rendered as a Markdown table (each engine's figure
//! and its ratio to ours, measured in the same run) and saved as JSON.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

/// One measured figure.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub suite: &'static str,
    pub case: String,
    pub engine: String,
    pub value: f64,
    pub unit: &'static str,
    pub higher_is_better: bool,
    /// A secondary figure shown beside the value (e.g. memory per id).
    pub extra: String,
}

fn human(value: f64) -> String {
    match value {
        v if v >= 1e9 => format!("{:.2}G", v / 1e9),
        v if v >= 1e6 => format!("{:.2}M", v / 1e6),
        v if v >= 1e3 => format!("{:.1}k", v / 1e3),
        v => format!("{v:.2}"),
    }
}

/// A Markdown table: for each case, every engine with its figure and the ratio of ours to it
/// (`ours / theirs` when higher is better, `theirs / ours` otherwise: > 1 means we lead).
/// `ours` names the project's engines (one per suite).
pub fn markdown(rows: &[Row], ours: &[&str]) -> String {
    let mut out = String::from("| suite | case | engine | result | ours vs. this | note |\n");
    out.push_str("|---|---|---|---:|---:|---|\n");
    for row in rows {
        let our_value = rows
            .iter()
            .find(|r| r.suite == row.suite && r.case == row.case && ours.contains(&&*r.engine))
            .map(|r| r.value);
        let ratio = match our_value {
            Some(our_value) if !ours.contains(&&*row.engine) => {
                let r = if row.higher_is_better {
                    our_value / row.value
                } else {
                    row.value / our_value
                };
                format!("{r:.2}x")
            }
            _ => "-".to_string(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} {} | {} | {} |",
            row.suite,
            row.case,
            row.engine,
            human(row.value),
            row.unit,
            ratio,
            row.extra
        );
    }
    out
}

/// Writes the rows as JSON to `dir/results.json`, creating `dir`.
pub fn save_json(rows: &[Row], dir: &Path) -> std::io::Result<std::path::PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("results.json");
    let json = serde_json::to_string_pretty(rows).map_err(std::io::Error::other)?;
    std::fs::write(&path, json)?;
    Ok(path)
}
