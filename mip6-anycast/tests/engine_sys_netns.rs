//! Namespaces made without `ip`, code run inside them, the namespace worker,
//! sysctls, and the lab helper. Needs root (skips loudly otherwise; fails
//! when `CI=true`).
#![cfg(feature = "engine")]

mod engine_sys_util;

use std::net::{IpAddr, Ipv6Addr};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Mutex;

use engine_sys_util::{ping, run_in};
use mip6_anycast::engine::netlink::{AddrOptions, Netlink};
use mip6_anycast::engine::netns::{self, NetnsError, NetnsGuard, NetnsWorker};
use mip6_anycast::engine::sysctl::{self, Ipv6Conf};
use mip6_anycast::engine::testing::Lab;
use mip6_anycast::require_root;

/// The inode of the calling thread's network namespace.
fn my_netns_inode() -> u64 {
    std::fs::metadata("/proc/thread-self/ns/net")
        .expect("stat own netns")
        .ino()
}

fn mounted(path: &Path) -> bool {
    let p = path.to_string_lossy();
    std::fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .any(|l| l.split_whitespace().nth(4) == Some(&p))
}

#[test]
fn create_enter_delete_without_ip() {
    require_root!("create_enter_delete_without_ip");
    let ns = NetnsGuard::create_unique("mip6t").expect("create");
    let path = netns::path_of(ns.name());
    assert!(path.exists());
    assert!(mounted(&path), "{} is not a mount", path.display());
    // iproute2 sees it.
    let list = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    assert!(String::from_utf8_lossy(&list.stdout).contains(ns.name()));

    let ns_inode = std::fs::metadata(&path).expect("stat").ino();
    let outside = my_netns_inode();
    let inside = ns.run(my_netns_inode).expect("enter");
    assert_eq!(inside, ns_inode);
    assert_ne!(inside, outside);
    // The caller's own thread did not move.
    assert_eq!(my_netns_inode(), outside);

    // A fresh namespace has only lo.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let links = rt.block_on(async {
        let nl = Netlink::in_netns(ns.name()).expect("netlink");
        nl.links().await.expect("links")
    });
    assert_eq!(
        links.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(),
        ["lo"]
    );

    let name = ns.name().to_string();
    ns.delete().expect("delete");
    assert!(!path.exists());
    assert!(!mounted(&path));
    assert!(matches!(netns::open(&name), Err(NetnsError::NotFound(_))));
}

#[test]
fn guard_cleans_up_on_panic() {
    require_root!("guard_cleans_up_on_panic");
    let name = Mutex::new(String::new());
    let result = std::panic::catch_unwind(|| {
        let ns = NetnsGuard::create_unique("mip6t").expect("create");
        *name.lock().unwrap() = ns.name().to_string();
        assert!(netns::exists(ns.name()));
        panic!("test failure inside a namespace test");
    });
    assert!(result.is_err());
    let name = name.into_inner().unwrap();
    assert!(!name.is_empty());
    let path = netns::path_of(&name);
    assert!(!path.exists(), "{} left behind", path.display());
    assert!(!mounted(&path));
}

#[test]
fn errors_are_typed() {
    require_root!("errors_are_typed");
    let ns = NetnsGuard::create_unique("mip6t").expect("create");
    assert!(matches!(
        netns::create(ns.name()),
        Err(NetnsError::Exists(_))
    ));
    for bad in ["", ".", "..", "a/b", "x\0y"] {
        assert!(
            matches!(netns::create(bad), Err(NetnsError::InvalidName(_))),
            "{bad:?}"
        );
    }
    let missing = netns::unique_name("mip6t-missing");
    assert!(matches!(
        netns::delete(&missing),
        Err(NetnsError::NotFound(_))
    ));
    assert!(matches!(
        netns::in_netns(&missing, || ()),
        Err(NetnsError::NotFound(_))
    ));
    // A panic inside the namespace thread reaches the caller.
    let caught = std::panic::catch_unwind(|| ns.run(|| panic!("inside")));
    assert!(caught.is_err());
}

#[test]
fn unique_names() {
    let a = netns::unique_ifname("mip6-very-long-prefix");
    let b = netns::unique_ifname("mip6-very-long-prefix");
    assert_ne!(a, b);
    assert!(a.len() <= netns::IFNAME_MAX && b.len() <= netns::IFNAME_MAX);
    assert!(a.starts_with("mip6"));
    let n = netns::unique_name("mip6t");
    assert!(n.starts_with(&format!("mip6t-{}-", std::process::id())));
}

