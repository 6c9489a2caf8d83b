use std::net::Ipv6Addr;

use super::*;

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn bu() -> MhRepr {
    MhRepr::new(MhMessage::BindingUpdate(BindingUpdateRepr {
        sequence: 0x1234,
        flags: BuFlags::ACK | BuFlags::HOME,
        lifetime: 1000,
    }))
}

#[test]
fn bu_without_options_is_16_octets() {
    let v = bu().to_bytes(&a("2001:db8::1"), &a("2001:db8::2")).unwrap();
    assert_eq!(v.len(), 16);
    assert_eq!(&v[..4], &[59, 1, 5, 0]);
    assert_eq!(&v[6..16], &[0x12, 0x34, 0xc0, 0, 0x03, 0xe8, 1, 2, 0, 0]);
    let h = MobilityHeader::new_checked(&v[..]).unwrap();
    assert!(h.verify_checksum(&a("2001:db8::1"), &a("2001:db8::2")));
    assert!(!h.verify_checksum(&a("2001:db8::3"), &a("2001:db8::2")));
    let r = MhRepr::parse(&h).unwrap();
    assert_eq!(r, bu());
    let MhMessage::BindingUpdate(b) = r.message else {
        panic!("not a BU")
    };
    assert_eq!(b.lifetime_duration(), std::time::Duration::from_secs(4000));
    assert!(b.flags.ack() && b.flags.home_registration() && !b.flags.key_mgmt_mobility());
}

#[test]
fn every_message_type_round_trips() {
    let msgs = [
        MhMessage::BindingRefreshRequest,
        MhMessage::HomeTestInit(HomeTestInitRepr {
            home_init_cookie: [1; 8],
        }),
        MhMessage::CareOfTestInit(CareOfTestInitRepr {
            care_of_init_cookie: [2; 8],
        }),
        MhMessage::HomeTest(HomeTestRepr {
            home_nonce_index: 7,
            home_init_cookie: [3; 8],
            home_keygen_token: [4; 8],
        }),
        MhMessage::CareOfTest(CareOfTestRepr {
            care_of_nonce_index: 8,
            care_of_init_cookie: [5; 8],
            care_of_keygen_token: [6; 8],
        }),
        bu().message,
        MhMessage::BindingAck(BindingAckRepr {
            status: BaStatus::ExpiredNonces,
            flags: BaFlags::KEY_MGMT,
            sequence: 9,
            lifetime: 10,
        }),
        MhMessage::BindingError(BindingErrorRepr {
            status: BeStatus::UnrecognizedMhType,
            home_address: a("::"),
        }),
    ];
    let lens = [8, 16, 16, 24, 24, 16, 16, 24];
    for (m, len) in msgs.iter().zip(lens) {
        let r = MhRepr::new(*m);
        assert_eq!(r.buffer_len(), len, "{m:?}");
        let v = r.to_bytes(&a("2001:db8::1"), &a("2001:db8::2")).unwrap();
        assert_eq!(v[2], m.mh_type());
        assert_eq!(
            MhRepr::parse(&MobilityHeader::new_checked(&v[..]).unwrap()).unwrap(),
            r
        );
    }
}

#[test]
fn semantic_errors() {
    let mut v = bu().to_bytes(&a("::1"), &a("::2")).unwrap();
    v[0] = 6;
    assert_eq!(
        MhRepr::parse(&MobilityHeader::new_checked(&v[..]).unwrap()),
        Err(Error::BadMhPayloadProto(6))
    );
    v[0] = 59;
    v[2] = 42;
    assert_eq!(
        MhRepr::parse(&MobilityHeader::new_checked(&v[..]).unwrap()),
        Err(Error::UnknownMhType(42))
    );
    v[2] = mh_type::HOT;
    assert_eq!(
        MhRepr::parse(&MobilityHeader::new_checked(&v[..]).unwrap()),
        Err(Error::BadMhLength {
            mh_type: 3,
            len: 16,
            min: 24
        })
    );
    v[1] = 2;
    assert_eq!(
        MobilityHeader::new_checked(&v[..]).unwrap_err(),
        Error::Truncated {
            what: "mobility header",
            need: 24,
            have: 16
        }
    );
    assert!(matches!(
        MobilityHeader::new_checked(&v[..7]),
        Err(Error::Truncated {
            need: 8,
            have: 7,
            ..
        })
    ));
}

