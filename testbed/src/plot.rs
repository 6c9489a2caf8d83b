//! PNG figures of the scenarios (plotters' bitmap backend). Text needs a
//! font: plotters' `ab_glyph` renderer with DejaVu Sans from the system
//! (`fonts-dejavu-core`, which `scripts/deps.sh` installs), registered
//! once per process. Without the font the figures are still drawn, with
//! no text, and [`font_available`] says so.

use std::sync::OnceLock;

use plotters::style::FontStyle;

/// Where Debian puts the font.
const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

/// The family name scenarios use in their text styles.
pub const FONT: &str = "sans-serif";

/// Registers the font (once); whether text can be drawn.
pub fn font_available() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        for p in FONT_PATHS {
            if let Ok(bytes) = std::fs::read(p) {
                // plotters keeps the font for the whole process.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font(FONT, FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        tracing::warn!(
            "no DejaVu Sans font found (apt-get install fonts-dejavu-core): figures without text"
        );
        false
    })
}

/// Errors of drawing, as text (plotters' error types are generic over the
/// backend).
pub fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("drawing: {e}")
}
