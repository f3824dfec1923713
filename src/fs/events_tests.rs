//! The `events` stream's cursor over a real store: whole lines, cut lines resumed, and a
//! reader behind the kept window told and moved on. (Apart from `events.rs` because
//! these tests write the store directly, which the filesystem layer itself never does.)

use super::events::Cursor;
use crate::store::Store;
use crate::store::StoreOptions;

fn lines(bytes: &[u8]) -> Vec<serde_json::Value> {
    std::str::from_utf8(bytes).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn ids(bytes: &[u8]) -> Vec<String> {
    lines(bytes).iter().map(|v| v["event"]["id"].as_str().unwrap_or(v["topic"].as_str().unwrap()).to_owned()).collect()
}

fn create(store: &Store, id: &str) {
    store.write(|w| w.create_container(id).map(drop)).unwrap();
}

#[test]
fn reads_take_whole_lines_and_a_short_read_cuts_one_and_resumes() {
    let (_dir, store) = crate::store::testing::temp_store();
    create(&store, "a");
    create(&store, "b");
    let mut cursor = Cursor::at_oldest(&store).unwrap();
    assert!(cursor.has_unread(&store).unwrap());
    let first = cursor.read(&store, 4096).unwrap();
    assert_eq!(ids(&first), ["a", "b"]);
    assert!(cursor.read(&store, 4096).unwrap().is_empty(), "at the end");
    assert!(!cursor.has_unread(&store).unwrap());
    create(&store, "c");
    create(&store, "d");
    let line_len = first.len() / 2;
    // Room for one line and a half: the first line whole, the next left for later.
    let one = cursor.read(&store, line_len + line_len / 2).unwrap();
    assert_eq!(ids(&one), ["c"]);
    // Ten bytes at a time: pieces of one line.
    let mut rest = Vec::new();
    while cursor.has_unread(&store).unwrap() {
        let piece = cursor.read(&store, 10).unwrap();
        assert!(!piece.is_empty() && piece.len() <= 10);
        rest.extend(piece);
    }
    assert_eq!(ids(&rest), ["d"]);
}

#[test]
fn a_reader_behind_the_window_is_told_and_moved_to_the_oldest() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(&dir.path().join("db"), StoreOptions { events_kept: 2, ..Default::default() }).unwrap();
    create(&store, "a");
    let mut cursor = Cursor::at_oldest(&store).unwrap();
    for id in ["b", "c", "d"] {
        create(&store, id);
    }
    let read = cursor.read(&store, 4096).unwrap();
    let got = lines(&read);
    assert_eq!(got[0]["topic"], "/ctrfs/lagged");
    assert_eq!(got[0]["event"]["skipped"], 2);
    assert_eq!(ids(&read)[1..], ["c", "d"]);
}
