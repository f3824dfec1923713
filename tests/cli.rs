//! The command line's own documents: shell completions and the manual page, generated
//! from the clap definition by the binary itself (no mount needed).

use std::process::Command;

fn ctrfs(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ctrfs")).args(args).output().expect("ctrfs runs");
    assert!(out.status.success(), "ctrfs {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8")
}

#[test]
fn completions_name_every_user_subcommand_and_bash_parses_them() {
    let bash = ctrfs(&["completions", "bash"]);
    for word in ["mount", "import", "completions", "man", "--root", "--allow-other"] {
        assert!(bash.contains(word), "bash completion offers {word}");
    }
    assert!(!bash.contains("supervise"), "the daemon's own subcommand is not offered");
    let checked = Command::new("bash").arg("-n").arg("-c").arg(&bash).status().unwrap();
    assert!(checked.success(), "bash -n accepts the script");
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        assert!(ctrfs(&["completions", shell]).contains("import"), "{shell} completion names import");
    }
    let refused = Command::new(env!("CARGO_BIN_EXE_ctrfs")).args(["completions", "tcsh"]).output().unwrap();
    assert!(!refused.status.success(), "an unknown shell is refused");
}

#[test]
fn the_manual_page_has_a_page_per_user_subcommand_with_its_options() {
    let man = ctrfs(&["man"]);
    let titles: Vec<&str> = man.lines().filter(|l| l.starts_with(".TH ")).map(|l| l.split(' ').nth(1).unwrap()).collect();
    assert_eq!(titles, ["ctrfs", "ctrfs-mount", "ctrfs-import", "ctrfs-status", "ctrfs-namespace", "ctrfs-completions", "ctrfs-man"]);
    for option in ["root", "namespace", "allow\\-other", "foreground", "content\\-lease"] {
        assert!(man.contains(option), "the page documents --{option}");
    }
    assert!(!man.contains("supervise"), "the daemon's own subcommand is not documented as a user's");
    assert!(man.contains(env!("CARGO_PKG_VERSION")), "the pages carry the version");
}
