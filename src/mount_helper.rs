//! `mount -t fuse.ctrfs` and /etc/fstab: mount(8) runs `/sbin/mount.fuse.ctrfs SOURCE
//! MOUNTPOINT [-sfnv] -o OPTIONS` (a link to the `ctrfs` binary, which knows itself by
//! that name). This turns such a command line into the `ctrfs mount` one, so the options
//! are checked by the same definition:
//!
//! ```text
//! ctrfs  /mnt/ctrfs  fuse.ctrfs  root=/var/lib/ctrfs,allow_other,nofail  0 0
//! ```
//!
//! ctrfs options: `root=`, `threads=`, `runtime=`, `snapshotter=`, `content_lease=`,
//! `allow_other` and `namespace=`. The generic
//! options mount(8) and systemd pass along (`rw`, `defaults`, `nofail`, `_netdev`,
//! `noauto`, `x-systemd.*`...) are accepted and have no effect here; anything else is
//! refused with its name.

/// The name mount(8) runs the helper by.
pub const HELPER_NAME: &str = "mount.fuse.ctrfs";

/// Options that are mount(8)'s or systemd's business, or that mean nothing for this tree
/// (its files are never devices or set-id programs, and its times are kept by the
/// daemon), so they change nothing here.
const GENERIC: [&str; 25] = [
    "defaults", "rw", "auto", "noauto", "nofail", "_netdev", "user", "nouser", "users", "owner", "group",
    "dev", "nodev", "suid", "nosuid", "exec", "noexec", "sync", "async", "atime", "noatime", "relatime",
    "strictatime", "lazytime", "nodiratime",
];

/// The `ctrfs mount` argument list (program name first) for a helper command line
/// (program name first, as mount(8) gives it).
pub fn mount_argv(args: &[String]) -> Result<Vec<String>, String> {
    // mount(8) puts the source and the mount point first, whatever they look like.
    let (Some(_source), Some(mountpoint)) = (args.get(1), args.get(2)) else {
        return Err("expected SOURCE MOUNTPOINT [-o OPTIONS]".into());
    };
    let mut options = Vec::new();
    let mut rest = args.iter().skip(3);
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "-o" => options.extend(rest.next().ok_or("-o needs a value")?.split(',').map(str::to_owned)),
            // The type, given again.
            "-t" => drop(rest.next().ok_or("-t needs a value")?),
            "-N" => return Err("mount namespaces (-N) are not supported".into()),
            // Sloppy, fake, no mtab, verbose: nothing to do differently.
            "-s" | "-f" | "-n" | "-v" => {}
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    let mut flags = Vec::new();
    for option in options.iter().filter(|o| !o.is_empty()) {
        let (name, value) = option.split_once('=').map_or((option.as_str(), None), |(n, v)| (n, Some(v)));
        match (name, value) {
            ("allow_other", None) => flags.push("--allow-other".to_owned()),
            // One argument, `--name=value`: a value starting with `-` is still a value.
            ("root" | "threads" | "runtime" | "snapshotter" | "content_lease" | "namespace", Some(value)) => {
                flags.push(format!("--{}={value}", name.replace('_', "-")))
            }
            ("ro", None) => return Err("ro: the tree is changed by writing it; mount it rw".into()),
            ("comment", _) => {}
            (name, _) if GENERIC.contains(&name) || name.starts_with("x-") || name.starts_with("X-") => {}
            _ => return Err(format!("unknown option {option:?}")),
        }
    }
    let mut argv = vec!["ctrfs".to_owned(), "mount".to_owned()];
    argv.extend(flags);
    argv.extend(["--".to_owned(), mountpoint.clone()]);
    Ok(argv)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(line: &str) -> Result<Vec<String>, String> {
        mount_argv(&line.split(' ').map(str::to_owned).collect::<Vec<_>>())
    }

    #[test]
    fn options_become_the_mount_command_s_and_generic_ones_are_dropped() {
        assert_eq!(
            argv("mount.fuse.ctrfs ctrfs /mnt/c -o rw,root=/var/lib/x,allow_other,nofail,x-systemd.automount,noatime,content_lease=1h").unwrap(),
            ["ctrfs", "mount", "--root=/var/lib/x", "--allow-other", "--content-lease=1h", "--", "/mnt/c"]
        );
        assert_eq!(
            argv("mount.fuse.ctrfs ctrfs /m -n -o namespace=default,comment=x").unwrap(),
            ["ctrfs", "mount", "--namespace=default", "--", "/m"]
        );
        assert_eq!(argv("mount.fuse.ctrfs -weird /m -t fuse.ctrfs").unwrap(), ["ctrfs", "mount", "--", "/m"], "the source is not read");
        assert_eq!(argv("mount.fuse.ctrfs ctrfs /m -o root=-odd").unwrap(), ["ctrfs", "mount", "--root=-odd", "--", "/m"]);
    }

    #[test]
    fn what_cannot_be_served_is_refused_with_its_name() {
        assert!(argv("mount.fuse.ctrfs ctrfs /m -o bogus").unwrap_err().contains("bogus"));
        assert_eq!(argv("mount.fuse.ctrfs ctrfs /m -o namespace=build").unwrap(), ["ctrfs", "mount", "--namespace=build", "--", "/m"]);
        assert!(argv("mount.fuse.ctrfs ctrfs /m -o ro").unwrap_err().contains("ro"));
        assert!(argv("mount.fuse.ctrfs ctrfs").is_err());
        assert!(argv("mount.fuse.ctrfs ctrfs /m -o").is_err());
        assert!(argv("mount.fuse.ctrfs ctrfs /m -x").is_err());
        assert!(argv("mount.fuse.ctrfs ctrfs /m -N 1234").is_err());
    }
}
