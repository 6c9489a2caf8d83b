//! The rows of `failover.csv` and the summary of a contact-failover drill.

use std::path::Path;

use anyhow::Context as _;
use serde::Serialize;

/// How the contact node fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// SIGKILL: the process and its sockets are gone.
    Kill,
    /// SIGSTOP for the rest of the rep (SIGCONT before teardown): the
    /// kernel keeps the sockets, the daemon answers nothing.
    Freeze,
    /// The contact node's link goes down (both directions).
    Linkdown,
}

impl Fault {
    /// The name in the CSV.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::Kill => "kill",
            Fault::Freeze => "freeze",
            Fault::Linkdown => "linkdown",
        }
    }
}

/// One repetition.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Repetition (0-based, per fault kind).
    pub rep: u32,
    /// The fault.
    pub fault: Fault,
    /// Fault to the new contact node's detection (its `ContactLost`).
    pub detect_ms: f64,
    /// Fault to the home agent's acceptance of the new contact's
    /// registration (the BA reaching the new contact).
    pub registered_ms: f64,
    /// Fault to the first new client connection to X that echoed data.
    pub recover_ms: f64,
    /// Connections of a client that had been handed to another member.
    pub conns_at_members: u32,
    /// Of those, alive with every byte right after the drill.
    pub conns_at_members_survived: u32,
    /// Connections of a client served by the contact node itself.
    pub conns_at_contact: u32,
    /// Of those, alive with every byte right after the drill.
    pub conns_at_contact_survived: u32,
    /// The member that took X over (not in the CSV).
    #[serde(skip)]
    pub new_contact: String,
    /// Fault to the first new connection from C2, the client that was
    /// route-optimized to the dead contact node (not in the CSV).
    pub bound_client_recover_ms: f64,
}

impl Row {
    /// Whether the rep recovered with every member-held connection alive.
    #[must_use]
    pub fn ok(&self) -> bool {
        self.recover_ms.is_finite()
            && self.bound_client_recover_ms.is_finite()
            && self.conns_at_members_survived == self.conns_at_members
    }
}

const HEADER: &str = "rep,fault,detect_ms,registered_ms,recover_ms,conns_at_members,conns_at_members_survived,conns_at_contact,conns_at_contact_survived";

fn ms(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.1}")
    } else {
        String::new()
    }
}

/// Writes the CSV (an empty cell where a time was not measured).
pub fn write_csv(path: &Path, rows: &[Row]) -> anyhow::Result<()> {
    let mut s = String::from(HEADER);
    s.push('\n');
    for r in rows {
        s.push_str(&format!(
            "{},{},{},{},{},{},{},{},{}\n",
            r.rep,
            r.fault.as_str(),
            ms(r.detect_ms),
            ms(r.registered_ms),
            ms(r.recover_ms),
            r.conns_at_members,
            r.conns_at_members_survived,
            r.conns_at_contact,
            r.conns_at_contact_survived
        ));
    }
    std::fs::write(path, s).with_context(|| format!("writing {}", path.display()))
}

/// Median and maximum of the finite values.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Spread {
    /// Values counted.
    pub n: usize,
    /// Median.
    pub median: Option<f64>,
    /// Worst case.
    pub max: Option<f64>,
}

impl Spread {
    fn of(values: impl Iterator<Item = f64>) -> Self {
        let mut v: Vec<f64> = values.filter(|x| x.is_finite()).collect();
        v.sort_by(f64::total_cmp);
        let median = match v.len() {
            0 => None,
            n if n % 2 == 1 => Some(v[n / 2]),
            n => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
        };
        Spread {
            n: v.len(),
            median,
            max: v.last().copied(),
        }
    }
}

/// Per fault kind.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FaultSummary {
    /// Repetitions.
    pub reps: usize,
    /// Repetitions that recovered with every member-held connection.
    pub recovered: usize,
    /// Fault to detection.
    pub detect_ms: Spread,
    /// Fault to registration.
    pub registered_ms: Spread,
    /// Fault to a new connection.
    pub recover_ms: Spread,
    /// Fault to a new connection from the client bound to the dead
    /// contact node.
    pub bound_client_recover_ms: Spread,
    /// Member-held connections and how many survived, over all reps.
    pub conns_at_members: (u32, u32),
    /// Contact-held connections and how many survived.
    pub conns_at_contact: (u32, u32),
    /// Which member took over, how often.
    pub new_contacts: std::collections::BTreeMap<String, usize>,
}