#[test]
fn reserved_bits_ignored_on_parse() {
    let mut v = bu().to_bytes(&a("::1"), &a("::2")).unwrap();
    v[9] = 0x15;
    let r = MhRepr::parse(&MobilityHeader::new_checked(&v[..]).unwrap()).unwrap();
    assert_eq!(r, bu());
}

#[test]
fn binding_auth_input_excludes_authenticator_and_checksum() {
    let r = bu()
        .with_option(MobilityOption::NonceIndices {
            home_nonce_index: 1,
            care_of_nonce_index: 2,
        })
        .with_option(MobilityOption::BindingAuthData {
            authenticator: [0xaa; 12],
        });
    let v = r.to_bytes(&a("::1"), &a("::2")).unwrap();
    let h = MobilityHeader::new_checked(&v[..]).unwrap();
    let input = h.binding_auth_input().unwrap();
    let joined = input.to_vec();
    assert_eq!(input.field(), v.len() - 12..v.len());
    assert_eq!(joined.len(), v.len() - 12);
    assert_eq!(&joined[..4], &v[..4]);
    assert_eq!(&joined[4..6], &[0, 0]);
    assert_eq!(&joined[6..], &v[6..v.len() - 12]);
    assert!(joined.ends_with(&[5, 12]));

    let mut v2 = v.clone();
    let mut h2 = MobilityHeader::new_checked(&mut v2[..]).unwrap();
    h2.set_authenticator(&[0x55; 12]).unwrap();
    h2.fill_checksum(&a("::1"), &a("::2"));
    // Changing the authenticator or checksum does not change the input.
    let h2 = MobilityHeader::new_checked(&v2[..]).unwrap();
    assert_eq!(h2.binding_auth_input().unwrap().to_vec(), joined);
    assert_eq!(
        MhRepr::parse(&h2).unwrap().authenticator(),
        Some([0x55; 12])
    );
    assert!(h2.verify_checksum(&a("::1"), &a("::2")));
}

#[test]
fn message_auth_input_ends_with_spi() {
    let r = bu()
        .with_option(MobilityOption::MesgId { timestamp: 77 })
        .with_option(MobilityOption::MessageAuth(MessageAuth {
            subtype: AUTH_SUBTYPE_MN_HA,
            spi: 0x0100,
            auth_data: vec![0; 12],
        }));
    let v = r.to_bytes(&a("::1"), &a("::2")).unwrap();
    assert_eq!(v.len(), 48);
    let h = MobilityHeader::new_checked(&v[..]).unwrap();
    let input = h.message_auth_input(AUTH_SUBTYPE_MN_HA).unwrap();
    assert_eq!(input.field(), 36..48);
    let joined = input.to_vec();
    assert_eq!(joined.len(), 36);
    assert!(joined.ends_with(&[9, 17, 1, 0, 0, 1, 0]));
    assert_eq!(
        h.message_auth_input(AUTH_SUBTYPE_MN_AAA),
        Err(Error::MissingOption(9))
    );
    assert_eq!(h.binding_auth_input(), Err(Error::MissingOption(5)));
    let mut v2 = v.clone();
    let mut h2 = MobilityHeader::new_checked(&mut v2[..]).unwrap();
    assert_eq!(
        h2.set_message_auth_data(1, &[1; 11]),
        Err(Error::LengthMismatch {
            what: "authentication data",
            field: 12,
            given: 11
        })
    );
    h2.set_message_auth_data(1, &[1; 12]).unwrap();
    let r2 = MhRepr::parse(&MobilityHeader::new_checked(&v2[..]).unwrap()).unwrap();
    assert_eq!(
        r2.message_auth(1).map(|m| m.auth_data.clone()),
        Some(vec![1; 12])
    );
    assert_eq!(r2.mesg_id(), Some(77));
}
