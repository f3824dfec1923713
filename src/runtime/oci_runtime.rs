//! The OCI runtime's command line (runc, or a compatible one such as crun) behind a
//! trait, so the verbs' logic is tested with a recording double and the real binary is
//! tested for real. Arguments are vectors, never a shell line.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::sys::signal::Signal;

use super::RuntimeError;

/// One runtime command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuncOp<'a> {
    /// `run --detach --bundle B --pid-file P ID`: create and start in one runtime process
    Run {
        /// Container id.
        id: &'a str,
        /// Bundle directory.
        bundle: &'a Path,
        /// Where runc writes the container's pid.
        pid_file: &'a Path,
    },
    /// `kill ID SIGNAL`
    Kill {
        /// Container id.
        id: &'a str,
        /// The signal.
        signal: Signal,
    },
    /// `pause ID`
    Pause {
        /// Container id.
        id: &'a str,
    },
    /// `resume ID`
    Resume {
        /// Container id.
        id: &'a str,
    },
    /// `delete --force ID`
    Delete {
        /// Container id.
        id: &'a str,
    },
    /// `state ID`
    State {
        /// Container id.
        id: &'a str,
    },
}

impl RuncOp<'_> {
    /// The command's name, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            RuncOp::Run { .. } => "runc run",
            RuncOp::Kill { .. } => "runc kill",
            RuncOp::Pause { .. } => "runc pause",
            RuncOp::Resume { .. } => "runc resume",
            RuncOp::Delete { .. } => "runc delete",
            RuncOp::State { .. } => "runc state",
        }
    }
}

/// Runs runtime commands and returns their standard output.
pub trait OciRuntime: Send + Sync {
    /// Runs `op` to completion; a failure carries the runtime's own message.
    fn run(&self, op: RuncOp<'_>) -> Result<String, RuntimeError>;
}

/// The real runtime binary with its state root.
#[derive(Debug, Clone)]
pub struct RuncCli {
    /// The binary (`runc`, `/usr/bin/crun`...).
    pub binary: PathBuf,
    /// `--root`: where the runtime keeps its container state.
    pub root: PathBuf,
    /// `--log`: where the runtime writes its own messages (JSON), if anywhere.
    pub log: Option<PathBuf>,
}

impl RuncCli {
    /// The full argument vector for `op` (without the binary).
    pub fn argv(&self, op: &RuncOp<'_>) -> Vec<OsString> {
        let mut argv: Vec<OsString> = vec!["--root".into(), self.root.clone().into()];
        if let Some(log) = &self.log {
            argv.extend(["--log".into(), log.clone().into(), "--log-format".into(), "json".into()]);
        }
        match op {
            RuncOp::Run { id, bundle, pid_file } => argv.extend([
                "run".into(),
                "--detach".into(),
                "--bundle".into(),
                bundle.into(),
                "--pid-file".into(),
                pid_file.into(),
                (*id).into(),
            ]),
            RuncOp::Kill { id, signal } => argv.extend(["kill".into(), (*id).into(), signal.as_str().into()]),
            RuncOp::Pause { id } => argv.extend(["pause".into(), (*id).into()]),
            RuncOp::Resume { id } => argv.extend(["resume".into(), (*id).into()]),
            RuncOp::Delete { id } => argv.extend(["delete".into(), "--force".into(), (*id).into()]),
            RuncOp::State { id } => argv.extend(["state".into(), (*id).into()]),
        }
        argv
    }

