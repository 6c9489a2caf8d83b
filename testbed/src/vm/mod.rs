//! Lab hosts of kind `vm`: a QEMU guest (TCG: this machine's `/dev/kvm`
//! boots only kernels built for it) running Debian's stock kernel
//! (`CONFIG_IPV6_MIP6=y`: the kernel can do Mobile IPv6 route
//! optimization itself) from a small initramfs, attached to its lab
//! namespace through a TAP device and driven through its serial console.
//!
//! - The namespace of a `vm` host keeps the link ends but not their
//!   addresses (the lab adds on-link routes instead, see `lab::build`);
//!   it forwards between the links and the TAP `vm0`, which carries
//!   `fe80::1` and a `/128` route per guest address.
//! - The guest gets the link addresses as `/128`s on `eth0` (e1000) and
//!   routes every prefix the topology names for it via `fe80::1`.
//! - Kernel and modules come from the Debian package
//!   `linux-image-6.1.0-*-amd64-unsigned`, extracted by
//!   `scripts/vm-deps.sh` into `$MIP6_VM_CACHE` (default
//!   `/var/cache/mip6-anycast`) and reused between runs.
//! - [`Vm`] is a drop guard: QEMU is also a lab process, so the lab's
//!   teardown (and its reaper) stop it when anything fails.

pub mod initramfs;
pub mod serial;

use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub use initramfs::Initramfs;
pub use serial::{ExecOutput, SerialConsole};

use crate::lab::{Lab, LabProcess};
use crate::topology::{HostKind, Ipv6Prefix};

/// Name of the TAP device in the host's namespace.
pub const TAP: &str = "vm0";
/// The namespace's address on the TAP: the guest's gateway.
pub const GATEWAY: &str = "fe80::1";
/// Kernel modules the guest loads (in order): the NIC and `xfrm_user`
/// (NETLINK_XFRM); IPv6 and MIPv6 are built into Debian's kernel.
pub const MODULES: &[&str] = &["e1000", "xfrm_algo", "xfrm_user"];
/// Where a guest's programs go.
pub const GUEST_BIN: &str = "/usr/local/bin";

/// Errors of a guest's start.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// Something needed is missing or wrong (kernel, busybox, QEMU, host).
    #[error("{0}")]
    Setup(String),
    /// An I/O step failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// The lab refused (namespace, process).
    #[error(transparent)]
    Lab(#[from] crate::lab::LabError),
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> VmError {
    let context = context.into();
    move |source| VmError::Io { context, source }
}

/// Debian's kernel as `scripts/vm-deps.sh` extracted it.
#[derive(Debug, Clone)]
pub struct KernelImage {
    /// `boot/vmlinuz-*`.
    pub vmlinuz: PathBuf,
    /// `lib/modules/<release>`.
    pub modules: PathBuf,
    /// The release (`6.1.0-NN-amd64`).
    pub release: String,
}

/// The kernel cache directory.
#[must_use]
pub fn kernel_cache() -> PathBuf {
    std::env::var_os("MIP6_VM_CACHE")
        .map_or_else(|| PathBuf::from("/var/cache/mip6-anycast"), PathBuf::from)
}

/// Finds the newest extracted `linux-image-6.1.0-*-amd64-unsigned` in
/// `cache`.
pub fn find_kernel(cache: &Path) -> Result<KernelImage, VmError> {
    let missing = || {
        VmError::Setup(format!(
            "no Debian kernel in {} (run scripts/vm-deps.sh)",
            cache.display()
        ))
    };
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(cache)
        .map_err(|_| missing())?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("linux-image-6.1.0-") && n.ends_with("-unsigned"))
        })
        .collect();
    // ABI numbers sort numerically ("-9-" < "-56-").
    dirs.sort_by_key(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.trim_start_matches("linux-image-6.1.0-").split('-').next())
            .and_then(|abi| abi.parse::<u32>().ok())
            .unwrap_or(0)
    });
    for dir in dirs.iter().rev() {
        let Ok(boot) = std::fs::read_dir(dir.join("boot")) else {
            continue;
        };
        let Some(vmlinuz) = boot.filter_map(Result::ok).map(|e| e.path()).find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-"))
        }) else {
            continue;
        };
        let release = vmlinuz
            .file_name()
            .and_then(|n| n.to_str())
            .map(|n| n.trim_start_matches("vmlinuz-").to_string())
            .unwrap_or_default();
        let modules = dir.join("lib/modules").join(&release);
        if modules.is_dir() {
            return Ok(KernelImage {
                vmlinuz,
                modules,
                release,
            });
        }
    }
    Err(missing())
}

