//! Published events: what the `events` file streams, one JSON line per committed change,
//! named and shaped as containerd's events (its topics, its proto field names in
//! snake_case), so a consumer of `ctr events` output reads them without a table.
//!
//! Not to be confused with `service::Event`, the in-memory notices the services give the
//! filesystem layer: a published event is a durable record, written in the transaction of
//! the change it reports.

use serde::Serialize;

use super::{Container, Labels, Task, Timestamp, DEFAULT_RUNTIME};


/// containerd's exit status for an exit that is not known (the process was never reaped).
pub const UNKNOWN_EXIT_STATUS: u32 = 255;

/// The most bytes of labels (keys and values) one event carries: a label set may hold a
/// MiB, and the journal keeps 10,000 events. Past it the event carries the labels that
/// fit, in key order, and says `labels_truncated`; the record has them all.
pub const MAX_EVENT_LABEL_BYTES: usize = 4096;

/// The topic of the line a reader that fell behind the kept window gets first.
pub const LAGGED_TOPIC: &str = "/ctrfs/lagged";

/// The labels that fit [`MAX_EVENT_LABEL_BYTES`], in key order, and whether any were left out.
fn bounded(labels: &Labels) -> (Labels, bool) {
    let mut kept = Labels::new();
    let mut room = MAX_EVENT_LABEL_BYTES;
    for (key, value) in labels.iter() {
        let size = key.len() + value.len();
        if size > room || kept.set(key, value).is_err() {
            return (kept, true);
        }
        room -= size;
    }
    (kept, false)
}

/// The body of one published event; each variant is the containerd message of its topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Published {
    /// `/images/create`: a name became an image (its first target).
    ImageCreate {
        /// The image name.
        name: String,
        /// Its labels (those that fit [`MAX_EVENT_LABEL_BYTES`]).
        labels: Labels,
        /// Some labels were left out.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        labels_truncated: bool,
    },
    /// `/images/update`: an image's target or labels changed.
    ImageUpdate {
        /// The image name.
        name: String,
        /// Its labels (those that fit [`MAX_EVENT_LABEL_BYTES`]).
        labels: Labels,
        /// Some labels were left out.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        labels_truncated: bool,
    },
    /// `/images/delete`: an image was removed (or lost its target).
    ImageDelete {
        /// The image name.
        name: String,
    },
    /// `/containers/create`.
    ContainerCreate {
        /// The container id.
        id: String,
        /// Its image name (empty when unset).
        image: String,
        /// Its runtime.
        runtime: RuntimeName,
    },
    /// `/containers/update`: any field, label or the spec changed.
    ContainerUpdate {
        /// The container id.
        id: String,
        /// Its image name.
        image: String,
        /// Its labels (those that fit [`MAX_EVENT_LABEL_BYTES`]).
        labels: Labels,
        /// Some labels were left out.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        labels_truncated: bool,
        /// Its root-filesystem snapshot key.
        snapshot_key: String,
    },
    /// `/containers/delete`.
    ContainerDelete {
        /// The container id.
        id: String,
    },
    /// `/tasks/create`.
    TaskCreate {
        /// The container id.
        container_id: String,
        /// The task's OCI bundle directory on the host.
        bundle: String,
        /// The process id.
        pid: u32,
    },
    /// `/tasks/start`.
    TaskStart {
        /// The container id.
        container_id: String,
        /// The process id.
        pid: u32,
    },
    /// `/tasks/exit`.
    TaskExit {
        /// The container id.
        container_id: String,
        /// The process id within the task (its init process: the container id).
        id: String,
        /// The process id.
        pid: u32,
        /// Its exit status ([`UNKNOWN_EXIT_STATUS`] when not known).
        exit_status: u32,
        /// When it exited.
        exited_at: Timestamp,
    },
    /// `/tasks/delete`.
    TaskDelete {
        /// The container id.
        container_id: String,
        /// The process id within the task.
        id: String,
        /// The process id of its last run.
        pid: u32,
        /// Its last exit status.
        exit_status: u32,
        /// When it last exited.
        exited_at: Timestamp,
    },
    /// `/tasks/paused`.
    TaskPaused {
        /// The container id.
        container_id: String,
    },
    /// `/tasks/resumed`.
    TaskResumed {
        /// The container id.
        container_id: String,
    },
    /// `/snapshot/prepare`: an active snapshot was made.
    SnapshotPrepare {
        /// Its key.
        key: String,
        /// Its parent's key (empty for none).
        parent: String,
        /// The snapshotter.
        snapshotter: String,
    },
    /// `/snapshot/commit`: a committed snapshot (an unpacked layer) was recorded.
    SnapshotCommit {
        /// The key it was made under.
        key: String,
        /// Its committed name.
        name: String,
        /// The snapshotter.
        snapshotter: String,
    },
    /// `/snapshot/remove`.
    SnapshotRemove {
        /// Its key.
        key: String,
        /// The snapshotter.
        snapshotter: String,
    },
    /// `/content/delete`.
    ContentDelete {
        /// The blob's digest.
        digest: String,
    },
}

/// containerd's `ContainerCreate.Runtime`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuntimeName {
    /// The runtime's name.
    pub name: String,
}

