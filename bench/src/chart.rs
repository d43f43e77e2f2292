//! The chart of an engine suite (`kv`, `ycsb`) (SVG, plotters): one group of horizontal bars per phase, one bar per engine,
//! each the engine's figure relative to the best engine of that phase (1.0 = best; for sizes and
//! times the smallest is best), so phases with different units share one axis.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::kv::EngineReport;

const PALETTE: [RGBColor; 7] = [
    RGBColor(0xd6, 0x27, 0x28), // bwtree: red
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0x7f, 0x7f, 0x7f),
];

/// Each engine's score per phase of the first report: figure over the best (or best over figure
/// for lower-is-better units), in `0..=1`; `None` where an engine lacks the phase.
fn scores(reports: &[EngineReport]) -> Vec<(String, Vec<Option<f64>>)> {
    let mut out: Vec<(String, Vec<Option<f64>>)> = reports
        .iter()
        .map(|r| (r.engine.clone(), Vec::new()))
        .collect();
    for phase in &reports[0].phases {
        let figures: Vec<Option<f64>> = reports
            .iter()
            .map(|r| {
                r.phases
                    .iter()
                    .find(|p| p.name == phase.name)
                    .map(|p| p.value)
            })
            .collect();
        let present = figures.iter().flatten().copied();
        let best = if phase.unit.higher_is_better() {
            present.fold(0.0, f64::max)
        } else {
            present.fold(f64::MAX, f64::min)
        };
        for (engine, figure) in out.iter_mut().zip(&figures) {
            let score = figure.map(|v| {
                if phase.unit.higher_is_better() {
                    v / best
                } else {
                    best / v
                }
            });
            engine.1.push(score);
        }
    }
    out
}

/// Writes the chart to `path` (SVG).
pub fn write_svg(
    reports: &[EngineReport],
    title: &str,
    path: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    if reports.is_empty() {
        return Ok(());
    }
    let phases: Vec<&str> = reports[0].phases.iter().map(|p| p.name.as_str()).collect();
    let scores = scores(reports);
    let height = 80 + 22 * phases.len() as u32 * (scores.len() as u32 + 1);
    let root = SVGBackend::new(path, (1100, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let n = phases.len() as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(15)
        .margin_left(230)
        .x_label_area_size(30)
        .build_cartesian_2d(0f64..1.05, n..0f64)?;
    chart.configure_mesh().disable_y_mesh().y_labels(0).draw()?;
    let bar = 1.0 / (scores.len() as f64 + 1.0);
    for (j, (engine, values)) in scores.iter().enumerate() {
        let color = PALETTE[j % PALETTE.len()];
        let bars = values.iter().enumerate().filter_map(|(i, v)| {
            let y = i as f64 + bar * (j as f64 + 0.5);
            v.map(|v| Rectangle::new([(0.0, y), (v, y + bar * 0.9)], color.filled()))
        });
        chart
            .draw_series(bars)?
            .label(engine.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;
    let style = ("sans-serif", 14)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Right, VPos::Center));
    for (i, name) in phases.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(0.0, i as f64 + 0.5 - bar / 2.0));
        root.draw(&Text::new(name.to_string(), (x - 8, y), style.clone()))?;
    }
    root.present()?;
    Ok(())
}
