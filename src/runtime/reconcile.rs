//! What became of a task while no daemon watched: the exit record, the supervisor's
//! liveness (pid and start time, so a reused pid is not mistaken for it) and the
//! runtime's own state, in that order of trust. An exit record counts only when it is the
//! run's own (its generation): the file is shared by the runs of a task.

use serde_json::Value;

use super::files::{is_alive, read_exit, Exit};
use super::{Observed, RuncOp, Runtime, Started};

pub(super) fn observe(rt: &Runtime, id: &str, started: &Started) -> Observed {
    let exit_file = rt.files(id).exit();
    let own_exit = || read_exit(&exit_file).ok().flatten().filter(|e: &Exit| e.generation == started.generation);
    if let Some(exit) = own_exit() {
        return Observed::Stopped(Some(exit));
    }
    let supervised = is_alive(started.supervisor_pid, started.supervisor_start_time);
    match (supervised, runtime_status(rt, id).as_deref()) {
        (true, Some("paused")) => Observed::Paused,
        // Its supervisor will record the exit; until then it counts as running.
        (true, _) => Observed::Running,
        (false, Some("running" | "created" | "paused")) => match own_exit() {
            // The supervisor wrote its record and ended between the two looks.
            Some(exit) => Observed::Stopped(Some(exit)),
            None => Observed::Unknown,
        },
        (false, _) => Observed::Stopped(own_exit()),
    }
}

/// The runtime's own status of `id` (`runc state`): `None` when it has no such container.
pub(super) fn runtime_status(rt: &Runtime, id: &str) -> Option<String> {
    rt.oci
        .run(RuncOp::State { id })
        .ok()
        .and_then(|out| serde_json::from_str::<Value>(&out).ok())
        .and_then(|state| state["status"].as_str().map(str::to_owned))
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
            generation: 2,
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
        let earlier = Exit { status: 3, exited_at: Timestamp::from_nanos(1), generation: 1 };
        std::fs::create_dir_all(rt.files("web").dir).unwrap();
        write_durably(&rt.files("web").exit(), &serde_json::to_vec(&earlier).unwrap()).unwrap();
        assert_eq!(observe(&rt, "web", &started(true)), Observed::Running, "the exit of the run before is not this run's");
        assert_eq!(observe(&rt, "web", &started(false)), Observed::Unknown);
        let own = Exit { generation: 2, ..earlier };
        write_durably(&rt.files("web").exit(), &serde_json::to_vec(&own).unwrap()).unwrap();
        assert_eq!(observe(&rt, "web", &started(false)), Observed::Stopped(Some(own)));
    }

    #[test]
    fn only_identifiers_found_on_disk_are_task_ids() {
        let (_dir, calls, rt) = runtime_with(Recording::default());
        for name in ["web", "--all", "-h", "a..b", ".hidden"] {
            std::fs::create_dir_all(rt.files(name).dir).unwrap();
        }
        for name in ["db", "--force", "-"] {
            std::fs::create_dir_all(rt.config.runc_root.join(name)).unwrap();
        }
        std::fs::write(rt.config.state_dir.join("stray-file"), b"").unwrap();
        assert_eq!(rt.ids_on_disk().unwrap(), ["db", "web"]);
        assert!(calls.taken().is_empty(), "listing runs nothing");
    }
}
