//! The user's tour with ordinary tools (`sh -c` one-liners): mkdir, echo, cat, ls, jq,
//! find, cp, stat, rm -r; plus the CLI's own start/stop contract.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::common::*;

const NAME: &str = "docker.io/library/busybox:1.36";

fn desc_json() -> String {
    format!(
        r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:{}","size":527}}"#,
        "3f".repeat(32)
    )
}

#[test]
fn the_root_lists_images_containers_tasks_and_their_views() {
    let fx = MountFixture::new();
    assert_eq!(fx.sh_ok("ls"), "containers\ncontent\nimages\nlogs\nsnapshots\ntasks\nwait\n");
    assert_eq!(fx.sh_ok("ls content"), "sha256\nsha512\n");
    assert_eq!(fx.sh_ok("ls tasks"), "");
}

#[test]
fn image_tour() {
    let fx = MountFixture::new();
    fx.sh_ok(&format!("mkdir -p images/{NAME}"));
    fx.sh_ok(&format!("echo '{}' > images/{NAME}/target", desc_json()));
    let cat = fx.sh_ok(&format!("cat images/{NAME}/target"));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&cat).unwrap(),
        serde_json::from_str::<serde_json::Value>(&desc_json()).unwrap()
    );
    // Only target has a value; info.json is reachable by name, not listed.
    assert_eq!(fx.sh_ok(&format!("ls images/{NAME}")), "target\n");
    fx.sh_ok(&format!("test -f images/{NAME}/info.json && test ! -e images/{NAME}/labels"));
    assert_eq!(
        fx.sh_ok(&format!("jq -r .name images/{NAME}/info.json")),
        format!("{NAME}\n")
    );
    assert_eq!(
        fx.sh_ok(&format!("jq -r .target.digest images/{NAME}/info.json")),
        format!("sha256:{}\n", "3f".repeat(32))
    );
    assert_eq!(
        fx.sh_ok("find images -name target"),
        format!("images/{NAME}/target\n")
    );
    fx.sh_ok("rm -r images/docker.io");
    assert_eq!(fx.sh_ok("ls images"), "");
}

#[test]
fn container_tour() {
    let fx = MountFixture::new();
    fx.sh_ok("mkdir containers/web");
    fx.sh_ok(&format!("echo {NAME} > containers/web/image"));
    assert_eq!(fx.sh_ok("cat containers/web/image"), format!("{NAME}\n"));
    fx.sh_ok("echo tier=front >> containers/web/labels && echo env=prod >> containers/web/labels");
    assert_eq!(
        fx.sh_ok("cat containers/web/labels"),
        "env=prod\ntier=front\n"
    );
    assert_eq!(
        fx.sh_ok("getfattr --only-values -n user.env containers/web"),
        "prod"
    );
    assert_eq!(
        fx.sh_ok("jq -c .labels containers/web/info.json"),
        "{\"env\":\"prod\",\"tier\":\"front\"}\n"
    );
    // Only the fields with a value have files, and find does not see info.json.
    assert_eq!(
        fx.sh_ok("find containers | sort"),
        "containers\ncontainers/web\ncontainers/web/image\ncontainers/web/labels\n"
    );
    assert_eq!(fx.sh_ok("find containers -type f -empty"), "", "no file without a value");
    // Unset fields are absent; rm clears one.
    fx.sh_ok("test ! -e containers/web/runtime && test ! -e containers/web/spec");
    assert_eq!(fx.sh_ok("jq -r .runtime containers/web/info.json"), "\n");
    fx.sh_ok("rm containers/web/image");
    assert_eq!(fx.sh_ok("ls containers/web"), "labels\n");
    assert_eq!(fx.sh_ok("jq -r .image containers/web/info.json"), "\n");
    fx.sh_ok("rm -r containers/web");
    assert_eq!(fx.sh_ok("ls containers"), "");
}