/// The drill's `summary.json`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Heartbeat interval and silence before takeover (ms) of the lab.
    pub heartbeat_ms: u64,
    /// See `heartbeat_ms`.
    pub dead_after_ms: u64,
    /// Per fault kind.
    pub faults: std::collections::BTreeMap<&'static str, FaultSummary>,
    /// Every rep recovered, member-held connections all survived, and the
    /// median `recover_ms` is under 1000 for every fault.
    pub passed: bool,
    /// What went wrong.
    pub errors: Vec<String>,
}

/// Summarizes the rows.
#[must_use]
pub fn summarize(rows: &[Row], heartbeat_ms: u64, dead_after_ms: u64) -> Summary {
    let mut s = Summary {
        heartbeat_ms,
        dead_after_ms,
        passed: !rows.is_empty(),
        ..Summary::default()
    };
    for f in [Fault::Kill, Fault::Freeze, Fault::Linkdown] {
        let rs: Vec<&Row> = rows.iter().filter(|r| r.fault == f).collect();
        if rs.is_empty() {
            continue;
        }
        let mut fs = FaultSummary {
            reps: rs.len(),
            recovered: rs.iter().filter(|r| r.ok()).count(),
            detect_ms: Spread::of(rs.iter().map(|r| r.detect_ms)),
            registered_ms: Spread::of(rs.iter().map(|r| r.registered_ms)),
            recover_ms: Spread::of(rs.iter().map(|r| r.recover_ms)),
            bound_client_recover_ms: Spread::of(rs.iter().map(|r| r.bound_client_recover_ms)),
            ..FaultSummary::default()
        };
        for r in &rs {
            fs.conns_at_members.0 += r.conns_at_members;
            fs.conns_at_members.1 += r.conns_at_members_survived;
            fs.conns_at_contact.0 += r.conns_at_contact;
            fs.conns_at_contact.1 += r.conns_at_contact_survived;
            *fs.new_contacts.entry(r.new_contact.clone()).or_default() += 1;
        }
        s.passed &= fs.recovered == fs.reps && fs.recover_ms.median.is_some_and(|m| m < 1000.0);
        s.faults.insert(f.as_str(), fs);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(fault: Fault, recover: f64, members: (u32, u32)) -> Row {
        Row {
            rep: 0,
            fault,
            detect_ms: 160.0,
            registered_ms: 170.0,
            recover_ms: recover,
            conns_at_members: members.0,
            conns_at_members_survived: members.1,
            conns_at_contact: 2,
            conns_at_contact_survived: 0,
            new_contact: "A".into(),
            bound_client_recover_ms: recover,
        }
    }

    #[test]
    fn summary_fails_on_a_lost_member_connection_or_a_slow_median() {
        let good = [
            row(Fault::Kill, 200.0, (2, 2)),
            row(Fault::Kill, 300.0, (2, 2)),
        ];
        assert!(summarize(&good, 50, 150).passed);
        let lost = [row(Fault::Kill, 200.0, (2, 1))];
        assert!(!summarize(&lost, 50, 150).passed);
        let slow = [row(Fault::Freeze, 1500.0, (2, 2))];
        assert!(!summarize(&slow, 50, 150).passed);
        let never = [row(Fault::Linkdown, f64::NAN, (2, 2))];
        assert!(!summarize(&never, 50, 150).passed);
        assert!(!summarize(&[], 50, 150).passed);
    }

    #[test]
    fn csv_has_the_issue_columns() {
        let dir = std::env::temp_dir().join(format!("drill-csv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("failover.csv");
        write_csv(&p, &[row(Fault::Freeze, f64::NAN, (2, 2))]).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some(HEADER));
        assert_eq!(lines.next(), Some("0,freeze,160.0,170.0,,2,2,2,0"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
