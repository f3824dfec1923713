//! The `events` file: a stream of the journal's lines, one JSON object each, read through
//! a cursor that each open handle keeps (the next sequence number to send, and the unsent
//! end of a line a short read cut). The kernel's offset means nothing here: every read
//! continues where the handle's last one stopped, as on a pipe.
//!
//! A read takes as many whole lines as fit (a line longer than the read is cut, its
//! tail sent first by the next read), in one short read transaction that holds nothing
//! once it returns, so no reader can slow a writer. A reader behind the kept window is
//! moved to the oldest kept event and told so in one `/ctrfs/lagged` line first.

use crate::model::event::lagged_line;
use crate::model::Timestamp;
use crate::store::{JournalBounds, Store, StoreRead};

use super::Result;

/// One open handle's place in the stream.
#[derive(Debug)]
pub struct Cursor {
    /// The sequence number of the next event to send.
    next: u64,
    /// The bytes of a line already begun and not yet sent.
    tail: Vec<u8>,
}

impl Cursor {
    /// A cursor at the oldest kept event, where every reader starts.
    pub fn at_oldest(store: &Store) -> Result<Self> {
        let bounds = store.read()?.journal_bounds()?;
        Ok(Cursor { next: bounds.oldest, tail: Vec::new() })
    }

    /// Whether a read would return something now (a lag notice counts).
    pub fn has_unread(&self, store: &Store) -> Result<bool> {
        Ok(!self.tail.is_empty() || self.next < store.read()?.journal_bounds()?.next)
    }

    /// Up to `size` bytes of the stream; empty at its end.
    pub fn read(&mut self, store: &Store, size: usize) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        if self.send_tail(&mut out, size) {
            return Ok(out);
        }
        let reader = store.read()?;
        let JournalBounds { oldest, .. } = reader.journal_bounds()?;
        if self.next < oldest {
            let notice = lagged_line(oldest - self.next, Timestamp::now());
            if !out.is_empty() && out.len() + notice.len() + 1 > size {
                return Ok(out);
            }
            self.next = oldest;
            if self.push_line(&mut out, size, &notice) {
                return Ok(out);
            }
        }
        let mut cut = false;
        reader.for_each_event_from(self.next, &mut |seq, record| {
            self.next = seq + 1;
            cut = self.push_line(&mut out, size, record);
            !cut && out.len() < size
        })?;
        Ok(out)
    }

    /// Sends what is left of a cut line; `true` when the read is full.
    fn send_tail(&mut self, out: &mut Vec<u8>, size: usize) -> bool {
        if self.tail.is_empty() {
            return false;
        }
        let n = self.tail.len().min(size);
        out.extend(self.tail.drain(..n));
        !self.tail.is_empty() || out.len() >= size
    }

    /// Adds `record` and its newline when it fits; when nothing was read yet, cuts it and
    /// keeps the rest. `true` when the read is full (the line did not fit, or was cut).
    fn push_line(&mut self, out: &mut Vec<u8>, size: usize, record: &[u8]) -> bool {
        let line_len = record.len() + 1;
        if out.len() + line_len <= size {
            out.extend_from_slice(record);
            out.push(b'\n');
            return false;
        }
        if out.is_empty() {
            let mut line = Vec::with_capacity(line_len);
            line.extend_from_slice(record);
            line.push(b'\n');
            self.tail = line.split_off(size);
            out.extend_from_slice(&line);
        } else {
            // Sent next time, whole: put the cursor back on it.
            self.next -= 1;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        let store = Store::open_with(&dir.path().join("db"), StoreOptions { events_kept: 2 }).unwrap();
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
}