#[test]
fn cp_of_a_file_into_target_and_spec() {
    let fx = MountFixture::new();
    let src = fx.root().join("desc.json");
    fs::write(&src, format!("{}\n", desc_json())).unwrap();
    let spec = fx.root().join("config.json");
    fs::write(&spec, r#"{"ociVersion":"1.2.0","process":{"args":["sh"]}}"#).unwrap();

    // Into a fresh directory (creates the file) and over an existing target.
    fx.sh_ok(&format!(
        "mkdir -p images/app && cp {} images/app/target",
        src.display()
    ));
    assert_eq!(ls(&fx.path("images/app")), ["target"]);
    assert_eq!(read_json(&fx.path("images/app/info.json"))["name"], "app");
    fx.sh_ok(&format!("cp {} images/app/target", src.display()));
    assert_eq!(
        read_json(&fx.path("images/app/target")),
        serde_json::from_str::<serde_json::Value>(&desc_json()).unwrap()
    );
    fx.sh_ok(&format!(
        "mkdir containers/web && cp {} containers/web/spec",
        spec.display()
    ));
    assert_eq!(
        fx.sh_ok("jq -r .process.args[0] containers/web/spec"),
        "sh\n"
    );
}

/// `ls -l`, `stat -c %s` and `wc -c` must agree for every file.
#[test]
fn ls_l_and_stat_sizes_match_the_content() {
    let fx = MountFixture::new();
    fx.sh_ok(&format!(
        "mkdir -p images/{NAME} && echo '{}' > images/{NAME}/target",
        desc_json()
    ));
    fx.sh_ok("echo a=1 > images/docker.io/library/busybox:1.36/labels");
    fx.sh_ok("mkdir containers/web && echo '{\"ociVersion\":\"1.2.0\"}' > containers/web/spec && echo k=v >> containers/web/labels");

    let files = fx.sh_ok("find images containers -type f | sort");
    assert_eq!(
        files,
        format!("containers/web/labels\ncontainers/web/spec\nimages/{NAME}/labels\nimages/{NAME}/target\n"),
        "find sees the files with a value, not info.json"
    );
    // info.json is not listed, but is reachable by name and has an exact size too.
    let info = ["containers/web/info.json".to_string(), format!("images/{NAME}/info.json")];
    for f in files.lines().map(str::to_string).chain(info) {
        let wc = fx.sh_ok(&format!("wc -c < '{f}'")).trim().to_string();
        let stat = fx.sh_ok(&format!("stat -c %s '{f}'")).trim().to_string();
        assert_eq!(stat, wc, "stat -c %s vs wc -c for {f}");
        let ls = fx.sh_ok(&format!("ls -l '{f}'"));
        let size = ls.split_whitespace().nth(4).unwrap_or_default();
        assert_eq!(size, wc, "ls -l size vs wc -c for {f}: {ls}");
    }
}

#[test]
fn ls_t_orders_containers_by_last_change() {
    let fx = MountFixture::new();
    fx.sh_ok("mkdir containers/a containers/b containers/c");
    for id in ["a", "c", "b"] {
        fx.sh_ok(&format!("echo changed=1 >> containers/{id}/labels"));
    }
    assert_eq!(fx.sh_ok("ls -t containers"), "b\nc\na\n");
}

#[test]
fn help_and_version() {
    let help = Command::new(env!("CARGO_BIN_EXE_ctrfs"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("mount"));
    let version = Command::new(env!("CARGO_BIN_EXE_ctrfs"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(version.status.success());
    assert!(String::from_utf8_lossy(&version.stdout).contains(env!("CARGO_PKG_VERSION")));
}

/// A daemon started without `--foreground`: the CLI process and, once found, the daemon's
/// own PID. Drop kills whatever is left by PID and detaches the mount.
struct Background {
    cli: Child,
    daemon: Option<Pid>,
    mnt: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Ok(None) = self.cli.try_wait() {
            let _ = kill(Pid::from_raw(self.cli.id() as i32), Signal::SIGKILL);
            let _ = self.cli.wait();
        }
        if let Some(pid) = self.daemon {
            if alive(pid) {
                let _ = kill(pid, Signal::SIGKILL);
            }
        }
        if is_mounted(&self.mnt) {
            let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
        }
    }
}

/// Alive and not a zombie (a reparented daemon may wait a moment to be reaped).
fn alive(pid: Pid) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .map(|s| !s.trim_start().starts_with('Z'))
            .unwrap_or(false),
    }
}

/// PIDs whose argv names `mnt` (unique: a fresh temp dir) and whose argv[0] is ctrfs.
fn daemons_on(mnt: &Path) -> Vec<Pid> {
    let want = mnt.to_string_lossy().into_owned();
    let mut pids = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let argv: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if argv.first().is_some_and(|a0| a0.ends_with("ctrfs")) && argv.contains(&want) {
            pids.push(Pid::from_raw(pid));
        }
    }
    pids
}

#[test]
fn background_mode_returns_once_mounted_and_umount_ends_the_daemon() {
    require_root();
    let dir = tempfile::Builder::new()
        .prefix("ctrfs-bg-")
        .tempdir()
        .unwrap();
    let root = dir.path().canonicalize().unwrap();
    let (state, mnt) = (root.join("state"), root.join("mnt"));
    fs::create_dir(&state).unwrap();
    fs::create_dir(&mnt).unwrap();
    let out = File::create(root.join("cli.out")).unwrap();
    let cli = Command::new(env!("CARGO_BIN_EXE_ctrfs"))
        .arg("mount")
        .arg(&mnt)
        .arg("--root")
        .arg(&state)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let mut bg = Background {
        cli,
        daemon: None,
        mnt: mnt.clone(),
        _dir: dir,
    };
    let mut status = None;
    wait_until(DAEMON_DEADLINE, "`ctrfs mount` to return", || {
        status = bg.cli.try_wait().unwrap();
        status.is_some()
    });
    let cli_out = fs::read_to_string(root.join("cli.out")).unwrap_or_default();
    assert!(status.unwrap().success(), "`ctrfs mount` failed: {cli_out}");
    assert!(
        is_mounted(&mnt),
        "`ctrfs mount` returned before the mount was live"
    );

    let pids = daemons_on(&mnt);
    assert_eq!(
        pids.len(),
        1,
        "expected one daemon for {}, found {pids:?}",
        mnt.display()
    );
    bg.daemon = Some(pids[0]);
    assert_eq!(
        sh_ok(&mnt, "mkdir containers/web && echo crun > containers/web/runtime && cat containers/web/runtime"),
        "crun\n"
    );
    assert!(
        state.join("ctrfs.log").is_file(),
        "no STATE_DIR/ctrfs.log in background mode"
    );

    let umount = Command::new("umount").arg(&mnt).output().unwrap();
    assert!(
        umount.status.success(),
        "umount: {}",
        String::from_utf8_lossy(&umount.stderr)
    );
    wait_until(DAEMON_DEADLINE, "the daemon to exit after umount", || {
        !alive(pids[0])
    });
}
