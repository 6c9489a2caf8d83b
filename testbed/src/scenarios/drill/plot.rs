//! `DIR/failover.png`: the distribution of the drill's times per fault
//! kind: every rep's detection, registration and recovery time as a point
//! (jittered sideways), the medians as bars, and the 1000 ms goal.

use std::path::Path;

use plotters::prelude::*;

use super::results::{Fault, Row};
use crate::plot::{FONT, err, font_available};

/// A metric: its name, colour, sideways offset and value.
type Series = (&'static str, RGBColor, f64, fn(&Row) -> f64);

const FAULTS: [Fault; 3] = [Fault::Kill, Fault::Freeze, Fault::Linkdown];

fn median(mut v: Vec<f64>) -> Option<f64> {
    v.retain(|x| x.is_finite());
    v.sort_by(f64::total_cmp);
    let n = v.len();
    (n > 0).then(|| {
        if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        }
    })
}

/// Draws the figure into `path`.
pub fn draw(rows: &[Row], path: &Path) -> anyhow::Result<()> {
    let text = font_available();
    let root = BitMapBackend::new(path, (1000, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let max = rows
        .iter()
        .flat_map(|r| [r.detect_ms, r.registered_ms, r.recover_ms])
        .filter(|x| x.is_finite())
        .fold(1000.0_f64, f64::max)
        * 1.1;
    let mut b = ChartBuilder::on(&root);
    b.margin(15);
    if text {
        b.caption(
            "contact-node failover: time from the fault (ms)",
            (FONT, 18),
        )
        .x_label_area_size(40)
        .y_label_area_size(55);
    }
    let mut chart = b.build_cartesian_2d(-0.5..2.5, 0.0..max).map_err(err)?;
    if text {
        chart
            .configure_mesh()
            .x_labels(3)
            .x_label_formatter(&|x: &f64| {
                let i = x.round();
                if (*x - i).abs() < 0.01 && (0.0..3.0).contains(&i) {
                    FAULTS[i as usize].as_str().to_string()
                } else {
                    String::new()
                }
            })
            .y_desc("ms after the fault")
            .label_style((FONT, 13))
            .draw()
            .map_err(err)?;
    }
    let series: [Series; 3] = [
        ("detected", RGBColor(0x2c, 0xa0, 0x2c), -0.25, |r| {
            r.detect_ms
        }),
        ("registered", RGBColor(0x1f, 0x77, 0xb4), 0.0, |r| {
            r.registered_ms
        }),
        ("new connection", RGBColor(0xd6, 0x27, 0x28), 0.25, |r| {
            r.recover_ms
        }),
    ];
    for (name, color, off, f) in series {
        let mut pts = Vec::new();
        let mut bars = Vec::new();
        for (i, fault) in FAULTS.iter().enumerate() {
            let vals: Vec<f64> = rows.iter().filter(|r| r.fault == *fault).map(f).collect();
            let n = vals.len().max(1) as f64;
            for (j, v) in vals.iter().enumerate() {
                if v.is_finite() {
                    let jitter = (j as f64 / n - 0.5) * 0.12;
                    pts.push((i as f64 + off + jitter, *v));
                }
            }
            if let Some(m) = median(vals) {
                let x = i as f64 + off;
                bars.push([(x - 0.1, m), (x + 0.1, m)]);
            }
        }
        let s = chart
            .draw_series(pts.iter().map(|p| Circle::new(*p, 3, color.filled())))
            .map_err(err)?;
        if text {
            s.label(name)
                .legend(move |(x, y)| Circle::new((x + 8, y), 4, color.filled()));
        }
        chart
            .draw_series(
                bars.into_iter()
                    .map(|b| PathElement::new(b.to_vec(), color.stroke_width(3))),
            )
            .map_err(err)?;
    }
    let goal = chart
        .draw_series(LineSeries::new(
            [(-0.5, 1000.0), (2.5, 1000.0)],
            BLACK.stroke_width(1),
        ))
        .map_err(err)?;
    if text {
        goal.label("goal: median new connection < 1000 ms")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLACK.stroke_width(1)));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font((FONT, 13))
            .draw()
            .map_err(err)?;
    }
    root.present().map_err(err)?;
    Ok(())
}
