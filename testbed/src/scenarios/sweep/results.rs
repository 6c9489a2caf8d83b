//! The rows of `testbed sweep handoff` (`DIR/handoff.csv`) and their
//! summary (`DIR/summary.json`): medians per cell (Lcs, Lss) and kind,
//! checked against the papers' delays, 6*Lcs + 3*Lss for a first handoff
//! and 4*Lcs + Lss for one with a cached home keygen token (seed 004,
//! section 4.3; DESIGN.md 5).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde::Serialize;

use crate::scenarios::probe::median;

/// Which handoff a row measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// No token cached: home and care-of tests both run.
    First,
    /// The home keygen token is reused; only the care-of test runs.
    Cached,
}

impl Kind {
    /// The CSV/JSON spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::First => "first",
            Kind::Cached => "cached",
        }
    }

    /// The papers' delay for this kind (ms).
    pub fn budget_ms(self, lcs: f64, lss: f64) -> f64 {
        match self {
            Kind::First => 6.0 * lcs + 3.0 * lss,
            Kind::Cached => 4.0 * lcs + lss,
        }
    }
}

/// One handoff.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// One-way latency client - contact node (ms).
    pub lcs_ms: f64,
    /// One-way latency contact node - acceptor (ms).
    pub lss_ms: f64,
    /// Repetition in the cell.
    pub rep: u32,
    /// First or cached.
    pub kind: Kind,
    /// From the handoff decision to the first client packet that reaches
    /// the acceptor route-optimized (ms).
    pub handoff_ms: f64,
    /// Longest gap in the bytes the client application received around
    /// the handoff (ms).
    pub stall_ms: f64,
    /// TCP retransmissions of the client's connection during the handoff.
    pub retransmits: u64,
    /// Connections reset.
    pub resets: u64,
    /// Every byte checked in both directions, none missing or wrong.
    pub bytes_verified: bool,
}

/// The CSV header (the output contract).
pub const CSV_HEADER: &str =
    "lcs_ms,lss_ms,rep,kind,handoff_ms,stall_ms,retransmits,resets,bytes_verified";

impl Row {
    /// The row as a CSV line (no newline).
    pub fn csv(&self) -> String {
        format!(
            "{},{},{},{},{:.3},{:.3},{},{},{}",
            self.lcs_ms,
            self.lss_ms,
            self.rep,
            self.kind.as_str(),
            self.handoff_ms,
            self.stall_ms,
            self.retransmits,
            self.resets,
            self.bytes_verified
        )
    }

    /// RTT between client and contact node (ms).
    pub fn rtt_ms(&self) -> f64 {
        2.0 * self.lcs_ms
    }

    /// The stall stays below the handoff plus two round trips: no
    /// retransmission timeout (the first one is 1 s or more).
    pub fn stall_ok(&self) -> bool {
        self.stall_ms < self.handoff_ms + 2.0 * self.rtt_ms()
    }
}

/// Writes `rows` to `path` as CSV.
pub fn write_csv(path: &Path, rows: &[Row]) -> std::io::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(f, "{CSV_HEADER}")?;
    for r in rows {
        writeln!(f, "{}", r.csv())?;
    }
    f.flush()
}

/// One cell and kind of the summary.
#[derive(Debug, Clone, Serialize)]
pub struct CellSummary {
    /// Lcs (ms).
    pub lcs_ms: f64,
    /// Lss (ms).
    pub lss_ms: f64,
    /// First or cached.
    pub kind: Kind,
    /// Handoffs measured.
    pub n: usize,
    /// Median handoff delay (ms).
    pub median_handoff_ms: Option<f64>,
    /// Median stall (ms).
    pub median_stall_ms: Option<f64>,
    /// Longest stall (ms).
    pub max_stall_ms: Option<f64>,
    /// The papers' delay (ms).
    pub budget_ms: f64,
    /// Median within the budget.
    pub within_budget: bool,
    /// Every row: resets 0, bytes verified, no stall beyond handoff + 2 RTT.
    pub rows_ok: bool,
}

/// `summary.json`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Per cell and kind, in (Lcs, Lss, kind) order.
    pub cells: Vec<CellSummary>,
    /// Rows in all.
    pub rows: usize,
    /// Every cell within budget and every row ok.
    pub passed: bool,
    /// What went wrong outside the rows (lab, daemons).
    pub errors: Vec<String>,
}