    /// A `Command` for `op`, for callers that wire its stdio themselves (the supervisor).
    pub fn command(&self, op: &RuncOp<'_>) -> Command {
        let mut command = Command::new(&self.binary);
        command.args(self.argv(op));
        command
    }
}

impl OciRuntime for RuncCli {
    fn run(&self, op: RuncOp<'_>) -> Result<String, RuntimeError> {
        let output = self.command(&op).stdin(std::process::Stdio::null()).output().map_err(|e| RuntimeError::Runc {
            op: op.name(),
            message: format!("cannot run {}: {e}", self.binary.display()),
        })?;
        if output.status.success() {
            return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
        }
        let mut message = message_of(&output.stderr);
        if message.is_empty() {
            message = self.log.as_deref().and_then(last_error).unwrap_or_else(|| output.status.to_string());
        }
        Err(RuntimeError::Runc { op: op.name(), message })
    }
}

/// How much of a runtime's message is kept: its end, where runc puts the cause.
pub const MESSAGE_LIMIT: usize = 4096;

/// A runtime's output as a message for an error and a log line: trimmed, cut to its last
/// `MESSAGE_LIMIT` bytes (marked with `…`), decoded lossily. Runtimes pass on bytes of
/// the container's making, of any size and encoding; none of them may fail a start twice
/// (a panic, a message of megabytes in every log line). Empty when there was nothing.
pub fn message_of(bytes: &[u8]) -> String {
    let bytes = bytes.trim_ascii();
    match bytes.len().checked_sub(MESSAGE_LIMIT) {
        Some(cut) if cut > 0 => format!("…{}", String::from_utf8_lossy(&bytes[cut..])),
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// The last error message in a runc JSON log (`{"level":"error","msg":...}` lines),
/// bounded as `message_of`; lines that are not JSON (or not UTF-8) are skipped.
pub fn last_error(log: &Path) -> Option<String> {
    let bytes = std::fs::read(log).ok()?;
    bytes.split(|b| *b == b'\n').rev().find_map(|line| {
        let entry: serde_json::Value = serde_json::from_slice(line).ok()?;
        let msg = entry["msg"].as_str().filter(|_| entry["level"] == "error" || entry["level"] == "fatal")?;
        Some(message_of(msg.as_bytes())).filter(|m| !m.is_empty())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli() -> RuncCli {
        RuncCli { binary: "runc".into(), root: "/s/runc".into(), log: Some("/s/t/runc.log".into()) }
    }

    fn strings(argv: Vec<OsString>) -> Vec<String> {
        argv.into_iter().map(|a| a.to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn argv_is_exact() {
        let run = RuncOp::Run { id: "web", bundle: Path::new("/s/t/bundle"), pid_file: Path::new("/s/t/pid") };
        assert_eq!(
            strings(cli().argv(&run)),
            ["--root", "/s/runc", "--log", "/s/t/runc.log", "--log-format", "json", "run", "--detach", "--bundle", "/s/t/bundle", "--pid-file", "/s/t/pid", "web"]
        );
        let plain = RuncCli { log: None, ..cli() };
        assert_eq!(strings(plain.argv(&RuncOp::Kill { id: "web", signal: Signal::SIGTERM })), ["--root", "/s/runc", "kill", "web", "SIGTERM"]);
        assert_eq!(strings(plain.argv(&RuncOp::Delete { id: "web" })), ["--root", "/s/runc", "delete", "--force", "web"]);
        assert_eq!(strings(plain.argv(&RuncOp::State { id: "web" })), ["--root", "/s/runc", "state", "web"]);
    }

    #[test]
    fn runc_log_errors_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("runc.log");
        std::fs::write(&log, "{\"level\":\"info\",\"msg\":\"x\"}\n{\"level\":\"error\",\"msg\":\"exec: \\\"/bin/nope\\\": no such file\"}\n{\"level\":\"warning\",\"msg\":\"y\"}\n").unwrap();
        assert_eq!(last_error(&log).as_deref(), Some("exec: \"/bin/nope\": no such file"));
    }

    #[test]
    fn no_runtime_output_panics_or_is_kept_whole() {
        let dir = tempfile::tempdir().unwrap();
        let rows = [
            ("empty", "exit 1"),
            ("huge", "head -c 1048576 /dev/zero | tr '\\0' x >&2; echo ' the cause' >&2; exit 1"),
            ("not-utf8", "printf 'bad \\377\\376 bytes\\n' >&2; exit 1"),
        ];
        for (name, body) in rows {
            let binary = crate::runtime::fake::script(dir.path(), name, body);
            let cli = RuncCli { binary, root: dir.path().join("runc"), log: None };
            let Err(RuntimeError::Runc { message, .. }) = cli.run(RuncOp::Kill { id: "web", signal: Signal::SIGKILL }) else {
                panic!("{name}: the runtime failed")
            };
            assert!(!message.is_empty() && message.len() <= MESSAGE_LIMIT + 4, "{name}: {} bytes", message.len());
            match name {
                "empty" => assert!(message.contains("exit status"), "{message}"),
                "huge" => assert!(message.starts_with('…') && message.ends_with("the cause"), "{name}"),
                _ => assert_eq!(message, "bad \u{fffd}\u{fffd} bytes"),
            }
        }
        let log = dir.path().join("runc.log");
        let mut huge = b"{\"level\":\"error\",\"msg\":\"".to_vec();
        huge.extend(std::iter::repeat_n(b'y', 1 << 20));
        huge.extend(b"\"}\n\xff\xfe not json\n{\"level\":\"error\",\"msg\":\"\"}\n");
        std::fs::write(&log, &huge).unwrap();
        let found = last_error(&log).unwrap();
        assert!(found.len() <= MESSAGE_LIMIT + 4 && found.ends_with('y'), "empty messages are skipped, a huge one is cut");
        assert_eq!(message_of(b""), "");
        assert_eq!(message_of(b"  \n"), "");
    }
}
