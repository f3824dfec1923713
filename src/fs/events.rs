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
            let notice = lagged_line(oldest - self.next, Timestamp::now(), store.namespace());
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
