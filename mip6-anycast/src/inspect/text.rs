//! The one-line text form of a packet record (`mip6-inspect` without
//! `--json`), e.g.
//!
//! ```text
//! #4 1700000000.004000000 2001:db8:2::100 > 2001:db8:3::10 HAO(2001:db8:1::100) MH BU seq=1 flags=A lifetime=60s(15u) NI(home=257,coa=514) BAD(8c0e...) checksum=ok auth=ok
//! ```

use std::fmt::{self, Write as _};

use super::record::{
    DestOptRecord, ExtRecord, Ipv6Layer, MhFields, MhOptionValue, MhRecord, PacketRecord,
};

fn flag(out: &mut String, on: bool, c: char) {
    if on {
        out.push(c);
    }
}

fn fields(f: &MhFields) -> String {
    match f {
        MhFields::BindingRefreshRequest {} => String::new(),
        MhFields::HomeTestInit { home_init_cookie } => format!(" cookie={home_init_cookie}"),
        MhFields::CareOfTestInit {
            care_of_init_cookie,
        } => format!(" cookie={care_of_init_cookie}"),
        MhFields::HomeTest {
            home_nonce_index,
            home_init_cookie,
            home_keygen_token,
        } => {
            format!(" index={home_nonce_index} cookie={home_init_cookie} token={home_keygen_token}")
        }
        MhFields::CareOfTest {
            care_of_nonce_index,
            care_of_init_cookie,
            care_of_keygen_token,
        } => format!(
            " index={care_of_nonce_index} cookie={care_of_init_cookie} token={care_of_keygen_token}"
        ),
        MhFields::BindingUpdate {
            sequence,
            flags,
            lifetime_units,
            lifetime_seconds,
        } => {
            let mut f = String::new();
            flag(&mut f, flags.a, 'A');
            flag(&mut f, flags.h, 'H');
            flag(&mut f, flags.l, 'L');
            flag(&mut f, flags.k, 'K');
            if f.is_empty() {
                f.push('-');
            }
            format!(" seq={sequence} flags={f} lifetime={lifetime_seconds}s({lifetime_units}u)")
        }
        MhFields::BindingAck {
            status,
            status_name,
            flags,
            sequence,
            lifetime_units,
            lifetime_seconds,
            ..
        } => format!(
            " status={status}({status_name}) seq={sequence} flags={} lifetime={lifetime_seconds}s({lifetime_units}u)",
            if flags.k { "K" } else { "-" }
        ),
        MhFields::BindingError {
            status,
            status_name,
            home_address,
        } => format!(" status={status}({status_name}) hoa={home_address}"),
    }
}

fn mh(out: &mut String, m: &MhRecord) {
    let _ = write!(out, " MH {}", m.name);
    if m.name == "unknown" {
        let _ = write!(out, "({})", m.mh_type);
    }
    match &m.fields {
        Some(f) => out.push_str(&fields(f)),
        None => out.push_str(" (undecoded)"),
    }
    for o in &m.options {
        let _ = match &o.value {
            MhOptionValue::PadN { .. } => Ok(()),
            MhOptionValue::Raw { data: None } => Ok(()),
            MhOptionValue::BindingRefreshAdvice {
                refresh_interval_seconds,
                ..
            } => write!(out, " BRA({refresh_interval_seconds}s)"),
            MhOptionValue::AlternateCoa { alternate_coa } => write!(out, " ACoA({alternate_coa})"),
            MhOptionValue::NonceIndices {
                home_nonce_index,
                care_of_nonce_index,
            } => write!(
                out,
                " NI(home={home_nonce_index},coa={care_of_nonce_index})"
            ),
            MhOptionValue::BindingAuthData { authenticator } => {
                write!(out, " BAD({authenticator})")
            }
            MhOptionValue::MessageAuth {
                subtype,
                spi,
                auth_data,
            } => write!(out, " AUTH(subtype={subtype},spi={spi},{auth_data})"),
            MhOptionValue::MesgId { timestamp } => write!(out, " MESG-ID({timestamp:#018x})"),
            MhOptionValue::Raw { data: Some(d) } => write!(out, " OPT{}({d})", o.opt_type),
        };
    }
}

fn layer(out: &mut String, l: &Ipv6Layer) {
    let _ = write!(out, "{} > {}", l.src, l.dst);
    for e in &l.ext {
        let _ = match e {
            ExtRecord::HopByHop { .. } => write!(out, " HBH"),
            ExtRecord::Dstopts { options, .. } => {
                let hao = options.iter().find_map(|o| match o {
                    DestOptRecord::Hao { home_address } => Some(home_address),
                    _ => None,
                });
                match hao {
                    Some(a) => write!(out, " HAO({a})"),
                    None => write!(out, " DSTOPTS"),
                }
            }
            ExtRecord::Rh2 { home_address, .. } => write!(out, " RH2({home_address})"),
            ExtRecord::Routing {
                routing_type,
                segments_left,
                ..
            } => write!(out, " RT(type={routing_type},left={segments_left})"),
            ExtRecord::Fragment {
                offset,
                more,
                ident,
            } => write!(out, " FRAG(off={offset},more={more},id={ident:#x})"),
            ExtRecord::Ah { .. } => write!(out, " AH"),
            ExtRecord::Other { proto, .. } => write!(out, " EXT({proto})"),
            ExtRecord::Ip6ip6 { .. } => Ok(()),
        };
    }
    if let Some(i) = &l.inner {
        out.push_str(" IP6IP6[");
        layer(out, i);
        out.push(']');
    } else if let Some(m) = &l.mh {
        mh(out, m);
    } else if let Some(t) = &l.transport {
        let _ = match (t.src_port, t.dst_port, t.icmp_type) {
            (Some(s), Some(d), _) => write!(out, " {} {s} > {d}", t.name.to_uppercase()),
            (_, _, Some(ty)) => write!(out, " ICMPv6 type={ty} code={}", t.icmp_code.unwrap_or(0)),
            _ => write!(out, " {}", t.name.to_uppercase()),
        };
    } else if let Some(p) = l.upper_proto {
        let _ = write!(out, " proto={p}");
    }
}

fn verdict(v: Option<bool>, good: &str, bad: &str) -> String {
    match v {
        Some(true) => good.to_string(),
        Some(false) => bad.to_string(),
        None => "?".to_string(),
    }
}

impl fmt::Display for PacketRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = format!("#{} {} ", self.index, self.timestamp);
        match (&self.ipv6, &self.not_ipv6) {
            (Some(l), _) => layer(&mut out, l),
            (None, Some(what)) => {
                let _ = write!(out, "not IPv6 ({what})");
            }
            (None, None) => out.push_str("no IPv6 header"),
        }
        if let Some(c) = self.checksum_ok {
            let _ = write!(out, " checksum={}", verdict(Some(c), "ok", "BAD"));
        }
        if let Some(a) = self.authenticator_ok {
            let _ = write!(out, " auth={}", verdict(a, "ok", "BAD"));
        }
        if self.truncated {
            let _ = write!(out, " TRUNCATED({}/{})", self.caplen, self.len);
        }
        if let Some(e) = &self.error {
            let _ = write!(out, " MALFORMED: {e}");
        }
        f.write_str(&out)
    }
}
