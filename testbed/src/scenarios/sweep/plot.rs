//! `DIR/handoff.png`: every measured handoff against the papers' delay.
//! Two panels, first handoffs (x = 6*Lcs + 3*Lss) and cached ones
//! (x = 4*Lcs + Lss); the line y = x is the papers' figure, so points on
//! or under it meet it.

use std::path::Path;

use plotters::prelude::*;

use super::results::{Kind, Row};
use crate::plot::{FONT, err, font_available};

/// Draws the figure into `path`.
pub fn draw(rows: &[Row], path: &Path) -> anyhow::Result<()> {
    let text = font_available();
    let root = BitMapBackend::new(path, (1200, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let panels = root.split_evenly((1, 2));
    for (area, kind) in panels.iter().zip([Kind::First, Kind::Cached]) {
        let pts: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| r.kind == kind)
            .map(|r| (kind.budget_ms(r.lcs_ms, r.lss_ms), r.handoff_ms))
            .collect();
        let max = pts
            .iter()
            .flat_map(|(x, y)| [*x, *y])
            .fold(1.0_f64, f64::max)
            * 1.1;
        let mut b = ChartBuilder::on(area);
        b.margin(15);
        if text {
            let (title, formula) = match kind {
                Kind::First => ("first handoff (no token cached)", "6*Lcs + 3*Lss"),
                Kind::Cached => ("cached home keygen token", "4*Lcs + Lss"),
            };
            b.caption(format!("{title}: measured vs {formula}"), (FONT, 18))
                .x_label_area_size(40)
                .y_label_area_size(55);
        }
        let mut chart = b.build_cartesian_2d(0.0..max, 0.0..max).map_err(err)?;
        if text {
            chart
                .configure_mesh()
                .x_desc("papers' delay (ms)")
                .y_desc("measured handoff (ms)")
                .label_style((FONT, 13))
                .draw()
                .map_err(err)?;
        }
        let color = match kind {
            Kind::First => RGBColor(0x1f, 0x77, 0xb4),
            Kind::Cached => RGBColor(0xd6, 0x27, 0x28),
        };
        {
            let line = chart
                .draw_series(LineSeries::new(
                    [(0.0, 0.0), (max, max)],
                    BLACK.stroke_width(2),
                ))
                .map_err(err)?;
            if text {
                line.label("papers' delay").legend(|(x, y)| {
                    PathElement::new([(x, y), (x + 16, y)], BLACK.stroke_width(2))
                });
            }
        }
        {
            let points = chart
                .draw_series(pts.iter().map(|p| Circle::new(*p, 4, color.filled())))
                .map_err(err)?;
            if text {
                points
                    .label("measured")
                    .legend(move |(x, y)| Circle::new((x + 8, y), 4, color.filled()));
            }
        }
        if text {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .label_font((FONT, 13))
                .draw()
                .map_err(err)?;
        }
    }
    root.present().map_err(err)?;
    Ok(())
}
