//! `DIR/bench.png`: TCP throughput per path and stream count, with the
//! ratio to the direct path written over each bar.

use std::path::Path;

use plotters::prelude::*;

use super::report::BenchReport;
use crate::plot::{FONT, err, font_available};

/// The paths in the order they are drawn.
pub const ORDER: &[(&str, &str)] = &[
    ("direct", "direct veth"),
    ("kernel_forward", "kernel forwarding"),
    ("home_agent", "home agent tunnel"),
    ("route_optimized", "route-optimized"),
];

const COLORS: &[RGBColor] = &[
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
];

/// Draws the figure into `path`.
pub fn draw(report: &BenchReport, path: &Path) -> anyhow::Result<()> {
    let text = font_available();
    let max = ORDER
        .iter()
        .flat_map(|(p, _)| report.streams.iter().filter_map(|n| report.gbit_s(p, *n)))
        .fold(0.0_f64, f64::max);
    let root = BitMapBackend::new(path, (1000, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut b = ChartBuilder::on(&root);
    b.margin(20);
    if text {
        b.caption("TCP throughput per path (iperf3, same run)", (FONT, 22))
            .x_label_area_size(40)
            .y_label_area_size(60);
    }
    let n = ORDER.len() as f64;
    let mut chart = b
        .build_cartesian_2d(0.0..n, 0.0..(max * 1.15).max(0.1))
        .map_err(err)?;
    if text {
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(ORDER.len() * 2 + 1)
            .x_label_formatter(&|x| {
                let i = x.floor() as usize;
                if (x - x.floor() - 0.5).abs() < 0.01 && i < ORDER.len() {
                    ORDER[i].1.to_string()
                } else {
                    String::new()
                }
            })
            .y_desc("Gbit/s")
            .label_style((FONT, 14))
            .draw()
            .map_err(err)?;
    }
    let k = report.streams.len().max(1) as f64;
    let w = 0.8 / k;
    for (i, (p, _)) in ORDER.iter().enumerate() {
        for (j, s) in report.streams.iter().enumerate() {
            let Some(g) = report.gbit_s(p, *s) else {
                continue;
            };
            let x0 = i as f64 + 0.1 + j as f64 * w;
            let color = COLORS[j % COLORS.len()];
            let series = chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x0, 0.0), (x0 + w * 0.9, g)],
                    color.filled(),
                )))
                .map_err(err)?;
            if text && i == 0 {
                series
                    .label(format!("{s} stream{}", if *s == 1 { "" } else { "s" }))
                    .legend(move |(x, y)| {
                        Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled())
                    });
            }
            let ratio = report
                .gbit_s("direct", *s)
                .map(|d| format!("{g:.1} ({:.2})", g / d))
                .unwrap_or_else(|| format!("{g:.1}"));
            if text {
                chart
                    .draw_series(std::iter::once(Text::new(
                        ratio,
                        (x0, g + max * 0.03),
                        (FONT, 13),
                    )))
                    .map_err(err)?;
            }
        }
    }
    if text {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font((FONT, 14))
            .draw()
            .map_err(err)?;
    }
    root.present().map_err(err)?;
    Ok(())
}