/// Groups `rows` by cell and kind and takes medians.
pub fn summarize(rows: &[Row]) -> Summary {
    let mut cells: BTreeMap<(u64, u64, Kind), Vec<&Row>> = BTreeMap::new();
    for r in rows {
        cells
            .entry((r.lcs_ms.to_bits(), r.lss_ms.to_bits(), r.kind))
            .or_default()
            .push(r);
    }
    let mut out: Vec<CellSummary> = cells
        .into_values()
        .filter_map(|rs| {
            let first = rs.first()?;
            let (lcs, lss, kind) = (first.lcs_ms, first.lss_ms, first.kind);
            let h: Vec<f64> = rs.iter().map(|r| r.handoff_ms).collect();
            let s: Vec<f64> = rs.iter().map(|r| r.stall_ms).collect();
            let med = median(&h);
            let budget = kind.budget_ms(lcs, lss);
            Some(CellSummary {
                lcs_ms: lcs,
                lss_ms: lss,
                kind,
                n: rs.len(),
                median_handoff_ms: med,
                median_stall_ms: median(&s),
                max_stall_ms: s.iter().copied().reduce(f64::max),
                budget_ms: budget,
                within_budget: med.is_some_and(|m| m <= budget),
                rows_ok: rs
                    .iter()
                    .all(|r| r.resets == 0 && r.bytes_verified && r.stall_ok()),
            })
        })
        .collect();
    out.sort_by(|a, b| {
        (a.lcs_ms, a.lss_ms)
            .partial_cmp(&(b.lcs_ms, b.lss_ms))
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.kind.cmp(&b.kind))
    });
    let passed = !out.is_empty() && out.iter().all(|c| c.within_budget && c.rows_ok);
    Summary {
        rows: rows.len(),
        cells: out,
        passed,
        errors: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(lcs: f64, lss: f64, kind: Kind, h: f64, stall: f64) -> Row {
        Row {
            lcs_ms: lcs,
            lss_ms: lss,
            rep: 0,
            kind,
            handoff_ms: h,
            stall_ms: stall,
            retransmits: 0,
            resets: 0,
            bytes_verified: true,
        }
    }

    #[test]
    fn budgets_are_the_papers_formulas() {
        assert_eq!(Kind::First.budget_ms(10.0, 5.0), 75.0);
        assert_eq!(Kind::Cached.budget_ms(10.0, 5.0), 45.0);
    }

    #[test]
    fn csv_line_follows_the_header() {
        let r = row(10.0, 5.0, Kind::Cached, 41.25, 60.5);
        assert_eq!(r.csv(), "10,5,0,cached,41.250,60.500,0,0,true");
        assert_eq!(CSV_HEADER.split(',').count(), r.csv().split(',').count());
    }

    #[test]
    fn summary_takes_medians_per_cell_and_kind_and_judges_them() {
        let rows = vec![
            row(10.0, 5.0, Kind::First, 70.0, 80.0),
            row(10.0, 5.0, Kind::First, 74.0, 80.0),
            row(10.0, 5.0, Kind::First, 90.0, 100.0),
            row(10.0, 5.0, Kind::Cached, 40.0, 50.0),
            row(1.0, 1.0, Kind::Cached, 6.0, 5.0),
        ];
        let s = summarize(&rows);
        assert_eq!(s.rows, 5);
        assert_eq!(s.cells.len(), 3);
        let c = &s.cells[0];
        assert_eq!((c.lcs_ms, c.kind), (1.0, Kind::Cached));
        // 6 > 4*1 + 1: over budget.
        assert!(!c.within_budget);
        assert!(!s.passed);
        let f = s
            .cells
            .iter()
            .find(|c| c.lcs_ms == 10.0 && c.kind == Kind::First)
            .unwrap();
        assert_eq!(f.median_handoff_ms, Some(74.0));
        assert!(f.within_budget);
        assert_eq!(f.max_stall_ms, Some(100.0));
        // A stall of 100 ms > 90 + 2*20 fails the row check.
        assert!(f.rows_ok);
        let mut bad = rows.clone();
        bad[0].stall_ms = 1000.0;
        assert!(!summarize(&bad).cells.iter().all(|c| c.rows_ok));
        bad[0].stall_ms = 80.0;
        bad[0].resets = 1;
        assert!(!summarize(&bad).passed);
    }
}
