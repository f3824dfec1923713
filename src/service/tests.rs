//! The services driven directly, with no filesystem above them: real LMDB in a temporary
//! directory, the content store and snapshotter on disk, and the recording runtime double.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::testing::FakeRuntime;
use super::{Edit, Judge, ResourceConfig, Resources, ServiceError, Services};
use crate::model::{ContainerField, Labels, TaskStatus};
use crate::snapshot::Driver;
use crate::store::testing::temp_store;
use crate::store::{schema, NodeId, NodeKind, Reference, StoreError, StoreRead};

fn services() -> (tempfile::TempDir, Arc<FakeRuntime>, Services) {
    let (dir, store) = temp_store();
    let runtime = Arc::new(FakeRuntime::default());
    let resources = Resources::open(&ResourceConfig::under(dir.path(), Some(Driver::Native), Duration::ZERO)).unwrap();
    let services = Services::new(Arc::new(store)).with_runtime(runtime.clone()).with_resources(resources);
    (dir, runtime, services)
}

fn container(services: &Services, id: &str) -> NodeId {
    let (node, _) = services.create_container(id).unwrap();
    let spec = json!({"ociVersion": "1.0.2", "process": {"args": ["/bin/sh"]}, "root": {"path": "/r"}});
    services.apply(Edit::Spec(Some(spec.to_string().into_bytes())), node.id, NodeKind::Container).unwrap();
    node.id
}

fn task(services: &Services, id: &str) -> (NodeId, crate::model::Task) {
    let reader = services.store().read().unwrap();
    let node = reader.lookup(schema::TASKS, id).unwrap().unwrap();
    (node.id, reader.task(node.id).unwrap().unwrap())
}

fn status(services: &Services, id: &str) -> (TaskStatus, Option<i32>) {
    let (_, t) = task(services, id);
    (t.status, t.exit_status)
}

#[test]
fn a_snapshot_key_another_container_holds_is_refused_and_the_own_key_changes_nothing() {
    let (_dir, _, services) = services();
    let a = container(&services, "a");
    let b = container(&services, "b");
    let key = |k: &str| Edit::Field(ContainerField::Snapshot, k.into());
    services.apply(key("a-root"), a, NodeKind::Container).unwrap();
    let refused = services.apply(key("a-root"), b, NodeKind::Container).unwrap_err();
    assert!(matches!(refused, ServiceError::Store(StoreError::InUse { .. })), "{refused}");
    services.apply(key("a-root"), a, NodeKind::Container).unwrap();
    assert_eq!(services.store().read().unwrap().container(a).unwrap().unwrap().snapshot, "a-root");
    assert_eq!(services.store().read().unwrap().container(b).unwrap().unwrap().snapshot, "");
}

/// Writes a committed blob through the service, as a file writer would.
fn blob(services: &Services, bytes: &[u8]) -> String {
    use sha2::{Digest as _, Sha256};
    let hex = hex::encode(Sha256::digest(bytes));
    let (node, _, mut writer) = services.create_blob(schema::CONTENT_SHA256, &hex).unwrap();
    services.write_blob(&mut writer, 0, bytes).unwrap();
    services.judge_blob(node.id, &mut writer, Judge::Release).unwrap();
    format!("sha256:{hex}")
}

fn has_blob(services: &Services, digest: &str) -> bool {
    services.store().read().unwrap().blob_by_digest(digest).unwrap().is_some()
}

#[test]
fn a_pin_keeps_what_a_file_referenced_at_open_until_it_is_dropped() {
    let (_dir, _, services) = services();
    let c = container(&services, "c");
    let digest = blob(&services, b"kept by a label only\n");
    let mut labels = Labels::new();
    labels.set("containerd.io/gc.ref.content.keep", &digest).unwrap();
    services.apply(Edit::ReplaceLabels(labels), c, NodeKind::Container).unwrap();
    services.collect_garbage().unwrap();
    assert!(has_blob(&services, &digest), "the label references it");

    // A writer opened the labels (pinning what they reference), then emptied them.
    let pin = services.pin(vec![Reference::Blob(digest.clone())]);
    services.apply(Edit::ReplaceLabels(Labels::new()), c, NodeKind::Container).unwrap();
    services.collect_garbage().unwrap();
    assert!(has_blob(&services, &digest), "pinned while the writer is open");
    let hex = digest.trim_start_matches("sha256:");
    let refused = services.delete_blob(schema::CONTENT_SHA256, hex).unwrap_err();
    assert!(matches!(refused, ServiceError::Store(StoreError::InUse { .. })), "an explicit rm respects the pin too: {refused}");
    drop(pin);
    services.collect_garbage().unwrap();
    assert!(!has_blob(&services, &digest), "collected once nothing pins it (no ingest lease here)");
}