/// Finds `name.ko` under `dir`.
fn find_module(dir: &Path, name: &str) -> Option<PathBuf> {
    let file = format!("{name}.ko");
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).ok()?.filter_map(Result::ok) {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n == file.as_str()) {
                return Some(p);
            }
        }
    }
    None
}

/// The guest's network: its addresses and the prefixes it routes via
/// the namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuestNet {
    /// Addresses (put on `eth0` as `/128`).
    pub addrs: Vec<Ipv6Addr>,
    /// Prefixes routed via [`GATEWAY`] (`None`: default route).
    pub routes: Vec<Option<Ipv6Prefix>>,
}

impl GuestNet {
    /// What the topology gives the `vm` host `host`: its link ends'
    /// addresses, their prefixes and its `[[route]]` destinations.
    pub fn of(lab: &Lab, host: &str) -> GuestNet {
        let mut g = GuestNet::default();
        for l in lab.links() {
            for end in [&l.a, &l.b] {
                if end.host != host {
                    continue;
                }
                for p in &end.addrs {
                    g.addrs.push(p.addr());
                    let net = Ipv6Prefix::new(p.network(), p.len());
                    if net.is_some() && !g.routes.contains(&net) {
                        g.routes.push(net);
                    }
                }
            }
        }
        for r in lab.topology().routes.iter().filter(|r| r.host == host) {
            let dst = (!r.dst.is_empty()).then_some(r.dst);
            if !g.routes.contains(&dst) {
                g.routes.push(dst);
            }
        }
        g
    }
}

/// The guest's `/init`.
fn init_script(net: &GuestNet) -> String {
    let mut s = String::from(
        "#!/bin/busybox sh\n\
         /bin/busybox --install -s /bin\n\
         rm -f /bin/ip\n\
         export PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n\
         mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev\n\
         mkdir -p /tmp /run\n",
    );
    for m in MODULES {
        s.push_str(&format!("insmod /lib/modules/{m}.ko\n"));
    }
    s.push_str("dmesg -n 1\n");
    // No duplicate address detection (its second of waiting would delay
    // the first packets) and no router solicitations, on eth0 itself too
    // (it exists since the NIC module loaded); then the link comes up, its
    // negotiation overlapping with the rest of the set-up.
    for d in ["all", "default", "eth0"] {
        for (k, v) in [
            ("accept_dad", 0),
            ("accept_ra", 0),
            ("router_solicitations", 0),
        ] {
            s.push_str(&format!("echo {v} > /proc/sys/net/ipv6/conf/{d}/{k}\n"));
        }
    }
    s.push_str("/usr/sbin/ip link set lo up\n/usr/sbin/ip link set eth0 up\n");
    for a in &net.addrs {
        s.push_str(&format!(
            "/usr/sbin/ip -6 addr add {a}/128 dev eth0 nodad\n"
        ));
    }
    for r in &net.routes {
        let dst = r.map_or_else(|| "default".to_string(), |p| p.to_string());
        s.push_str(&format!(
            "/usr/sbin/ip -6 route add {dst} via {GATEWAY} dev eth0\n"
        ));
    }
    // Ready means the link is up too (at most 10 s).
    s.push_str(
        "for i in $(seq 1 200); do [ \"$(cat /sys/class/net/eth0/carrier 2>/dev/null)\" = 1 ] && break; sleep 0.05; done\n",
    );
    s.push_str(&format!(
        "stty -F /dev/ttyS0 -echo\n\
         echo \"$(cut -d' ' -f1 /proc/uptime) {}\" > /dev/ttyS0\n\
         exec setsid sh -c 'while true; do while read -r l; do sh -c \"$l\" </dev/null; done; done' </dev/ttyS0 >/dev/ttyS0 2>&1\n",
        serial::READY_MARKER
    ));
    s
}

