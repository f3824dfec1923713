//! The event journal: the last published events, by sequence number, in the `events`
//! database. Events are appended by the write transaction whose change they report (see
//! `Store::write`), so a crash can never keep a change without its event or an event
//! without its change, and no commit is added for them.
//!
//! Sequence numbers start at 1 and never go back: the next is one past the last key, and
//! trimming never removes the last event. Each append removes the event that falls out of
//! the kept window with one point delete, so the journal costs the same at any age.

use heed::RwTxn;

use super::{Dbs, Result, StoreRead};
use crate::model::event::{envelope, Published};
use crate::model::Timestamp;

/// How many events are kept unless the daemon is told otherwise.
pub const DEFAULT_KEPT: u64 = 10_000;

/// Appends `events` with consecutive sequence numbers, all stamped `at`, and drops what
/// falls out of a window of `kept`. Returns the last sequence number written.
pub(super) fn append(dbs: &Dbs, txn: &mut RwTxn, events: &[Published], at: Timestamp, kept: u64, namespace: &str) -> Result<u64> {
    let mut seq = next_seq(dbs, txn)?;
    for event in events {
        dbs.events.put(txn, &seq, &envelope(event, at, namespace))?;
        if let Some(gone) = seq.checked_sub(kept) {
            dbs.events.delete(txn, &gone)?;
        }
        seq += 1;
    }
    Ok(seq - 1)
}

/// Removes every event older than the last `kept` (a window made smaller since the last
/// start); the range is empty, and the call one seek, when it was not.
pub(super) fn trim(dbs: &Dbs, txn: &mut RwTxn, kept: u64) -> Result<()> {
    let Some(bound) = next_seq(dbs, txn)?.checked_sub(kept.saturating_add(1)) else { return Ok(()) };
    let removed = dbs.events.delete_range(txn, &(..=bound))?;
    if removed > 0 {
        log::info!("event journal: {removed} event(s) older than the last {kept} removed");
    }
    Ok(())
}

/// The sequence number the next event gets.
fn next_seq(dbs: &Dbs, txn: &heed::RoTxn) -> Result<u64> {
    Ok(dbs.events.last(txn)?.map_or(1, |(seq, _)| seq + 1))
}

/// Where the journal stands for a reader: the oldest kept event and the next to come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalBounds {
    /// The oldest kept sequence number (equal to `next` when nothing is kept).
    pub oldest: u64,
    /// The sequence number of the next event to be published.
    pub next: u64,
}

/// Reads of the journal, through either kind of transaction.
pub(super) fn bounds(reader: &(impl StoreRead + ?Sized)) -> Result<JournalBounds> {
    let dbs = reader.dbs();
    let next = next_seq(dbs, reader.ro())?;
    let oldest = dbs.events.first(reader.ro())?.map_or(next, |(seq, _)| seq);
    Ok(JournalBounds { oldest, next })
}