#[test]
fn a_refused_first_target_can_be_put_back_to_a_name_prefix() {
    let (_dir, _, services) = services();
    let dir = services.create_image_dir(schema::IMAGES, "app").unwrap();
    let digest = format!("sha256:{}", "c".repeat(64));
    let target = crate::model::Descriptor::from_json(json!({"mediaType": "m", "digest": digest, "size": 1})).unwrap();
    services.apply(Edit::Target(target, None), dir.id, NodeKind::ImageDir).unwrap();
    assert!(services.store().read().unwrap().image(dir.id).unwrap().is_some());
    services.apply(Edit::ClearTarget, dir.id, NodeKind::ImageDir).unwrap();
    assert!(services.store().read().unwrap().image(dir.id).unwrap().is_none());
}

#[test]
fn a_late_exit_of_an_earlier_run_never_stops_the_next_one() {
    let (_dir, runtime, services) = services();
    container(&services, "web");
    services.start_task("web").unwrap();
    runtime.exit("web", 3);
    services.record_exit("web").unwrap();
    assert_eq!(status(&services, "web"), (TaskStatus::Stopped, Some(3)));
    // Started again: run 2. Run 1's exit record is still there, and its report (the
    // watcher reports at least once) comes late.
    let (node, _) = task(&services, "web");
    services.control_task(node, b"start\n").unwrap();
    assert_eq!(runtime.run_of("web"), 2);
    assert_eq!(status(&services, "web").0, TaskStatus::Running, "the start does not take run 1's exit for its own");
    services.record_exit("web").unwrap();
    assert_eq!(status(&services, "web").0, TaskStatus::Running, "run 1's exit does not stop run 2");
    services.reconcile_tasks().unwrap();
    assert_eq!(status(&services, "web").0, TaskStatus::Running);
    runtime.exit_of_run("web", 2, 4);
    services.record_exit("web").unwrap();
    assert_eq!(status(&services, "web"), (TaskStatus::Stopped, Some(4)), "run 2's own exit stops it");
}

#[test]
fn a_start_again_cut_short_is_killed_at_start_up_and_the_task_stays_stopped() {
    let (_dir, runtime, services) = services();
    container(&services, "web");
    services.start_task("web").unwrap();
    runtime.exit("web", 3);
    services.record_exit("web").unwrap();
    // The daemon died after the runtime started run 2, before its record: the record
    // says stopped, the runtime runs it.
    runtime.runs.lock().unwrap().insert("web".into(), 2);
    runtime.live.lock().unwrap().insert("web".into());
    assert_eq!(services.reconcile_tasks().unwrap(), 1);
    assert!(runtime.calls().contains(&"kill web SIGKILL".to_string()), "{:?}", runtime.calls());
    assert_eq!(status(&services, "web"), (TaskStatus::Stopped, Some(3)), "the acknowledged run's exit stays");
    runtime.live.lock().unwrap().clear();
    assert_eq!(services.reconcile_tasks().unwrap(), 0, "a stopped task the runtime does not run is left alone");
    // The next start skips the killed run's number, so its exit record is not taken for
    // the new run's.
    let (node, _) = task(&services, "web");
    services.control_task(node, b"start\n").unwrap();
    assert_eq!(runtime.run_of("web"), 3);
    services.record_exit("web").unwrap();
    assert_eq!(status(&services, "web").0, TaskStatus::Running);
}

/// Container `id` labelled `ctrfs.io/rm=true`, its task started and its exit (0) recorded.
fn run_to_exit_labelled_rm(services: &Services, runtime: &FakeRuntime, id: &str) {
    let node = container(services, id);
    let mut labels = Labels::default();
    labels.set(crate::model::LABEL_REMOVE_ON_EXIT, "true").unwrap();
    services.apply(Edit::ReplaceLabels(labels), node, NodeKind::Container).unwrap();
    services.start_task(id).unwrap();
    runtime.exit(id, 0);
    services.record_exit(id).unwrap();
}

