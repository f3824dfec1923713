//! `error_log` at the mount's top, in the manner of tracefs's: the last refusals of this
//! mount, one line each (time, uid, pid, operation, path, errno, reason), so that a shell
//! user sees why an `echo` failed without the daemon's log. A syntax error adds a caret
//! line: under the path itself when the fault is in the path (a filter expression), else
//! under an excerpt of the document, shown on a line of its own.
//!
//! Kept in memory only (the daemon's log is the durable record), bounded by count, and
//! rendered as a whole when opened, so a reader sees one consistent picture.

use std::collections::VecDeque;
use std::sync::Mutex;

use super::errno::{errno_name, FsError};
use crate::model::{SyntaxSpot, Timestamp};

/// How many refusals are kept.
pub const KEPT_REFUSALS: usize = 256;
/// The longest reason kept, in bytes (reasons quote what was written).
const MAX_REASON_BYTES: usize = 512;

/// One refused request, as the adapter saw it.
pub struct Refusal<'a> {
    /// The requester's uid.
    pub uid: u32,
    /// The requester's pid (a thread id, as the kernel gives it).
    pub pid: u32,
    /// The operation (`write`, `lookup`, ...).
    pub op: &'a str,
    /// The path below the mount point.
    pub path: &'a str,
    /// The errno answered.
    pub errno: i32,
    /// Why.
    pub err: &'a FsError,
}

/// The kept refusals, each already rendered to its lines.
#[derive(Default)]
pub struct ErrorLog {
    entries: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    lines: VecDeque<String>,
    bytes: usize,
}

impl ErrorLog {
    /// Keeps one refusal, dropping the oldest beyond [`KEPT_REFUSALS`].
    pub fn record(&self, refusal: Refusal<'_>) {
        let entry = render(&refusal, Timestamp::now());
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.bytes += entry.len();
        entries.lines.push_back(entry);
        while entries.lines.len() > KEPT_REFUSALS {
            if let Some(old) = entries.lines.pop_front() {
                entries.bytes -= old.len();
            }
        }
    }

    /// The whole log as `cat` shows it.
    pub fn contents(&self) -> Vec<u8> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::with_capacity(entries.bytes);
        for entry in &entries.lines {
            out.extend_from_slice(entry.as_bytes());
        }
        out
    }

    /// Its size in bytes, without rendering it.
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).bytes
    }

    /// Whether nothing was refused yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `text` with every control character shown as `?`: names and reasons come from
/// callers, and a newline or a terminal escape in them must not make a line of its own
/// (a forged refusal) or reach the terminal of whoever reads the log.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if text.chars().any(char::is_control) {
        text.chars().map(|c| if c.is_control() { '?' } else { c }).collect::<String>().into()
    } else {
        text.into()
    }
}

fn render(refusal: &Refusal<'_>, at: Timestamp) -> String {
    let Refusal { uid, pid, op, path, errno, err } = refusal;
    let path = printable(path);
    let mut reason = printable(&err.to_string()).into_owned();
    if reason.len() > MAX_REASON_BYTES {
        let mut cut = MAX_REASON_BYTES;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
        reason.push('…');
    }
    let name = errno_name(*errno);
    let mut entry = format!("{at} uid={uid} pid={pid} {op} {name} ({reason}) {path}\n");
    if let Some(spot) = err.syntax_spot() {
        entry.push_str(&caret(&entry, &path, &spot));
    }
    entry
}

/// The caret line(s) for a syntax error: under the path at the end of the first line when
/// the excerpt is the path's last component, else the excerpt and a caret under it.
fn caret(first_line: &str, path: &str, spot: &SyntaxSpot) -> String {
    let last = path.rsplit('/').next().unwrap_or(path);
    if !spot.excerpt.is_empty() && last == spot.excerpt {
        let before = first_line.trim_end_matches('\n').chars().count() - last.chars().count();
        return format!("{}^\n", " ".repeat(before + spot.column));
    }
    spot.caret_lines("  ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ValidationError;

    fn refusal<'a>(path: &'a str, err: &'a FsError) -> Refusal<'a> {
        Refusal { uid: 1000, pid: 42, op: "write", path, errno: err.errno(), err }
    }

    #[test]
    fn a_line_names_who_what_where_and_why() {
        let err = FsError::NotPermitted("the top level is fixed".into());
        let at = Timestamp::now();
        let line = render(&refusal("x", &err), at);
        assert_eq!(line, format!("{at} uid=1000 pid=42 write EPERM (the top level is fixed) x\n"));
    }

    #[test]
    fn a_json_error_quotes_the_line_and_points_at_the_byte() {
        let spot = SyntaxSpot::at_offset(b"{\"ociVersion\": 1,,}", 17);
        let err = FsError::Invalid(ValidationError::NotJson { what: "spec", reason: "bad".into(), spot });
        let line = render(&refusal("containers/web/spec", &err), Timestamp::now());
        let lines: Vec<&str> = line.lines().collect();
        assert_eq!(lines.len(), 3, "{line}");
        assert_eq!(lines[1], "  {\"ociVersion\": 1,,}");
        assert_eq!(lines[2].find('^'), Some(2 + 17));
    }

    #[test]
    fn a_fault_in_the_path_is_pointed_at_in_the_path() {
        let spot = SyntaxSpot { excerpt: "id==".into(), column: 4 };
        let first = "T uid=0 pid=1 lookup EINVAL (r) containers/.filter/id==\n";
        let caret = caret(first, "containers/.filter/id==", &spot);
        assert_eq!(caret.find('^'), Some(first.len() - 1));
    }

    #[test]
    fn control_characters_in_a_path_or_reason_cannot_make_a_line_of_their_own() {
        let err = FsError::NotPermitted("bad\nreason\x1b[31m".into());
        let line = render(&refusal("containers/x\n2026 uid=0 pid=1 write EPERM (forged) y", &err), Timestamp::now());
        assert_eq!(line.lines().count(), 1, "{line}");
        assert!(line.contains("(bad?reason?[31m)") && line.ends_with("containers/x?2026 uid=0 pid=1 write EPERM (forged) y\n"), "{line}");
    }

    #[test]
    fn only_the_last_refusals_are_kept() {
        let log = ErrorLog::default();
        let err = FsError::NotFound;
        for i in 0..KEPT_REFUSALS + 10 {
            log.record(refusal(&format!("p{i}"), &err));
        }
        let text = String::from_utf8(log.contents()).unwrap();
        assert_eq!(text.lines().count(), KEPT_REFUSALS);
        assert!(text.lines().next().unwrap().ends_with(" p10"));
        assert_eq!(log.len(), text.len());
    }
}