/// Calls `visit(seq, record)` for kept events from `from` on, in order, until it
/// returns `false`.
pub(super) fn for_each_from(
    reader: &(impl StoreRead + ?Sized),
    from: u64,
    visit: &mut dyn FnMut(u64, &[u8]) -> bool,
) -> Result<()> {
    for item in reader.dbs().events.range(reader.ro(), &(from..))? {
        let (seq, record) = item?;
        if !visit(seq, record) {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::temp_store;
    use crate::store::{schema, Store, StoreOptions};

    fn topics_from(store: &Store, from: u64) -> Vec<(u64, String)> {
        let reader = store.read().unwrap();
        let mut seen = Vec::new();
        reader
            .for_each_event_from(from, &mut |seq, record| {
                let value: serde_json::Value = serde_json::from_slice(record).unwrap();
                seen.push((seq, value["event"]["id"].as_str().unwrap_or_default().to_owned()));
                true
            })
            .unwrap();
        seen
    }

    #[test]
    fn a_change_and_its_event_commit_together_and_a_refused_one_leaves_neither() {
        let (_dir, store) = temp_store();
        store.write(|w| w.create_container("web").map(drop)).unwrap();
        let refused = store.write(|w| {
            w.create_container("db")?;
            w.create_container("-bad").map(drop)
        });
        assert!(refused.is_err());
        assert_eq!(topics_from(&store, 0), vec![(1, "web".to_owned())]);
        // A write that changes nothing publishes nothing.
        store.write(|w| w.lookup(schema::CONTAINERS, "web").map(drop)).unwrap();
        let node = store.read().unwrap().lookup(schema::CONTAINERS, "web").unwrap().unwrap();
        store.write(|w| w.update_container(node.id, |c| c.labels.set("a", "1"))).unwrap();
        store.write(|w| w.update_container(node.id, |c| c.labels.set("a", "1"))).unwrap();
        assert_eq!(store.read().unwrap().journal_bounds().unwrap(), JournalBounds { oldest: 1, next: 3 });
    }

    #[test]
    fn the_window_keeps_the_last_events_and_the_sequence_continues_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let options = StoreOptions { events_kept: 3, ..Default::default() };
        let store = Store::open_with(&path, options.clone()).unwrap();
        for i in 0..5 {
            store.write(|w| w.create_container(&format!("c{i}")).map(drop)).unwrap();
        }
        assert_eq!(store.read().unwrap().journal_bounds().unwrap(), JournalBounds { oldest: 3, next: 6 });
        assert_eq!(topics_from(&store, 0), vec![(3, "c2".into()), (4, "c3".into()), (5, "c4".into())]);
        drop(store);
        let store = Store::open_with(&path, options).unwrap();
        store.write(|w| w.delete_container("c0").map(drop)).unwrap();
        assert_eq!(topics_from(&store, 5), vec![(5, "c4".into()), (6, "c0".into())]);
        drop(store);
        // A smaller window at the next open drops the excess; the numbers go on.
        let store = Store::open_with(&path, StoreOptions { events_kept: 1, ..Default::default() }).unwrap();
        assert_eq!(store.read().unwrap().journal_bounds().unwrap(), JournalBounds { oldest: 6, next: 7 });
        store.write(|w| w.delete_container("c1").map(drop)).unwrap();
        assert_eq!(topics_from(&store, 0), vec![(7, "c1".into())]);
    }

    fn topics(store: &Store) -> Vec<String> {
        let reader = store.read().unwrap();
        let mut seen = Vec::new();
        reader
            .for_each_event_from(0, &mut |_, record| {
                let value: serde_json::Value = serde_json::from_slice(record).unwrap();
                seen.push(value["topic"].as_str().unwrap().to_owned());
                true
            })
            .unwrap();
        seen
    }

    #[test]
    fn an_image_is_created_by_its_first_target_and_deleted_with_it() {
        let (_dir, store) = temp_store();
        let target = |fill: char| {
            crate::model::Descriptor::from_json(serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": format!("sha256:{}", fill.to_string().repeat(64)),
                "size": 10
            }))
            .unwrap()
        };
        let dir = store.write(|w| w.create_image_dir(schema::IMAGES, "app")).unwrap().id;
        // Labels before the target: no image yet, nothing published.
        store.write(|w| w.update_labels(dir, |l| l.set("a", "1"))).unwrap();
        store.write(|w| w.put_image_target(dir, target('a'), None)).unwrap();
        store.write(|w| w.put_image_target(dir, target('a'), None)).unwrap();
        store.write(|w| w.put_image_target(dir, target('b'), None)).unwrap();
        store.write(|w| w.update_labels(dir, |l| l.set("b", "2"))).unwrap();
        store.write(|w| w.clear_image_target(dir)).unwrap();
        store.write(|w| w.put_image_target(dir, target('c'), None)).unwrap();
        store.write(|w| w.delete_image_dir(schema::IMAGES, "app")).unwrap();
        assert_eq!(
            topics(&store),
            ["/images/create", "/images/update", "/images/update", "/images/delete", "/images/create", "/images/delete"]
        );
    }

    #[test]
    fn listeners_hear_of_commits_with_events_only() {
        let (_dir, store) = temp_store();
        let heard = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = std::sync::Arc::clone(&heard);
        store.on_publish(move |seq| sink.lock().unwrap().push(seq));
        store.write(|w| w.create_container("web").map(drop)).unwrap();
        store.write(|w| w.lookup(schema::CONTAINERS, "web").map(drop)).unwrap();
        let _ = store.write(|w| w.create_container("web").map(drop));
        store.write(|w| w.delete_container("web").map(drop)).unwrap();
        assert_eq!(*heard.lock().unwrap(), vec![1, 2]);
    }
}