/// How to start a guest.
#[derive(Debug, Clone)]
pub struct VmOptions {
    /// Kernel cache (default [`kernel_cache`]).
    pub cache: PathBuf,
    /// Host programs to bundle, each with its libraries, into
    /// [`GUEST_BIN`] under their file name.
    pub programs: Vec<PathBuf>,
    /// Extra files: (guest path, contents).
    pub files: Vec<(String, Vec<u8>)>,
    /// Guest memory (MiB).
    pub memory_mb: u32,
    /// Longest wait for the guest's console to say it is ready.
    pub boot_timeout: Duration,
}

impl Default for VmOptions {
    fn default() -> Self {
        VmOptions {
            cache: kernel_cache(),
            programs: Vec::new(),
            files: Vec::new(),
            memory_mb: 256,
            boot_timeout: Duration::from_secs(45),
        }
    }
}

/// A copy of `program` without debug information in `dir` (debug
/// builds are ~100 MB), or the program itself if `strip` is missing.
fn stripped(program: &Path, dir: &Path) -> PathBuf {
    let Some(name) = program.file_name() else {
        return program.to_path_buf();
    };
    let out = dir.join(name);
    let ok = Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(&out)
        .arg(program)
        .status()
        .is_ok_and(|s| s.success());
    if ok { out } else { program.to_path_buf() }
}

/// Builds the initramfs of a guest into `dir/initramfs.cpio`.
fn build_initramfs(
    kernel: &KernelImage,
    net: &GuestNet,
    opts: &VmOptions,
    dir: &Path,
) -> Result<PathBuf, VmError> {
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or_else(|| {
            VmError::Setup("busybox is not installed (run scripts/vm-deps.sh)".into())
        })?;
    let mut fs = Initramfs::new();
    for d in ["dev", "proc", "sys", "tmp", "run", "etc", "bin", "sbin"] {
        fs.dir(d);
    }
    fs.copy(&busybox, "bin/busybox", 0o755)
        .map_err(io("busybox"))?;
    for m in MODULES {
        let p = find_module(&kernel.modules, m).ok_or_else(|| {
            VmError::Setup(format!("module {m}.ko not in {}", kernel.modules.display()))
        })?;
        fs.copy(&p, &format!("lib/modules/{m}.ko"), 0o644)
            .map_err(io(format!("module {m}")))?;
    }
    // iproute2's ip, for `ip xfrm` (busybox's ip has no xfrm).
    let ip = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or_else(|| VmError::Setup("iproute2's ip is not installed".into()))?;
    fs.program(&ip, "usr/sbin/ip").map_err(io("bundling ip"))?;
    for p in &opts.programs {
        let name = p
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| VmError::Setup(format!("program {}: no file name", p.display())))?;
        let src = stripped(p, dir);
        fs.program(&src, &format!("{GUEST_BIN}/{name}"))
            .map_err(io(format!("bundling {}", p.display())))?;
    }
    for (path, data) in &opts.files {
        fs.file(path, 0o644, data.clone());
    }
    fs.file("init", 0o755, init_script(net).into_bytes());
    let out = dir.join("initramfs.cpio");
    fs.write(&out).map_err(io("writing the initramfs"))?;
    Ok(out)
}