impl Published {
    /// containerd's topic of this event.
    pub fn topic(&self) -> &'static str {
        match self {
            Published::ImageCreate { .. } => "/images/create",
            Published::ImageUpdate { .. } => "/images/update",
            Published::ImageDelete { .. } => "/images/delete",
            Published::ContainerCreate { .. } => "/containers/create",
            Published::ContainerUpdate { .. } => "/containers/update",
            Published::ContainerDelete { .. } => "/containers/delete",
            Published::TaskCreate { .. } => "/tasks/create",
            Published::TaskStart { .. } => "/tasks/start",
            Published::TaskExit { .. } => "/tasks/exit",
            Published::TaskDelete { .. } => "/tasks/delete",
            Published::TaskPaused { .. } => "/tasks/paused",
            Published::TaskResumed { .. } => "/tasks/resumed",
            Published::SnapshotPrepare { .. } => "/snapshot/prepare",
            Published::SnapshotCommit { .. } => "/snapshot/commit",
            Published::SnapshotRemove { .. } => "/snapshot/remove",
            Published::ContentDelete { .. } => "/content/delete",
        }
    }

    /// `/containers/create` of a new container record.
    pub fn container_create(c: &Container) -> Self {
        let runtime = if c.runtime.is_empty() { DEFAULT_RUNTIME } else { &c.runtime };
        Published::ContainerCreate { id: c.id.clone(), image: c.image.clone(), runtime: RuntimeName { name: runtime.to_owned() } }
    }

    /// `/containers/update` showing the record as committed.
    pub fn container_update(c: &Container) -> Self {
        let (labels, labels_truncated) = bounded(&c.labels);
        Published::ContainerUpdate { id: c.id.clone(), image: c.image.clone(), labels, labels_truncated, snapshot_key: c.snapshot.clone() }
    }

    /// `/images/create` (`created`) or `/images/update` of an image record.
    pub fn image_put(name: &str, labels: &Labels, created: bool) -> Self {
        let (labels, labels_truncated) = bounded(labels);
        let name = name.to_owned();
        if created {
            Published::ImageCreate { name, labels, labels_truncated }
        } else {
            Published::ImageUpdate { name, labels, labels_truncated }
        }
    }

    /// `/tasks/exit` of a task record whose run just stopped; an exit without a time is
    /// dated `now`.
    pub fn task_exit(task: &Task, now: Timestamp) -> Self {
        Published::TaskExit {
            container_id: task.id.clone(),
            id: task.id.clone(),
            pid: task.pid,
            exit_status: exit_status(task),
            exited_at: task.exited_at.unwrap_or(now),
        }
    }

    /// `/tasks/delete` of a task record as it was when deleted.
    pub fn task_delete(task: &Task, now: Timestamp) -> Self {
        Published::TaskDelete {
            container_id: task.id.clone(),
            id: task.id.clone(),
            pid: task.pid,
            exit_status: exit_status(task),
            exited_at: task.exited_at.unwrap_or(now),
        }
    }
}

/// containerd's unsigned exit status: a signal's death is already 128 + signal here.
fn exit_status(task: &Task) -> u32 {
    task.exit_status.and_then(|s| u32::try_from(s).ok()).unwrap_or(UNKNOWN_EXIT_STATUS)
}

/// One line of the `events` file, as stored: containerd's envelope around the event.
#[derive(Serialize)]
struct Envelope<'a, E: Serialize> {
    timestamp: Timestamp,
    namespace: &'a str,
    topic: &'a str,
    event: E,
}

/// The stored record of `event` published at `at`: one JSON object, no newline.
pub fn envelope(event: &Published, at: Timestamp, namespace: &str) -> Vec<u8> {
    let line = Envelope { timestamp: at, namespace, topic: event.topic(), event };
    serde_json::to_vec(&line).expect("an event always serializes")
}

/// The line told to a reader moved past `skipped` events it was too slow to read.
pub fn lagged_line(skipped: u64, at: Timestamp, namespace: &str) -> Vec<u8> {
    #[derive(Serialize)]
    struct Lagged {
        skipped: u64,
    }
    let line = Envelope { timestamp: at, namespace, topic: LAGGED_TOPIC, event: Lagged { skipped } };
    serde_json::to_vec(&line).expect("a lag notice always serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_carries_at_most_4_kib_of_labels_and_says_when_it_left_some_out() {
        let mut labels = Labels::new();
        for i in 0..10 {
            labels.set(&format!("k{i}"), &"v".repeat(1000)).unwrap();
        }
        let line: serde_json::Value = serde_json::from_slice(&envelope(&Published::image_put("a", &labels, true), Timestamp::now(), "default")).unwrap();
        let kept = line["event"]["labels"].as_object().unwrap();
        assert_eq!(kept.len(), 4, "4 labels of 1002 bytes fit in 4096");
        assert!(kept.contains_key("k0") && kept.contains_key("k3"));
        assert_eq!(line["event"]["labels_truncated"], true);
        let small = envelope(&Published::image_put("a", &Labels::new(), true), Timestamp::now(), "default");
        assert!(!String::from_utf8(small).unwrap().contains("truncated"));
    }

    #[test]
    fn an_envelope_carries_containerds_topic_and_field_names() {
        let mut labels = Labels::new();
        labels.set("env", "prod").unwrap();
        let at = Timestamp::from_nanos(1_796_135_400_123_456_789);
        let line = envelope(&Published::image_put("docker.io/library/busybox:latest", &labels, false), at, "default");
        let value: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "timestamp": "2026-12-01T14:30:00.123456789Z",
                "namespace": "default",
                "topic": "/images/update",
                "event": {"name": "docker.io/library/busybox:latest", "labels": {"env": "prod"}}
            })
        );
        let lag: serde_json::Value = serde_json::from_slice(&lagged_line(7, at, "default")).unwrap();
        assert_eq!(lag["topic"], "/ctrfs/lagged");
        assert_eq!(lag["event"], serde_json::json!({"skipped": 7}));
    }

    #[test]
    fn a_new_container_names_the_default_runtime() {
        let c = Container::new("web".into(), Timestamp::from_nanos(0));
        let value = serde_json::to_value(Published::container_create(&c)).unwrap();
        assert_eq!(value, serde_json::json!({"id": "web", "image": "", "runtime": {"name": "runc"}}));
    }
}