#[test]
fn worker_runs_tokio_inside_the_namespace() {
    require_root!("worker_runs_tokio_inside_the_namespace");
    let ns = NetnsGuard::create_unique("mip6t").expect("create");
    let ns_inode = std::fs::metadata(netns::path_of(ns.name()))
        .expect("stat")
        .ino();
    let worker = NetnsWorker::start(ns.name()).expect("worker");
    assert_eq!(worker.run(my_netns_inode).expect("run"), ns_inode);

    // An address that exists only inside the namespace.
    let only_inside = Ipv6Addr::new(0xfd00, 0x77, 0, 0, 0, 0, 0, 1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let nl = Netlink::in_netns(ns.name()).expect("netlink");
        let lo = nl.link_index("lo").await.expect("lo");
        nl.set_link_up(lo).await.expect("lo up");
        nl.add_address(lo, IpAddr::V6(only_inside), 128, AddrOptions::NODAD)
            .await
            .expect("address");
        // Bound from the caller's namespace it fails...
        assert!(tokio::net::UdpSocket::bind((only_inside, 0)).await.is_err());
        // ...from a task on the worker it works, and the socket stays usable
        // from here.
        let sock = worker
            .spawn(async move { tokio::net::UdpSocket::bind((only_inside, 0)).await })
            .await
            .expect("join")
            .expect("bind inside");
        let local = sock.local_addr().expect("local addr");
        assert_eq!(local.ip(), IpAddr::V6(only_inside));
        let std_sock = sock.into_std().expect("into std");
        drop(std_sock);
        let inode = worker.call(my_netns_inode).await.expect("call");
        assert_eq!(inode, ns_inode);
    });
}

#[test]
fn sysctl_is_per_namespace() {
    require_root!("sysctl_is_per_namespace");
    let ns = NetnsGuard::create_unique("mip6t").expect("create");
    let key = sysctl::ipv6_conf_key("all", Ipv6Conf::Forwarding);
    let outside_before = sysctl::read(None, &key).expect("read outside");
    sysctl::set_ipv6_conf(Some(ns.name()), "all", Ipv6Conf::Forwarding, 1).expect("set");
    assert_eq!(sysctl::read(Some(ns.name()), &key).expect("read"), "1");
    sysctl::set_ipv6_conf(Some(ns.name()), "all", Ipv6Conf::Forwarding, 0).expect("set");
    assert_eq!(sysctl::read(Some(ns.name()), &key).expect("read"), "0");
    sysctl::set_ipv6_conf(Some(ns.name()), "all", Ipv6Conf::Forwarding, 1).expect("set");
    assert_eq!(
        sysctl::read(None, &key).expect("read outside"),
        outside_before
    );
    // Cross-check with a process started inside.
    let (ok, out) = run_in(
        ns.name(),
        "cat",
        &["/proc/sys/net/ipv6/conf/all/forwarding"],
    );
    assert!(ok);
    assert_eq!(out.trim(), "1");
}

#[tokio::test]
async fn lab_chain_routes_and_cleans_up() {
    require_root!("lab_chain_routes_and_cleans_up");
    let lab = Lab::chain(3).await.expect("lab");
    assert_eq!(lab.len(), 3);
    let far = lab.link(1).b_addr;
    // Two hops through node 1's kernel forwarding.
    assert!(ping(lab.ns(0), far), "ping {far} from node 0 failed");
    assert!(ping(lab.ns(2), lab.link(0).a_addr));
    let names: Vec<String> = (0..3).map(|i| lab.ns(i).to_string()).collect();
    drop(lab);
    for n in names {
        assert!(!netns::exists(&n), "{n} left behind");
    }
}

#[test]
fn lab_from_sync_code() {
    require_root!("lab_from_sync_code");
    let lab = Lab::new_blocking(3, &[(0, 1), (0, 2)]).expect("lab");
    // Node 1 reaches node 2 through node 0.
    assert!(ping(lab.ns(1), lab.link(1).b_addr));
    assert!(Lab::new_blocking(2, &[(0, 2)]).is_err());
    assert!(Lab::new_blocking(2, &[(1, 1)]).is_err());
}