#[test]
fn a_container_labelled_rm_has_its_task_deleted_when_its_exit_is_reported() {
    let (_dir, runtime, services) = services();
    run_to_exit_labelled_rm(&services, &runtime, "web");
    assert!(services.store().read().unwrap().lookup(schema::TASKS, "web").unwrap().is_none(), "the task is gone");
    assert!(runtime.calls().contains(&"delete web".to_string()), "{:?}", runtime.calls());
    assert!(services.store().read().unwrap().lookup(schema::CONTAINERS, "web").unwrap().is_some(), "the container stays");
    // Reported again (at least once): nothing more to do.
    services.record_exit("web").unwrap();
}

#[test]
fn a_resume_racing_an_exit_leaves_the_task_stopped() {
    let (_dir, runtime, services) = services();
    container(&services, "web");
    let (node, _) = services.start_task("web").unwrap();
    services.control_task(node.id, b"pause\n").unwrap();
    // The process exits while `runc resume` runs; the watcher reports it at once.
    let (exited_tx, exited) = std::sync::mpsc::channel();
    let fake = Arc::clone(&runtime);
    *runtime.on_resume.lock().unwrap() = Some(Box::new(move || {
        fake.exit("web", 0);
        exited_tx.send(()).unwrap();
        std::thread::sleep(Duration::from_millis(200));
    }));
    std::thread::scope(|scope| {
        let watching = &services;
        let watcher = scope.spawn(move || {
            exited.recv().unwrap();
            watching.record_exit("web")
        });
        services.control_task(node.id, b"resume\n").unwrap();
        watcher.join().unwrap().unwrap();
    });
    assert_eq!(status(&services, "web"), (TaskStatus::Stopped, Some(0)), "a dead task is not left running");
}

#[test]
fn a_failed_restart_keeps_the_stopped_run_and_reports_its_error() {
    let (_dir, runtime, services) = services();
    container(&services, "web");
    let (node, _) = services.start_task("web").unwrap();
    runtime.exit("web", 3);
    services.record_exit("web").unwrap();
    let (_, before) = task(&services, "web");
    *runtime.fail_start.lock().unwrap() = Some("exec: no such file".into());
    let refused = services.control_task(node.id, b"start\n").unwrap_err();
    assert!(matches!(refused, ServiceError::Runtime(_)), "{refused}");
    assert_eq!(task(&services, "web").1, before, "status, exit status and times as they were");
    *runtime.fail_start.lock().unwrap() = None;
    services.control_task(node.id, b"start\n").unwrap();
    assert_eq!(runtime.run_of("web"), 2, "the failed attempt made no run");
    assert_eq!(status(&services, "web").0, TaskStatus::Running);
}

#[test]
fn events_tell_exits_and_collections_after_commit() {
    let (_dir, runtime, services) = services();
    let seen = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = Arc::clone(&seen);
    services.on_event(move |e| {
        sink.lock().unwrap().push(match e {
            super::Event::TaskExited { wait_text, .. } => format!("exited {}", wait_text.trim()),
            super::Event::TaskChanged { .. } => "changed".into(),
            super::Event::Collected(c) => format!("collected {} blob(s)", c.blobs.len()),
            super::Event::TaskRemoving { .. } => "removing".into(),
            super::Event::TaskRemoved { id, .. } => format!("removed {id}"),
        })
    });
    container(&services, "web");
    services.start_task("web").unwrap();
    runtime.exit("web", 7);
    services.record_exit("web").unwrap();
    blob(&services, b"nobody wants me\n");
    services.collect_garbage().unwrap();
    assert_eq!(*seen.lock().unwrap(), ["exited 7", "collected 1 blob(s)"]);
}

/// The container record and spec of `node`, for comparing before and after.
fn container_state(services: &Services, node: NodeId) -> (crate::model::Container, Option<Vec<u8>>, crate::store::Node) {
    let reader = services.store().read().unwrap();
    (reader.container(node).unwrap().unwrap(), reader.spec(node).unwrap(), reader.node(node).unwrap().unwrap())
}

