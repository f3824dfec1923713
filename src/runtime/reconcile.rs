//! What became of a task while no daemon watched: the exit record, the supervisor's
//! liveness (pid and start time, so a reused pid is not mistaken for it) and the
//! runtime's own state, in that order of trust.

use serde_json::Value;

use super::files::{is_alive, read_exit};
use super::{Observed, RuncOp, Runtime, Started};

pub(super) fn observe(rt: &Runtime, id: &str, started: &Started) -> Observed {
    let exit_file = rt.files(id).exit();
    if let Ok(Some(exit)) = read_exit(&exit_file) {
        return Observed::Stopped(Some(exit));
    }
    let supervised = is_alive(started.supervisor_pid, started.supervisor_start_time);
    let state = rt
        .oci
        .run(RuncOp::State { id })
        .ok()
        .and_then(|out| serde_json::from_str::<Value>(&out).ok())
        .and_then(|state| state["status"].as_str().map(str::to_owned));
    match (supervised, state.as_deref()) {
        (true, Some("paused")) => Observed::Paused,
        // Its supervisor will record the exit; until then it counts as running.
        (true, _) => Observed::Running,
        (false, Some("running" | "created" | "paused")) => match read_exit(&exit_file) {
            // The supervisor wrote its record and ended between the two looks.
            Ok(Some(exit)) => Observed::Stopped(Some(exit)),
            _ => Observed::Unknown,
        },
        (false, _) => Observed::Stopped(read_exit(&exit_file).ok().flatten()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Timestamp;
    use crate::runtime::fake::{runtime_with, Recording};
    use crate::runtime::files::{process_start_time, write_durably, Exit};

    fn started(supervisor_alive: bool) -> Started {
        let me = std::process::id();
        let start = process_start_time(me).unwrap();
        Started {
            pid: me,
            pid_start_time: start,
            supervisor_pid: me,
            supervisor_start_time: if supervisor_alive { start } else { start + 1 },
            started_at: Timestamp::now(),
            stdout: "/x".into(),
            stderr: "/y".into(),
        }
    }

    #[test]
    fn observations_follow_exit_record_supervisor_and_runtime_state() {
        let rows = [
            (true, Some("running"), Observed::Running),
            (true, Some("paused"), Observed::Paused),
            (false, Some("running"), Observed::Unknown),
            (false, Some("stopped"), Observed::Stopped(None)),
            (false, None, Observed::Stopped(None)),
        ];
        for (alive, state, want) in rows {
            let recording = match state {
                Some(s) => Recording::with_state(s),
                None => Recording::failing("state", "container does not exist"),
            };
            let (_dir, _calls, rt) = runtime_with(recording);
            assert_eq!(observe(&rt, "web", &started(alive)), want, "alive={alive} state={state:?}");
        }
        let (_dir, _calls, rt) = runtime_with(Recording::with_state("running"));
        let exit = Exit { status: 3, exited_at: Timestamp::from_nanos(1) };
        std::fs::create_dir_all(rt.files("web").dir).unwrap();
        write_durably(&rt.files("web").exit(), &serde_json::to_vec(&exit).unwrap()).unwrap();
        assert_eq!(observe(&rt, "web", &started(false)), Observed::Stopped(Some(exit)));
    }
}
