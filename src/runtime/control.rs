//! Control words written to `tasks/<id>`: a signal by name or number, or a verb.

use std::str::FromStr;

use nix::sys::signal::Signal;

use super::RuntimeError;

/// What a control word asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Send this signal to the task's process.
    Signal(Signal),
    /// Freeze the task.
    Pause,
    /// Thaw the task.
    Resume,
    /// Start a stopped task again.
    Start,
}

/// Parses one control word: `TERM`, `SIGTERM`, `sigterm`, `15`, `pause`, `resume`,
/// `start`. Surrounding white space is ignored.
pub fn parse_control(text: &str) -> Result<Control, RuntimeError> {
    let word = text.trim();
    let refuse = || RuntimeError::BadControl { word: word.to_owned() };
    match word.to_ascii_lowercase().as_str() {
        "pause" => return Ok(Control::Pause),
        "resume" => return Ok(Control::Resume),
        "start" => return Ok(Control::Start),
        _ => {}
    }
    if let Ok(number) = word.parse::<i32>() {
        return Signal::try_from(number).map(Control::Signal).map_err(|_| refuse());
    }
    let upper = word.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
    Signal::from_str(&name).map(Control::Signal).map_err(|_| refuse())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_signals() {
        let rows: &[(&str, Option<Control>)] = &[
            ("TERM", Some(Control::Signal(Signal::SIGTERM))),
            ("SIGTERM\n", Some(Control::Signal(Signal::SIGTERM))),
            ("sigkill", Some(Control::Signal(Signal::SIGKILL))),
            ("kill", Some(Control::Signal(Signal::SIGKILL))),
            ("9", Some(Control::Signal(Signal::SIGKILL))),
            ("15", Some(Control::Signal(Signal::SIGTERM))),
            ("USR1", Some(Control::Signal(Signal::SIGUSR1))),
            ("  HUP ", Some(Control::Signal(Signal::SIGHUP))),
            ("pause", Some(Control::Pause)),
            ("Resume", Some(Control::Resume)),
            ("start", Some(Control::Start)),
            ("0", None),
            ("99", None),
            ("FROB", None),
            ("", None),
            ("SIG", None),
        ];
        for (text, expected) in rows {
            match (parse_control(text), expected) {
                (Ok(got), Some(want)) => assert_eq!(got, *want, "{text:?}"),
                (Err(RuntimeError::BadControl { .. }), None) => {}
                (got, want) => panic!("{text:?}: got {got:?}, want {want:?}"),
            }
        }
    }
}