#[test]
fn writing_the_value_a_field_has_commits_nothing() {
    let (_dir, _, services) = services();
    let web = container(&services, "web");
    let kind = NodeKind::Container;
    services.apply(Edit::Field(ContainerField::Image, "library/busybox".into()), web, kind).unwrap();
    let mut labels = Labels::new();
    labels.set("env", "prod").unwrap();
    services.apply(Edit::ReplaceLabels(labels.clone()), web, kind).unwrap();
    services.apply(Edit::Field(ContainerField::Runtime, "runc".into()), web, kind).unwrap();
    let spec = container_state(&services, web).1;
    let before = container_state(&services, web);
    let seen = Arc::new(std::sync::Mutex::new(0));
    let sink = Arc::clone(&seen);
    services.on_event(move |_| *sink.lock().unwrap() += 1);
    std::thread::sleep(Duration::from_millis(2));
    services.apply(Edit::Field(ContainerField::Image, "library/busybox".into()), web, kind).unwrap();
    services.apply(Edit::Field(ContainerField::Runtime, "runc".into()), web, kind).unwrap();
    services.apply(Edit::ReplaceLabels(labels), web, kind).unwrap();
    services.apply(Edit::MergeLabels(vec![crate::model::LabelEdit::Set("env".into(), "prod".into())]), web, kind).unwrap();
    services.apply(Edit::Spec(spec), web, kind).unwrap();
    services.set_label(web, "env", "prod", super::Presence::Any).unwrap();
    assert_eq!(container_state(&services, web), before, "no new updated_at");
    assert_eq!(*seen.lock().unwrap(), 0, "no event");
    // An image's target written again as the same document is no change either.
    let dir = services.create_image_dir(schema::IMAGES, "app").unwrap();
    let doc = json!({"mediaType": "m", "digest": format!("sha256:{}", "d".repeat(64)), "size": 1});
    let text = format!("{}\n", serde_json::to_string_pretty(&doc).unwrap());
    let target = || Edit::Target(crate::model::Descriptor::from_json(doc.clone()).unwrap(), Some(text.clone()));
    services.apply(target(), dir.id, NodeKind::ImageDir).unwrap();
    let image = services.store().read().unwrap().image(dir.id).unwrap().unwrap();
    services.apply(target(), dir.id, NodeKind::ImageDir).unwrap();
    assert_eq!(services.store().read().unwrap().image(dir.id).unwrap().unwrap(), image);
    // A different value is a change.
    services.apply(Edit::Field(ContainerField::Runtime, "crun".into()), web, kind).unwrap();
    assert!(container_state(&services, web).0.updated_at > before.0.updated_at);
}

#[test]
fn times_set_on_a_file_hold_until_its_value_changes() {
    use super::TimeSet;
    use crate::model::{Timestamp, NODE_ITSELF};
    let (_dir, _, services) = services();
    let web = container(&services, "web");
    let kind = NodeKind::Container;
    let past = Timestamp::from_nanos(1_577_934_245_000_000_000);
    let before = container_state(&services, web).0;
    services.set_times(web, "labels", TimeSet::At(past), TimeSet::At(past)).unwrap();
    services.set_times(web, "image", TimeSet::Now, TimeSet::At(past)).unwrap();
    services.set_times(web, NODE_ITSELF, TimeSet::At(past), TimeSet::At(past)).unwrap();
    let (record, _, node) = container_state(&services, web);
    assert_eq!(record, before, "setting times changes no value");
    assert_eq!(node.times["labels"].mtime, past);
    assert_eq!(node.times["image"].mtime, past);
    assert!(node.times["image"].atime > past);
    // Writing the labels they have keeps the time; new labels clear it, and the
    // directory's, but not the image's.
    let mut labels = Labels::new();
    services.apply(Edit::ReplaceLabels(labels.clone()), web, kind).unwrap();
    assert_eq!(container_state(&services, web).2.times.len(), 3);
    labels.set("env", "prod").unwrap();
    services.apply(Edit::ReplaceLabels(labels), web, kind).unwrap();
    let times = container_state(&services, web).2.times;
    assert_eq!(times.keys().collect::<Vec<_>>(), ["image"]);
    services.apply(Edit::Spec(Some(b"{}".to_vec())), web, kind).unwrap();
    assert_eq!(container_state(&services, web).2.times.keys().collect::<Vec<_>>(), ["image"]);
    services.apply(Edit::Field(ContainerField::Image, "app".into()), web, kind).unwrap();
    assert!(container_state(&services, web).2.times.is_empty());
}