/// Runs `ip ARGS` in the namespace of `host`.
fn ip_in(lab: &Lab, host: &str, args: &[&str]) -> Result<(), VmError> {
    let owned: Vec<String> = args.iter().map(|s| (*s).to_string()).collect();
    let out = lab
        .run_in(host, move || Command::new("ip").args(&owned).output())?
        .map_err(io("running ip"))?;
    if !out.status.success() {
        return Err(VmError::Setup(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// A running guest (stopped on drop).
#[derive(Debug)]
pub struct Vm {
    host: String,
    process: LabProcess,
    console: SerialConsole,
    dir: PathBuf,
    /// From QEMU's start to the guest's ready line (init done, console
    /// loop running).
    pub boot_time: Duration,
    /// From QEMU's start to the first answer from the gateway (the guest
    /// on the lab's network).
    pub net_ready_time: Duration,
    /// The guest kernel's release.
    pub kernel_release: String,
    /// The guest's network.
    pub net: GuestNet,
}

impl Vm {
    /// Boots the guest of the `vm` host `host` in `lab`.
    pub fn start(lab: &Lab, host: &str, opts: &VmOptions) -> Result<Vm, VmError> {
        if lab.topology().host(host).map(|h| h.kind) != Some(HostKind::Vm) {
            return Err(VmError::Setup(format!("host {host} is not of kind vm")));
        }
        let kernel = find_kernel(&opts.cache)?;
        // A short private directory: unix socket paths are limited to
        // 108 bytes.
        let dir = std::env::temp_dir().join(format!(
            "mip6vm-{}-{}",
            lab.prefix(),
            crate::lab::process::file_safe(host)
        ));
        std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        let net = GuestNet::of(lab, host);
        let result = Self::boot(lab, host, opts, &kernel, &net, &dir);
        match result {
            Ok((process, console, boot_time, net_ready_time)) => Ok(Vm {
                host: host.to_string(),
                process,
                console,
                dir,
                boot_time,
                net_ready_time,
                kernel_release: kernel.release,
                net,
            }),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                Err(e)
            }
        }
    }

    fn boot(
        lab: &Lab,
        host: &str,
        opts: &VmOptions,
        kernel: &KernelImage,
        net: &GuestNet,
        dir: &Path,
    ) -> Result<(LabProcess, SerialConsole, Duration, Duration), VmError> {
        let initrd = build_initramfs(kernel, net, opts, dir)?;
        let sock = dir.join("serial.sock");
        let _ = std::fs::remove_file(&sock);
        let qemu = which("qemu-system-x86_64").ok_or_else(|| {
            VmError::Setup("qemu-system-x86_64 is not installed (run scripts/vm-deps.sh)".into())
        })?;
        let args: Vec<String> = vec![
            "-machine".into(),
            "q35,accel=tcg".into(),
            "-cpu".into(),
            "max".into(),
            "-smp".into(),
            "1".into(),
            "-m".into(),
            opts.memory_mb.to_string(),
            "-nodefaults".into(),
            "-no-user-config".into(),
            "-display".into(),
            "none".into(),
            "-no-reboot".into(),
            "-kernel".into(),
            kernel.vmlinuz.display().to_string(),
            "-initrd".into(),
            initrd.display().to_string(),
            "-append".into(),
            "console=ttyS0 quiet loglevel=1 panic=-1".into(),
            "-chardev".into(),
            format!("socket,id=s0,path={},server=on,wait=off", sock.display()),
            "-serial".into(),
            "chardev:s0".into(),
            "-netdev".into(),
            format!("tap,id=n0,ifname={TAP},script=no,downscript=no"),
            "-device".into(),
            "e1000,netdev=n0,mac=52:54:00:6d:69:36".into(),
        ];
        let t0 = Instant::now();
        let process = lab.spawn_named(
            host,
            "qemu",
            &qemu,
            &args,
            std::iter::empty::<(&str, &str)>(),
        )?;
        let up = (|| {
            let mut console = SerialConsole::connect(&sock, Duration::from_secs(10))
                .map_err(io("connecting to the guest console"))?;
            Self::wire_namespace(lab, host, net)?;
            console
                .wait_ready(opts.boot_timeout)
                .map_err(io("waiting for the guest to boot"))?;
            let ready = t0.elapsed();
            // Neighbour discovery toward the gateway done before the
            // first real packet (else a workload's first SYN may wait).
            let ping = console
                .exec(
                    &format!("ping -c 1 -W 5 {GATEWAY}%eth0"),
                    Duration::from_secs(10),
                )
                .map_err(io("pinging the gateway from the guest"))?;
            if ping.status != 0 {
                return Err(VmError::Setup(format!(
                    "the guest cannot reach {GATEWAY} on {TAP}: {}",
                    ping.output
                )));
            }
            Ok((console, ready))
        })();
        match up {
            Ok((console, ready)) => Ok((process, console, ready, t0.elapsed())),
            Err(e) => {
                let _ = process.terminate(Duration::from_secs(2));
                let tail = process.log_tail(10);
                Err(match e {
                    VmError::Io { context, source } => VmError::Io {
                        context: format!("{context} (QEMU log: {tail})"),
                        source,
                    },
                    e => e,
                })
            }
        }
    }

    /// The namespace side: TAP up with the gateway address, a route per
    /// guest address.
    fn wire_namespace(lab: &Lab, host: &str, net: &GuestNet) -> Result<(), VmError> {
        let end = Instant::now() + Duration::from_secs(10);
        while ip_in(lab, host, &["link", "show", TAP]).is_err() {
            if Instant::now() >= end {
                return Err(VmError::Setup(format!("QEMU made no TAP {TAP} in {host}")));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        ip_in(lab, host, &["link", "set", TAP, "up"])?;
        ip_in(
            lab,
            host,
            &[
                "-6",
                "addr",
                "add",
                &format!("{GATEWAY}/64"),
                "dev",
                TAP,
                "nodad",
            ],
        )?;
        for a in &net.addrs {
            ip_in(
                lab,
                host,
                &["-6", "route", "add", &format!("{a}/128"), "dev", TAP],
            )?;
        }
        Ok(())
    }

    /// The lab host the guest belongs to.
    #[must_use]
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Runs one shell line in the guest.
    pub fn exec(&mut self, cmd: &str, timeout: Duration) -> std::io::Result<ExecOutput> {
        self.console.exec(cmd, timeout)
    }

    /// Like [`Vm::exec`], an error unless the command exited with 0.
    pub fn run(&mut self, cmd: &str, timeout: Duration) -> Result<String, String> {
        match self.exec(cmd, timeout) {
            Ok(o) if o.status == 0 => Ok(o.output),
            Ok(o) => Err(format!("guest: `{cmd}` exited {}: {}", o.status, o.output)),
            Err(e) => Err(format!("guest: `{cmd}`: {e}")),
        }
    }

    /// Stops QEMU (the guest has nothing to save).
    pub fn stop(self) {}
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.process.terminate(Duration::from_secs(3));
        // The console transcript goes next to QEMU's log.
        let log = self.process.log_path().with_extension("console.log");
        let _ = std::fs::write(log, &self.console.transcript);
        if std::env::var_os("MIP6_VM_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// `name` on `PATH`.
fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_configures_the_guest() {
        let net = GuestNet {
            addrs: vec!["2001:db8:1::10".parse().unwrap()],
            routes: vec![Some("2001:db8:1::/64".parse().unwrap()), None],
        };
        let s = init_script(&net);
        assert!(s.starts_with("#!/bin/busybox sh\n"));
        assert!(s.contains("insmod /lib/modules/xfrm_user.ko"));
        assert!(s.contains("ip -6 addr add 2001:db8:1::10/128 dev eth0 nodad"));
        assert!(s.contains("ip -6 route add 2001:db8:1::/64 via fe80::1 dev eth0"));
        assert!(s.contains("ip -6 route add default via fe80::1 dev eth0"));
        assert!(s.contains(serial::READY_MARKER));
    }
}
