//! A human-readable summary of a lab: namespaces, addresses, links, routes.

use std::fmt::Write;

use super::Lab;
use crate::topology::{LinkDir, LinkKind};

fn fmt_ms(ms: f64) -> String {
    if ms.fract() == 0.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{ms} ms")
    }
}

impl Lab {
    /// What `testbed up` prints: hosts with namespaces and addresses, links
    /// with their emulation and capture, routes.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let t = self.topology();
        let _ = writeln!(
            s,
            "lab {} ({}): {} hosts, {} links; output {}",
            self.prefix(),
            t.lab.name.as_deref().unwrap_or("unnamed"),
            self.hosts().len(),
            self.links().len(),
            self.out_dir().display()
        );
        let _ = writeln!(s, "hosts:");
        let w = self.hosts().iter().map(|h| h.name.len()).max().unwrap_or(0);
        for h in self.hosts() {
            let role = if h.forwarding { "forwarding" } else { "host" };
            let _ = writeln!(s, "  {:w$}  netns {}  ({role})", h.name, h.netns);
            for p in &h.lo {
                let _ = writeln!(s, "  {:w$}    lo {p}", "");
            }
            for l in self.links() {
                if let Some(e) = l.end_of(&h.name) {
                    let addrs: Vec<String> = e.addrs.iter().map(|p| p.to_string()).collect();
                    let _ = writeln!(s, "  {:w$}    {} {}", "", e.ifname, addrs.join(" "));
                }
            }
        }
        let _ = writeln!(s, "links:");
        for (l, tl) in self.links().iter().zip(&t.links) {
            let mut line = format!(
                "  {}  {}:{} <-> {}:{}  {}",
                l.name,
                l.a.host,
                l.a.ifname,
                l.b.host,
                l.b.ifname,
                match l.kind {
                    LinkKind::Veth => "veth",
                    LinkKind::Emulated => "emulated",
                }
            );
            if l.kind == LinkKind::Emulated {
                let (ab, ba) = (tl.direction(LinkDir::AToB), tl.direction(LinkDir::BToA));
                let _ = write!(
                    line,
                    "  delay {} / {}",
                    fmt_ms(ab.delay_ms),
                    fmt_ms(ba.delay_ms)
                );
                if ab.loss > 0.0 || ba.loss > 0.0 {
                    let _ = write!(line, "  loss {} / {}", ab.loss, ba.loss);
                }
                if let (Some(r1), Some(r2)) = (ab.rate_mbit, ba.rate_mbit) {
                    let _ = write!(line, "  rate {r1} / {r2} Mbit/s");
                }
            }
            if let Some(p) = &l.pcap {
                let _ = write!(line, "  pcap {}", p.display());
            }
            let _ = writeln!(s, "{line}");
        }
        if !t.routes.is_empty() {
            let _ = writeln!(s, "routes:");
            for r in &t.routes {
                let dst = if r.dst.is_empty() {
                    "default".to_string()
                } else {
                    r.dst.to_string()
                };
                let mut line = format!("  {}  {dst}", r.host);
                if let Some(v) = r.via {
                    let _ = write!(line, " via {v}");
                }
                if let Some(l) = &r.link {
                    let _ = write!(line, " link {l}");
                }
                let _ = writeln!(s, "{line}");
            }
        }
        s
    }
}