#[test]
fn a_refused_handle_s_value_is_put_back_only_while_it_is_still_the_stored_one() {
    let (_dir, _, services) = services();
    let node = container(&services, "web");
    let field = |v: &str| Edit::Field(ContainerField::Runtime, v.into());
    let runtime = |s: &Services| s.store().read().unwrap().container(node).unwrap().unwrap().runtime;
    // A handle committed "crun" over "runc", then was refused: "runc" comes back.
    services.apply(field("runc"), node, NodeKind::Container).unwrap();
    services.apply(field("crun"), node, NodeKind::Container).unwrap();
    assert!(services.put_back(node, NodeKind::Container, &field("crun"), field("runc")).unwrap());
    assert_eq!(runtime(&services), "runc");
    // Another writer committed "youki" since: theirs stays.
    services.apply(field("crun"), node, NodeKind::Container).unwrap();
    services.apply(field("youki"), node, NodeKind::Container).unwrap();
    assert!(!services.put_back(node, NodeKind::Container, &field("crun"), field("runc")).unwrap());
    assert_eq!(runtime(&services), "youki");
    // Labels, a whole value, the same way.
    let labels = |pairs: &[(&str, &str)]| {
        let mut l = Labels::new();
        for (k, v) in pairs {
            l.set(k, v).unwrap();
        }
        Edit::ReplaceLabels(l)
    };
    services.apply(labels(&[("a", "1")]), node, NodeKind::Container).unwrap();
    assert!(services.put_back(node, NodeKind::Container, &labels(&[("a", "1")]), labels(&[])).unwrap());
    assert!(services.store().read().unwrap().container(node).unwrap().unwrap().labels.is_empty());
}

/// The topics and bodies published so far, oldest first.
fn published(services: &Services) -> Vec<(String, serde_json::Value)> {
    let reader = services.store().read().unwrap();
    let mut seen = Vec::new();
    reader
        .for_each_event_from(0, &mut |_, record| {
            let line: serde_json::Value = serde_json::from_slice(record).unwrap();
            seen.push((line["topic"].as_str().unwrap().to_owned(), line["event"].clone()));
            true
        })
        .unwrap();
    seen
}

#[test]
fn a_tasks_life_is_published_with_the_commit_of_each_step() {
    let (_dir, runtime, services) = services();
    container(&services, "web");
    let task_node = services.start_task("web").unwrap().0.id;
    services.control_task(task_node, b"pause\n").unwrap();
    services.control_task(task_node, b"resume\n").unwrap();
    runtime.exit("web", 3);
    services.record_exit("web").unwrap();
    services.record_exit("web").unwrap();
    services.delete_task(task_node).unwrap();
    services.delete_container("web").unwrap();
    let topics: Vec<String> = published(&services).into_iter().map(|(t, _)| t).collect();
    assert_eq!(
        topics,
        [
            "/containers/create",
            "/containers/update",
            "/tasks/create",
            "/tasks/start",
            "/tasks/paused",
            "/tasks/resumed",
            "/tasks/exit",
            "/tasks/delete",
            "/containers/delete"
        ],
        "a repeated exit report publishes nothing"
    );
    let events = published(&services);
    let (_, exit) = &events[6];
    assert_eq!(exit["container_id"], "web");
    assert_eq!(exit["id"], "web");
    assert_eq!(exit["exit_status"], 3);
    assert!(exit["exited_at"].is_string(), "{exit}");
    assert_eq!(events[7].1["exit_status"], 3);
}

#[test]
fn a_task_removed_on_exit_publishes_its_exit_then_its_delete() {
    let (_dir, runtime, services) = services();
    run_to_exit_labelled_rm(&services, &runtime, "web");
    let topics: Vec<String> = published(&services).into_iter().map(|(t, _)| t).skip(3).collect();
    assert_eq!(topics, ["/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"]);
}

#[test]
fn deleting_what_referenced_nothing_runs_no_collection_and_deleting_a_referrer_does() {
    let (_dir, _, services) = services();
    // Unreferenced, its lease (0 s here) over: the next collection takes it.
    let digest = blob(&services, b"collected by the next collection\n");
    container(&services, "plain");
    services.delete_container("plain").unwrap();
    assert!(has_blob(&services, &digest), "a container that referenced nothing frees nothing: no collection ran");
    let prefix = services.create_image_dir(schema::IMAGES, "prefix").unwrap();
    services.delete_image_dir(schema::IMAGES, "prefix").unwrap();
    assert!(has_blob(&services, &digest), "nor a name prefix ({prefix:?})");
    // A container that referenced something (here the blob, by a gc.ref label): collected.
    let node = container(&services, "referrer");
    let mut labels = Labels::new();
    labels.set("containerd.io/gc.ref.content.keep", &digest).unwrap();
    services.apply(Edit::ReplaceLabels(labels), node, NodeKind::Container).unwrap();
    services.delete_container("referrer").unwrap();
    assert!(!has_blob(&services, &digest), "the referrer's delete collected what only it kept");
}
