//! The `auto` datapath probe against this machine's kernel (root, in a
//! namespace of its own): the probe and the correspondent's start-up
//! entries must agree, and `auto` must pick what works. On a kernel
//! without `CONFIG_IPV6_MIP6` (this project's machines) both fail and
//! `auto` means `user`; on one with it (the `vm` guests of
//! `testbed/tests/demo_kernel_cn.rs` cover that end to end) a binding's
//! states and policies come and go.
#![cfg(feature = "engine")]

use mip6_anycast::cn::{DatapathChoice, resolve};
use mip6_anycast::engine::netns::in_netns;
use mip6_anycast::engine::testing::Lab;
use mip6_anycast::require_root;
use mip6_anycast::xfrm::{CorrespondentXfrm, probe};

#[test]
fn probe_start_and_auto_agree() {
    require_root!("probe_start_and_auto_agree");
    let lab = Lab::new_blocking(1, &[]).expect("namespace");
    in_netns(lab.ns(0), || {
        let probed = probe();
        let started = CorrespondentXfrm::start();
        assert_eq!(
            probed.is_ok(),
            started.is_ok(),
            "probe {probed:?} vs start {started:?}"
        );
        match started {
            Err(_) => assert_eq!(resolve(DatapathChoice::Auto), DatapathChoice::User),
            Ok(mut x) => {
                assert_eq!(resolve(DatapathChoice::Auto), DatapathChoice::Xfrm);
                let (cn, hoa, coa) = (
                    "2001:db8:1::10".parse().unwrap(),
                    "2001:db8:100::1".parse().unwrap(),
                    "2001:db8:3::10".parse().unwrap(),
                );
                x.add_binding(cn, hoa, coa).unwrap();
                // Moving it replaces the states.
                x.add_binding(cn, hoa, "2001:db8:3::11".parse().unwrap())
                    .unwrap();
                assert_eq!(x.usage(cn, hoa).unwrap().packets_out, 0);
                x.remove_binding(cn, hoa).unwrap();
                assert!(x.usage(cn, hoa).is_err());
                x.stop().unwrap();
            }
        }
        // Explicit choices are kept as they are.
        assert_eq!(resolve(DatapathChoice::User), DatapathChoice::User);
        assert_eq!(resolve(DatapathChoice::Xfrm), DatapathChoice::Xfrm);
    })
    .expect("in the namespace");
}
