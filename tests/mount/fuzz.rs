//! A model-based fuzzer: random sequences of file operations run against the mount and
//! against a small in-memory model of the contract in docs/interface.md, and every result
//! is compared: bytes read, sizes, listings and errnos.
//!
//! The model covers containers (`mkdir`/`rmdir`, their `labels` and `runtime` files, label
//! extended attributes, temporary files renamed onto fields), image directories (nesting,
//! `ENOTEMPTY`) and up to three open files at once, with the odd cases: partial writes,
//! writes at offsets, `O_APPEND`/`O_TRUNC`/in-place mixes, `ftruncate` shorter and longer,
//! `truncate` by path, two handles on one file, reads through a writer, `fsync`, a
//! container removed under an open file and made again.
//!
//! Knobs: `CTRFS_FUZZ_CASES` (default 256, a few seconds), `CTRFS_FUZZ_SEED` (replay).
//! A failure is shrunk to a minimal sequence and appended to
//! `tests/mount/fuzz.proptest-regressions`, which every run replays first.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;
use serde_json::json;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};

use crate::common::*;

const CONTAINERS: usize = 2;
const TEMPS: usize = 2;
const SLOTS: usize = 3;
const IMAGE_DIRS: [&str; 3] = ["p", "p/q", "r"];
const KEYS: [&str; 3] = ["a", "b", "c"];
/// Write chunks: label lines whole and in pieces, bad lines, one-line values, newlines.
const CHUNKS: [&[u8]; 16] = [
    b"a=1\n", b"b=2\n", b"a=\n", b"c=3", b"\n", b"=x\n", b"bad\n", b"a=9", b"crun\n", b"runc",
    b"x\ty\n", b"b", b"=5\n", b"\n\n", b"c=\n", b"",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Field {
    Labels,
    Runtime,
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::Labels => "labels",
            Field::Runtime => "runtime",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpenMode {
    Read,
    /// `>`: `O_RDWR | O_CREAT | O_TRUNC`.
    Truncate,
    /// `>>`: `O_RDWR | O_CREAT | O_APPEND`.
    Append,
    /// `O_RDWR` alone: positional edits of the current content.
    InPlace,
}

#[derive(Debug, Clone)]
enum Op {
    Mkdir(usize),
    Rmdir(usize),
    ListContainers,
    ListContainer(usize),
    Open { slot: usize, c: usize, field: Field, mode: OpenMode },
    Write { slot: usize, chunk: usize },
    WriteAt { slot: usize, offset: u64, chunk: usize },
    ReadHandle(usize),
    Ftruncate { slot: usize, len: u64 },
    Fsync(usize),
    Close(usize),
    ReadPath(usize, Field),
    Stat(usize, Field),
    TruncatePath(usize, Field, u64),
    Remove(usize, Field),
    SetXattr { c: usize, key: usize, value: u8, flags: i32 },
    GetXattr(usize, usize),
    RemoveXattr(usize, usize),
    ListXattr(usize),
    TempPut { c: usize, t: usize, chunks: Vec<usize> },
    TempRead(usize, usize),
    TempRename { c: usize, t: usize, field: Field },
    RenameField(usize, Field),
    MkdirImage(usize),
    RmdirImage(usize),
    ListImages,
}

fn op() -> impl Strategy<Value = Op> {
    let c = 0..CONTAINERS;
    let slot = 0..SLOTS;
    let chunk = 0..CHUNKS.len();
    let field = prop_oneof![Just(Field::Labels), Just(Field::Runtime)];
    let mode = prop_oneof![Just(OpenMode::Read), Just(OpenMode::Truncate), Just(OpenMode::Append), Just(OpenMode::InPlace)];
    let flags = prop_oneof![Just(0), Just(libc::XATTR_CREATE), Just(libc::XATTR_REPLACE)];
    prop_oneof![
        3 => c.clone().prop_map(Op::Mkdir),
        1 => c.clone().prop_map(Op::Rmdir),
        1 => Just(Op::ListContainers),
        2 => c.clone().prop_map(Op::ListContainer),
        6 => (slot.clone(), c.clone(), field.clone(), mode).prop_map(|(slot, c, field, mode)| Op::Open { slot, c, field, mode }),
        10 => (slot.clone(), chunk.clone()).prop_map(|(slot, chunk)| Op::Write { slot, chunk }),
        2 => (slot.clone(), 0..12u64, chunk.clone()).prop_map(|(slot, offset, chunk)| Op::WriteAt { slot, offset, chunk }),
        2 => slot.clone().prop_map(Op::ReadHandle),
        2 => (slot.clone(), 0..10u64).prop_map(|(slot, len)| Op::Ftruncate { slot, len }),
        2 => slot.clone().prop_map(Op::Fsync),
        4 => slot.clone().prop_map(Op::Close),
        3 => (c.clone(), field.clone()).prop_map(|(c, f)| Op::ReadPath(c, f)),
        2 => (c.clone(), field.clone()).prop_map(|(c, f)| Op::Stat(c, f)),
        1 => (c.clone(), field.clone(), prop_oneof![Just(0u64), Just(3u64)]).prop_map(|(c, f, n)| Op::TruncatePath(c, f, n)),
        1 => (c.clone(), field.clone()).prop_map(|(c, f)| Op::Remove(c, f)),
        2 => (c.clone(), 0..KEYS.len(), 1..3u8, flags).prop_map(|(c, key, value, flags)| Op::SetXattr { c, key, value, flags }),
        1 => (c.clone(), 0..KEYS.len()).prop_map(|(c, k)| Op::GetXattr(c, k)),
        1 => (c.clone(), 0..KEYS.len()).prop_map(|(c, k)| Op::RemoveXattr(c, k)),
        1 => c.clone().prop_map(Op::ListXattr),
        2 => (c.clone(), 0..TEMPS, prop::collection::vec(chunk, 0..4)).prop_map(|(c, t, chunks)| Op::TempPut { c, t, chunks }),
        1 => (c.clone(), 0..TEMPS).prop_map(|(c, t)| Op::TempRead(c, t)),
        2 => (c.clone(), 0..TEMPS, field.clone()).prop_map(|(c, t, field)| Op::TempRename { c, t, field }),
        1 => (c, field).prop_map(|(c, f)| Op::RenameField(c, f)),
        1 => (0..IMAGE_DIRS.len()).prop_map(Op::MkdirImage),
        1 => (0..IMAGE_DIRS.len()).prop_map(Op::RmdirImage),
        1 => Just(Op::ListImages),
    ]
}

/// What one operation gave; the model predicts the same.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Done,
    Errno(String),
    Bytes(String),
    Size(u64),
    Names(Vec<String>),
    /// An operation whose result the contract leaves open (on a file whose container was
    /// removed); only its effect on the state is checked, by later operations.
    Any,
}

fn errno(e: i32) -> Outcome {
    Outcome::Errno(errno_name(e))
}

fn from_io<T>(r: io::Result<T>, ok: impl FnOnce(T) -> Outcome) -> Outcome {
    match r {
        Ok(v) => ok(v),
        Err(e) => errno(e.raw_os_error().unwrap_or(0)),
    }
}

// ---------------------------------------------------------------------------------------
// The model.

/// A container's fields as the contract defines them.
#[derive(Debug, Clone, Default, PartialEq)]
struct Record {
    labels: BTreeMap<String, String>,
    runtime: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Labels(BTreeMap<String, String>),
    Runtime(Option<String>),
}

impl Record {
    fn get(&self, field: Field) -> Value {
        match field {
            Field::Labels => Value::Labels(self.labels.clone()),
            Field::Runtime => Value::Runtime(self.runtime.clone()),
        }
    }

    fn set(&mut self, value: Value) {
        match value {
            Value::Labels(l) => self.labels = l,
            Value::Runtime(r) => self.runtime = r,
        }
    }

    /// The file's bytes, `None` when the field has no value (no file).
    fn render(&self, field: Field) -> Option<Vec<u8>> {
        match field {
            Field::Labels if self.labels.is_empty() => None,
            Field::Labels => Some(self.labels.iter().map(|(k, v)| format!("{k}={v}\n")).collect::<String>().into_bytes()),
            Field::Runtime => self.runtime.as_ref().map(|r| format!("{r}\n").into_bytes()),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Edit {
    Replace(Value),
    Merge(Vec<(String, Option<String>)>),
}

/// A label line's edit: `Ok(None)` for an empty line, `Err` for a refused one.
fn label_line(line: &[u8]) -> Result<Option<(String, Option<String>)>, ()> {
    let line = std::str::from_utf8(line).map_err(drop)?;
    let line = line.strip_suffix('\r').unwrap_or(line);
    if line.is_empty() {
        return Ok(None);
    }
    let (key, value) = line.split_once('=').ok_or(())?;
    if key.is_empty() || line.contains('\0') {
        return Err(());
    }
    Ok(Some((key.to_owned(), (!value.is_empty()).then(|| value.to_owned()))))
}

/// The edits of `text`'s lines; with `complete` false a last line without its newline is
/// left out (more bytes may follow).
fn label_edits(text: &[u8], complete: bool) -> Result<Vec<(String, Option<String>)>, ()> {
    let mut lines: Vec<&[u8]> = text.split(|b| *b == b'\n').collect();
    let tail = lines.pop().unwrap_or_default();
    if complete {
        lines.push(tail);
    }
    let mut edits = Vec::new();
    for line in lines {
        edits.extend(label_line(line)?);
    }
    Ok(edits)
}

fn replaced(edits: &[(String, Option<String>)]) -> Value {
    let mut labels = BTreeMap::new();
    for (k, v) in edits {
        match v {
            Some(v) => labels.insert(k.clone(), v.clone()),
            None => labels.remove(k),
        };
    }
    Value::Labels(labels)
}

/// A complete one-line value (a single trailing newline stripped).
fn runtime_value(doc: &[u8]) -> Result<Value, ()> {
    let doc = doc.strip_suffix(b"\n").unwrap_or(doc);
    let text = std::str::from_utf8(doc).map_err(drop)?;
    if text.chars().any(char::is_control) || text.len() > 255 {
        return Err(());
    }
    Ok(Value::Runtime((!text.is_empty()).then(|| text.to_owned())))
}

#[derive(Debug, Clone)]
struct ModelHandle {
    c: usize,
    /// The container's incarnation at open: a handle whose container was removed is stale.
    generation: u64,
    field: Field,
    mode: OpenMode,
    /// The file's bytes at open, and its value then (what a refusal puts back).
    base: Vec<u8>,
    before: Value,
    data: Vec<u8>,
    /// The descriptor's file offset (sequential writes go there).
    pos: u64,
    /// Opened with `O_APPEND`: every write goes to the end of the file as it is shown,
    /// whatever the offset, also once an `ftruncate` made the handle a replacement.
    o_append: bool,
    dirty: bool,
    refused: bool,
    /// The last whole value this handle committed (merged label lines are never put back).
    committed: Option<Value>,
    /// Label edits of complete lines already merged (`>>`).
    merged: usize,
}

impl ModelHandle {
    fn shown(&self) -> Vec<u8> {
        match self.mode {
            OpenMode::Append => [self.base.as_slice(), &self.data].concat(),
            _ => self.data.clone(),
        }
    }

    /// The change a write completes: `Ok(None)` while incomplete, `Err` when refused.
    fn judge_write(&mut self) -> Result<Option<Edit>, ()> {
        match (self.mode, self.field) {
            (OpenMode::InPlace, _) | (OpenMode::Read, _) => Ok(None),
            (mode, Field::Labels) => {
                let edits = label_edits(&self.data, false)?;
                if !self.data.ends_with(b"\n") {
                    return Ok(None);
                }
                if mode == OpenMode::Append {
                    if edits.len() == self.merged {
                        return Ok(None);
                    }
                    let new = edits[self.merged..].to_vec();
                    self.merged = edits.len();
                    return Ok(Some(Edit::Merge(new)));
                }
                Ok(Some(Edit::Replace(replaced(&edits))))
            }
            (_, Field::Runtime) => {
                let doc = self.shown();
                let newlines = doc.iter().filter(|b| **b == b'\n').count();
                match newlines {
                    0 => Ok(None),
                    1 if doc.ends_with(b"\n") => runtime_value(&doc).map(|v| Some(Edit::Replace(v))),
                    _ => Err(()),
                }
            }
        }
    }

    /// The change the handle asks for as a complete value (at close or fsync).
    fn pending(&self) -> Result<Edit, ()> {
        match (self.mode, self.field) {
            (OpenMode::Append, Field::Labels) => {
                let edits = label_edits(&self.data, true)?;
                Ok(Edit::Merge(edits[self.merged.min(edits.len())..].to_vec()))
            }
            (_, Field::Labels) => Ok(Edit::Replace(replaced(&label_edits(&self.data, true)?))),
            (_, Field::Runtime) => runtime_value(&self.shown()).map(Edit::Replace),
        }
    }

    /// Whether a refusal puts the value from before the open back (label lines merged with
    /// `>>` were each acknowledged on their own and stay).
    fn restores(&self) -> bool {
        self.committed.is_some() && !(self.field == Field::Labels && self.mode == OpenMode::Append)
    }
}

#[derive(Debug, Default)]
struct Model {
    containers: BTreeMap<usize, (u64, Record)>,
    temps: BTreeMap<(usize, usize), Vec<u8>>,
    images: BTreeSet<usize>,
    handles: BTreeMap<usize, ModelHandle>,
    generation: u64,
}

/// What the mount must show after an operation: a value put back by a release that runs
/// after `close()` returned (a refusal final only then).
struct Settle {
    c: usize,
    field: Field,
}

impl Model {
    fn record(&mut self, c: usize) -> Option<&mut Record> {
        self.containers.get_mut(&c).map(|(_, r)| r)
    }

    /// The files that exist for `stat`: fields with a value, and fields being written.
    fn files_shown(&self) -> BTreeSet<(usize, Field)> {
        let mut shown = BTreeSet::new();
        for (c, (_, r)) in &self.containers {
            for f in [Field::Labels, Field::Runtime] {
                if r.render(f).is_some() || self.is_writing(*c, f) {
                    shown.insert((*c, f));
                }
            }
        }
        shown
    }

    /// Whether a descriptor open for writing `c`'s `f` is not yet closed.
    fn is_writing(&self, c: usize, f: Field) -> bool {
        self.handles.values().any(|h| h.c == c && h.field == f && h.mode != OpenMode::Read && self.live(h))
    }

    fn live(&self, h: &ModelHandle) -> bool {
        self.containers.get(&h.c).is_some_and(|(g, _)| *g == h.generation)
    }

    fn apply(&mut self, c: usize, edit: Edit) -> Value {
        let record = self.record(c).expect("a live handle's container");
        match edit {
            Edit::Replace(v) => record.set(v),
            Edit::Merge(edits) => {
                for (k, v) in edits {
                    match v {
                        Some(v) => record.labels.insert(k, v),
                        None => record.labels.remove(&k),
                    };
                }
            }
        }
        record.get(Field::Labels)
    }

    /// Commits a handle's edit and records it on the handle: a whole value is what a
    /// refusal may later put back; merged label lines never are.
    fn commit(&mut self, slot: usize, edit: Edit) {
        let c = self.handles[&slot].c;
        self.apply(c, edit.clone());
        let h = self.handles.get_mut(&slot).unwrap();
        h.dirty = false;
        if let Edit::Replace(v) = edit {
            h.committed = Some(v);
        }
    }

    /// A refusal: the value from before the open goes back while it is still this
    /// handle's.
    fn refuse(&mut self, slot: usize) {
        let h = self.handles[&slot].clone();
        if h.restores() {
            let record = self.record(h.c).unwrap();
            if Some(record.get(h.field)) == h.committed {
                record.set(h.before.clone());
            }
        }
        let h = self.handles.get_mut(&slot).unwrap();
        h.refused = true;
        h.dirty = false;
    }

    fn step(&mut self, op: &Op) -> (Outcome, Option<Settle>) {
        let mut settle = None;
        let outcome = match op {
            Op::Mkdir(c) => {
                if self.containers.contains_key(c) {
                    errno(libc::EEXIST)
                } else {
                    self.generation += 1;
                    self.containers.insert(*c, (self.generation, Record::default()));
                    Outcome::Done
                }
            }
            Op::Rmdir(c) => {
                if self.containers.remove(c).is_some() {
                    self.temps.retain(|(tc, _), _| tc != c);
                    Outcome::Done
                } else {
                    errno(libc::ENOENT)
                }
            }
            Op::ListContainers => Outcome::Names(self.containers.keys().map(|c| format!("c{c}")).collect()),
            Op::ListContainer(c) => match self.containers.get(c) {
                None => errno(libc::ENOENT),
                Some((_, r)) => Outcome::Names(
                    [Field::Labels, Field::Runtime].into_iter().filter(|f| r.render(*f).is_some()).map(|f| f.name().to_owned()).collect(),
                ),
            },
            Op::Open { slot, c, field, mode } => {
                if self.handles.contains_key(slot) {
                    return (Outcome::Any, None); // the runner skips it
                }
                let Some((generation, record)) = self.containers.get(c) else { return (errno(libc::ENOENT), None) };
                let (generation, record) = (*generation, record.clone());
                let rendered = record.render(*field);
                let creating = rendered.is_none() && self.is_writing(*c, *field);
                if matches!(mode, OpenMode::Read | OpenMode::InPlace) && rendered.is_none() && !(creating && *mode == OpenMode::InPlace) {
                    return (errno(libc::ENOENT), None);
                }
                let base = rendered.unwrap_or_default();
                let data = if *mode == OpenMode::InPlace { base.clone() } else { Vec::new() };
                let h = ModelHandle {
                    c: *c,
                    generation,
                    field: *field,
                    mode: *mode,
                    before: record.get(*field),
                    base,
                    data,
                    pos: 0,
                    o_append: *mode == OpenMode::Append,
                    dirty: *mode == OpenMode::Truncate,
                    refused: false,
                    committed: None,
                    merged: 0,
                };
                self.handles.insert(*slot, h);
                Outcome::Done
            }
            Op::Write { slot, chunk } | Op::WriteAt { slot, chunk, .. } => {
                let offset = match op {
                    Op::WriteAt { offset, .. } => Some(*offset),
                    _ => None,
                };
                self.write(*slot, CHUNKS[*chunk], offset)
            }
            Op::ReadHandle(slot) => match self.handles.get(slot) {
                None => Outcome::Any,
                Some(h) if !self.live(h) => Outcome::Any,
                Some(h) if h.mode == OpenMode::Read => Outcome::Bytes(text(&h.base)),
                Some(h) => Outcome::Bytes(text(&h.shown())),
            },
            Op::Ftruncate { slot, len } => self.ftruncate(*slot, *len),
            Op::Fsync(slot) => self.fsync(*slot),
            Op::Close(slot) => {
                let (outcome, restore) = self.close(*slot);
                settle = restore;
                outcome
            }
            Op::ReadPath(c, f) => match self.containers.get(c).map(|(_, r)| r.render(*f)) {
                None | Some(None) => errno(libc::ENOENT),
                Some(Some(bytes)) => Outcome::Bytes(text(&bytes)),
            },
            Op::Stat(c, f) => match self.containers.get(c).map(|(_, r)| r.render(*f)) {
                // A file being created is there, empty, before its first write.
                Some(None) if self.is_writing(*c, *f) => Outcome::Size(0),
                None | Some(None) => errno(libc::ENOENT),
                Some(Some(bytes)) => Outcome::Size(bytes.len() as u64),
            },
            Op::TruncatePath(c, f, len) if self.is_writing(*c, *f) && self.record(*c).is_some_and(|r| r.render(*f).is_none()) => {
                // The empty file being created: already empty.
                if *len == 0 { Outcome::Done } else { errno(libc::EINVAL) }
            }
            Op::TruncatePath(c, f, len) => match self.containers.get_mut(c).map(|(_, r)| r) {
                None => errno(libc::ENOENT),
                Some(r) if r.render(*f).is_none() => errno(libc::ENOENT),
                Some(_) if *len != 0 => errno(libc::EINVAL),
                Some(r) => {
                    r.set(match f {
                        Field::Labels => Value::Labels(BTreeMap::new()),
                        Field::Runtime => Value::Runtime(None),
                    });
                    Outcome::Done
                }
            },
            Op::Remove(c, f) => match self.containers.get_mut(c).map(|(_, r)| r) {
                Some(r) if r.render(*f).is_some() => {
                    r.set(match f {
                        Field::Labels => Value::Labels(BTreeMap::new()),
                        Field::Runtime => Value::Runtime(None),
                    });
                    Outcome::Done
                }
                _ => errno(libc::ENOENT),
            },
            Op::SetXattr { c, key, value, flags } => match self.record(*c) {
                None => errno(libc::ENOENT),
                Some(r) => {
                    let key = KEYS[*key].to_owned();
                    let exists = r.labels.contains_key(&key);
                    if *flags == libc::XATTR_CREATE && exists {
                        errno(libc::EEXIST)
                    } else if *flags == libc::XATTR_REPLACE && !exists {
                        errno(libc::ENODATA)
                    } else {
                        r.labels.insert(key, value.to_string());
                        Outcome::Done
                    }
                }
            },
            Op::GetXattr(c, key) => match self.record(*c) {
                None => errno(libc::ENOENT),
                Some(r) => match r.labels.get(KEYS[*key]) {
                    Some(v) => Outcome::Bytes(v.clone()),
                    None => errno(libc::ENODATA),
                },
            },
            Op::RemoveXattr(c, key) => match self.record(*c) {
                None => errno(libc::ENOENT),
                Some(r) => match r.labels.remove(KEYS[*key]) {
                    Some(_) => Outcome::Done,
                    None => errno(libc::ENODATA),
                },
            },
            Op::ListXattr(c) => match self.record(*c) {
                None => errno(libc::ENOENT),
                Some(r) => Outcome::Names(r.labels.keys().map(|k| format!("user.{k}")).collect()),
            },
            Op::TempPut { c, t, chunks } => {
                if !self.containers.contains_key(c) {
                    errno(libc::ENOENT)
                } else {
                    self.temps.insert((*c, *t), chunks.iter().flat_map(|i| CHUNKS[*i].iter().copied()).collect());
                    Outcome::Done
                }
            }
            Op::TempRead(c, t) => match self.temps.get(&(*c, *t)) {
                None => errno(libc::ENOENT),
                Some(bytes) => Outcome::Bytes(text(bytes)),
            },
            Op::TempRename { c, t, field } => match self.temps.get(&(*c, *t)).cloned() {
                None => errno(libc::ENOENT),
                Some(bytes) => {
                    let value = match field {
                        Field::Labels => label_edits(&bytes, true).map(|e| replaced(&e)),
                        Field::Runtime => {
                            let body = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
                            if body.contains(&b'\n') {
                                Err(())
                            } else {
                                runtime_value(&bytes)
                            }
                        }
                    };
                    match value {
                        Err(()) => errno(libc::EINVAL),
                        Ok(v) => {
                            self.record(*c).unwrap().set(v);
                            self.temps.remove(&(*c, *t));
                            Outcome::Done
                        }
                    }
                }
            },
            Op::RenameField(c, f) => match self.containers.get(c).map(|(_, r)| r.render(*f)) {
                Some(None) if self.is_writing(*c, *f) => errno(libc::EPERM),
                None | Some(None) => errno(libc::ENOENT),
                Some(Some(_)) => errno(libc::EPERM),
            },
            Op::MkdirImage(i) => {
                let name = IMAGE_DIRS[*i];
                let parent = name.rsplit_once('/').map(|(p, _)| p);
                if self.images.contains(i) {
                    errno(libc::EEXIST)
                } else if parent.is_some_and(|p| !self.images.iter().any(|j| IMAGE_DIRS[*j] == p)) {
                    errno(libc::ENOENT)
                } else {
                    self.images.insert(*i);
                    Outcome::Done
                }
            }
            Op::RmdirImage(i) => {
                let name = IMAGE_DIRS[*i];
                if !self.images.contains(i) {
                    errno(libc::ENOENT)
                } else if self.images.iter().any(|j| IMAGE_DIRS[*j].starts_with(&format!("{name}/"))) {
                    errno(libc::ENOTEMPTY)
                } else {
                    self.images.remove(i);
                    Outcome::Done
                }
            }
            Op::ListImages => Outcome::Names(
                self.images.iter().map(|i| IMAGE_DIRS[*i]).filter(|n| !n.contains('/')).map(str::to_owned).collect(),
            ),
        };
        (outcome, settle)
    }

    fn write(&mut self, slot: usize, bytes: &[u8], offset: Option<u64>) -> Outcome {
        let Some(h) = self.handles.get(&slot).cloned() else { return Outcome::Any };
        if !self.live(&h) {
            return Outcome::Any;
        }
        if h.mode == OpenMode::Read {
            return errno(libc::EBADF);
        }
        if bytes.is_empty() {
            // write(2) of nothing never reaches the filesystem.
            return Outcome::Done;
        }
        if h.refused {
            return errno(libc::EINVAL);
        }
        let h = self.handles.get_mut(&slot).unwrap();
        let at = match h.o_append {
            true => h.data.len(),
            false => offset.unwrap_or(h.pos) as usize,
        };
        let sequential = at == h.data.len();
        if h.data.len() < at + bytes.len() {
            h.data.resize(at + bytes.len(), 0);
        }
        h.data[at..at + bytes.len()].copy_from_slice(bytes);
        if offset.is_none() {
            h.pos = (at + bytes.len()) as u64;
        }
        h.dirty = true;
        if !sequential {
            h.merged = 0;
        }
        match h.judge_write() {
            Err(()) => {
                self.refuse(slot);
                errno(libc::EINVAL)
            }
            Ok(None) => Outcome::Done,
            Ok(Some(edit)) => {
                self.commit(slot, edit);
                Outcome::Done
            }
        }
    }

    fn ftruncate(&mut self, slot: usize, len: u64) -> Outcome {
        let Some(h) = self.handles.get(&slot).cloned() else { return Outcome::Any };
        if !self.live(&h) {
            return Outcome::Any;
        }
        if h.mode == OpenMode::Read {
            return errno(libc::EINVAL);
        }
        if h.refused {
            return errno(libc::EINVAL);
        }
        let shown = h.shown();
        if len as usize > shown.len() {
            return errno(libc::EINVAL);
        }
        let h = self.handles.get_mut(&slot).unwrap();
        if h.mode == OpenMode::Append {
            h.mode = OpenMode::Truncate;
            h.data = shown;
        }
        h.data.truncate(len as usize);
        h.merged = 0;
        h.dirty = true;
        Outcome::Done
    }

    /// Commits what the handle holds; `Err` is a refusal not yet final.
    fn flush(&mut self, slot: usize) -> Result<(), ()> {
        let h = self.handles[&slot].clone();
        if !h.dirty || h.refused {
            return Ok(());
        }
        let edit = h.pending()?;
        self.commit(slot, edit);
        if let Edit::Merge(_) = h.pending().unwrap() {
            // The complete lines stay merged; an unfinished last line is merged again
            // once the rest of it comes.
            let complete = label_edits(&h.data, false).map(|e| e.len()).unwrap_or(0);
            self.handles.get_mut(&slot).unwrap().merged = complete;
        }
        Ok(())
    }

    fn fsync(&mut self, slot: usize) -> Outcome {
        let Some(h) = self.handles.get(&slot).cloned() else { return Outcome::Any };
        if !self.live(&h) {
            return Outcome::Any;
        }
        if h.refused {
            return errno(libc::EINVAL);
        }
        match self.flush(slot) {
            Ok(()) => Outcome::Done,
            Err(()) => errno(libc::EINVAL),
        }
    }

    fn close(&mut self, slot: usize) -> (Outcome, Option<Settle>) {
        let Some(h) = self.handles.get(&slot).cloned() else { return (Outcome::Any, None) };
        if !self.live(&h) {
            self.handles.remove(&slot);
            return (Outcome::Any, None);
        }
        let outcome = if h.refused {
            errno(libc::EINVAL)
        } else {
            match self.flush(slot) {
                Ok(()) => Outcome::Done,
                Err(()) => {
                    // Final at release, which runs after close() returns: the value
                    // from before the open may be put back then.
                    self.refuse(slot);
                    self.handles.remove(&slot);
                    return (errno(libc::EINVAL), Some(Settle { c: h.c, field: h.field }));
                }
            }
        };
        self.handles.remove(&slot);
        (outcome, None)
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

// ---------------------------------------------------------------------------------------
// The mount.

struct Real<'a> {
    fx: &'a MountFixture,
    handles: BTreeMap<usize, File>,
}

impl Real<'_> {
    fn container(&self, c: usize) -> std::path::PathBuf {
        self.fx.path(&format!("containers/c{c}"))
    }

    fn file(&self, c: usize, f: Field) -> std::path::PathBuf {
        self.container(c).join(f.name())
    }

    fn step(&mut self, op: &Op) -> Outcome {
        match op {
            Op::Mkdir(c) => from_io(fs::create_dir(self.container(*c)), |_| Outcome::Done),
            Op::Rmdir(c) => from_io(fs::remove_dir(self.container(*c)), |_| Outcome::Done),
            Op::ListContainers => names(&self.fx.path("containers")),
            Op::ListContainer(c) => names(&self.container(*c)),
            Op::Open { slot, c, field, mode } => {
                if self.handles.contains_key(slot) {
                    return Outcome::Any;
                }
                let mut opts = OpenOptions::new();
                match mode {
                    OpenMode::Read => opts.read(true),
                    OpenMode::Truncate => opts.read(true).write(true).create(true).truncate(true),
                    OpenMode::Append => opts.read(true).append(true).create(true),
                    OpenMode::InPlace => opts.read(true).write(true),
                };
                from_io(opts.open(self.file(*c, *field)), |file| {
                    self.handles.insert(*slot, file);
                    Outcome::Done
                })
            }
            Op::Write { slot, chunk } => self.with_handle(*slot, |f| {
                from_io((&*f).write(CHUNKS[*chunk]), |n| full(n, CHUNKS[*chunk]))
            }),
            Op::WriteAt { slot, offset, chunk } => self.with_handle(*slot, |f| {
                from_io(f.write_at(CHUNKS[*chunk], *offset), |n| full(n, CHUNKS[*chunk]))
            }),
            Op::ReadHandle(slot) => self.with_handle(*slot, |f| {
                let mut buf = vec![0u8; 1 << 16];
                from_io(f.read_at(&mut buf, 0), |n| Outcome::Bytes(text(&buf[..n])))
            }),
            Op::Ftruncate { slot, len } => self.with_handle(*slot, |f| from_io(f.set_len(*len), |_| Outcome::Done)),
            Op::Fsync(slot) => self.with_handle(*slot, |f| from_io(f.sync_all(), |_| Outcome::Done)),
            Op::Close(slot) => match self.handles.remove(slot) {
                None => Outcome::Any,
                Some(f) => match close_checked(f) {
                    Ok(()) => Outcome::Done,
                    Err(e) => errno(e),
                },
            },
            Op::ReadPath(c, f) => from_io(fs::read(self.file(*c, *f)), |b| Outcome::Bytes(text(&b))),
            Op::Stat(c, f) => from_io(fs::metadata(self.file(*c, *f)), |m| Outcome::Size(m.len())),
            Op::TruncatePath(c, f, len) => {
                let path = self.file(*c, *f);
                let cpath = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
                // SAFETY: a valid NUL-terminated path.
                let rc = unsafe { libc::truncate(cpath.as_ptr(), *len as libc::off_t) };
                if rc == 0 { Outcome::Done } else { errno(io::Error::last_os_error().raw_os_error().unwrap_or(0)) }
            }
            Op::Remove(c, f) => from_io(fs::remove_file(self.file(*c, *f)), |_| Outcome::Done),
            Op::SetXattr { c, key, value, flags } => from_io(
                set_xattr(&self.container(*c), &format!("user.{}", KEYS[*key]), value.to_string().as_bytes(), *flags),
                |_| Outcome::Done,
            ),
            Op::GetXattr(c, key) => {
                from_io(get_xattr(&self.container(*c), &format!("user.{}", KEYS[*key])), |v| Outcome::Bytes(text(&v)))
            }
            Op::RemoveXattr(c, key) => {
                from_io(remove_xattr(&self.container(*c), &format!("user.{}", KEYS[*key])), |_| Outcome::Done)
            }
            Op::ListXattr(c) => from_io(list_xattr(&self.container(*c)), |mut names| {
                names.sort();
                Outcome::Names(names)
            }),
            Op::TempPut { c, t, chunks } => {
                let bytes: Vec<u8> = chunks.iter().flat_map(|i| CHUNKS[*i].iter().copied()).collect();
                let path = self.container(*c).join(format!("tmp{t}"));
                match write_doc(&path, &bytes, Mode::Truncate) {
                    Ok(()) => Outcome::Done,
                    Err((_, e)) => errno(e),
                }
            }
            Op::TempRead(c, t) => from_io(fs::read(self.container(*c).join(format!("tmp{t}"))), |b| Outcome::Bytes(text(&b))),
            Op::TempRename { c, t, field } => {
                let dir = self.container(*c);
                from_io(fs::rename(dir.join(format!("tmp{t}")), dir.join(field.name())), |_| Outcome::Done)
            }
            Op::RenameField(c, f) => {
                let dir = self.container(*c);
                from_io(fs::rename(dir.join(f.name()), dir.join("moved")), |_| Outcome::Done)
            }
            Op::MkdirImage(i) => from_io(fs::create_dir(self.fx.path(&format!("images/{}", IMAGE_DIRS[*i]))), |_| Outcome::Done),
            Op::RmdirImage(i) => from_io(fs::remove_dir(self.fx.path(&format!("images/{}", IMAGE_DIRS[*i]))), |_| Outcome::Done),
            Op::ListImages => names(&self.fx.path("images")),
        }
    }

    fn with_handle(&mut self, slot: usize, f: impl FnOnce(&mut File) -> Outcome) -> Outcome {
        match self.handles.get_mut(&slot) {
            None => Outcome::Any,
            Some(file) => f(file),
        }
    }

    /// Closes every handle, removes every object: the mount as a new case expects it.
    fn reset(&mut self) {
        self.handles.clear();
        for entry in fs::read_dir(self.fx.path("containers")).unwrap() {
            let path = entry.unwrap().path();
            fs::remove_dir(&path).unwrap_or_else(|e| panic!("rmdir {}: {e}", path.display()));
        }
        for name in ["p/q", "p", "r"] {
            let _ = fs::remove_dir(self.fx.path(&format!("images/{name}")));
        }
        assert!(ls(&self.fx.path("containers")).is_empty() && ls(&self.fx.path("images")).is_empty());
    }
}

fn names(dir: &Path) -> Outcome {
    from_io(fs::read_dir(dir), |entries| {
        let mut names: Vec<String> = entries.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        Outcome::Names(names)
    })
}

fn full(n: usize, chunk: &[u8]) -> Outcome {
    if n == chunk.len() {
        Outcome::Done
    } else {
        Outcome::Bytes(format!("short write: {n} of {}", chunk.len()))
    }
}

/// Runs one sequence against both; the first difference fails the case.
fn run_case(fx: &MountFixture, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut model = Model::default();
    let mut real = Real { fx, handles: BTreeMap::new() };
    let result = (|| {
        for (i, op) in ops.iter().enumerate() {
            let before = model.files_shown();
            let (want, settle) = model.step(op);
            let got = real.step(op);
            if want != Outcome::Any && got != want {
                return Err(TestCaseError::fail(format!("op {i} {op:?}: the mount gave {got:?}, the model {want:?}")));
            }
            for (c, field) in before.difference(&model.files_shown()) {
                // Cleared by something other than an unlink (an empty value written or
                // renamed onto it, the last label removed): the kernel may show the name a
                // moment longer, until the daemon's notice makes it drop it.
                if model.containers.contains_key(c) && !matches!(op, Op::Remove(..)) {
                    let path = real.file(*c, *field);
                    if !settles(|| errno_of_path(&path) == Some(libc::ENOENT)) {
                        return Err(TestCaseError::fail(format!("op {i} {op:?}: {} never went: {:?}", path.display(), fs::metadata(&path))));
                    }
                }
            }
            if let Some(Settle { c, field }) = settle {
                // A refusal final at release puts a value back after close() returned.
                let want = model.containers.get(&c).and_then(|(_, r)| r.render(field)).map(|b| text(&b));
                let path = real.file(c, field);
                if !settles(|| fs::read(&path).ok().map(|b| text(&b)) == want) {
                    return Err(TestCaseError::fail(format!(
                        "op {i} {op:?}: {} never settled to {want:?}",
                        path.display()
                    )));
                }
            }
        }
        check_state(&model, &real, ops.len())
    })();
    real.reset();
    result
}

/// Whether `cond` holds within 5 s (polled: what it waits for happens on the daemon's
/// threads after the call returned).
fn settles(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        if cond() {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn errno_of_path(path: &Path) -> Option<i32> {
    fs::metadata(path).err().and_then(|e| e.raw_os_error())
}

/// After the sequence: every field of every container reads as the model says.
fn check_state(model: &Model, real: &Real, n: usize) -> Result<(), TestCaseError> {
    for c in 0..CONTAINERS {
        for f in [Field::Labels, Field::Runtime] {
            let want = model.containers.get(&c).and_then(|(_, r)| r.render(f)).map(|b| text(&b));
            let got = fs::read(real.file(c, f)).ok().map(|b| text(&b));
            if got != want {
                return Err(TestCaseError::fail(format!("after {n} ops c{c}/{}: the mount has {got:?}, the model {want:?}", f.name())));
            }
        }
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("CTRFS_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
}

#[test]
fn random_file_operations_agree_with_the_model_of_the_contract() {
    let fx = MountFixture::new();
    let mut config = Config::with_cases(cases());
    config.failure_persistence = Some(Box::new(FileFailurePersistence::Direct("tests/mount/fuzz.proptest-regressions")));
    config.max_shrink_iters = 2000;
    if let Some(seed) = std::env::var("CTRFS_FUZZ_SEED").ok().and_then(|v| v.parse::<u64>().ok()) {
        config.rng_algorithm = proptest::test_runner::RngAlgorithm::ChaCha;
        let mut runner = TestRunner::new_with_rng(config, proptest::test_runner::TestRng::from_seed(
            proptest::test_runner::RngAlgorithm::ChaCha,
            &seed_bytes(seed),
        ));
        report(runner.run(&prop::collection::vec(op(), 1..40), |ops| run_case(&fx, &ops)), &fx);
        return;
    }
    let mut runner = TestRunner::new(config);
    report(runner.run(&prop::collection::vec(op(), 1..40), |ops| run_case(&fx, &ops)), &fx);
}

fn seed_bytes(seed: u64) -> [u8; 32] {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes
}

fn report(result: Result<(), proptest::test_runner::TestError<Vec<Op>>>, fx: &MountFixture) {
    match result {
        Ok(()) => eprintln!("fuzz: {} cases agreed with the model", cases()),
        Err(e) => panic!("{e}\nlog:\n{}", fx.log()),
    }
}

// ---------------------------------------------------------------------------------------
// What the fuzzer found, each shrunk to a plain test (the seeds are in
// fuzz.proptest-regressions too).

/// `>>` creating a one-line field (found by the fuzzer: it was judged only at close, so a
/// shell's `echo crun >> runtime` was acknowledged before anything was committed).
#[test]
fn an_append_that_creates_a_field_commits_at_the_write_that_completes_it() {
    let mut fx = MountFixture::new();
    fs::create_dir(fx.path("containers/c")).unwrap();
    let runtime = fx.path("containers/c/runtime");
    let mut file = OpenOptions::new().append(true).create(true).open(&runtime).unwrap();
    file.write_all(b"crun\n").unwrap();
    assert_eq!(read(&runtime), "crun\n", "visible before close");
    let mut spec = OpenOptions::new().append(true).create(true).open(fx.path("containers/c/spec")).unwrap();
    spec.write_all(br#"{"ociVersion": "1.2.0"}"#).unwrap();
    fx.kill9_and_remount();
    drop((file, spec));
    assert_eq!(read(&runtime), "crun\n", "durable before close");
    assert_eq!(read_json(&fx.path("containers/c/spec"))["ociVersion"], json!("1.2.0"));
}

/// A refused descriptor refuses `ftruncate` too (found by the fuzzer: it answered success
/// and truncated nothing).
#[test]
fn ftruncate_through_a_refused_descriptor_is_refused_and_changes_nothing() {
    let fx = MountFixture::new();
    fs::create_dir(fx.path("containers/c")).unwrap();
    let labels = fx.path("containers/c/labels");
    put(&labels, "keep=1\n");
    let mut file = OpenOptions::new().read(true).write(true).truncate(true).open(&labels).unwrap();
    assert_eq!(errno_of(file.write_all(b"=x\n")), libc::EINVAL);
    assert_eq!(errno_of(file.set_len(0)), libc::EINVAL);
    assert_eq!(close_checked(file), Err(libc::EINVAL));
    assert_eq!(read(&labels), "keep=1\n");
}

/// An empty file renamed onto a field clears it; the kernel keeps the name cached under
/// the temporary file's inode, and opening it to write again was `ENOENT` (found by the
/// fuzzer).
#[test]
fn a_field_cleared_by_renaming_an_empty_file_onto_it_can_be_written_right_after() {
    let fx = MountFixture::new();
    fs::create_dir(fx.path("containers/c")).unwrap();
    put(&fx.path("containers/c/runtime"), "crun\n");
    // One process, no pause between the calls (a shell's separate commands leave the
    // kernel time to drop the name), and many rounds: it depends on what the kernel has
    // cached at the moment.
    let dir = fx.path("containers/c");
    for round in 0..100 {
        File::create(dir.join("tmp")).unwrap();
        fs::rename(dir.join("tmp"), dir.join("runtime")).unwrap();
        // Straight to the write: a read first makes the kernel look the name up afresh.
        let written = OpenOptions::new().write(true).create(true).truncate(true).open(dir.join("runtime"))
            .and_then(|mut f| f.write_all(format!("r{round}\n").as_bytes()));
        assert!(written.is_ok(), "round {round}: {written:?}");
        assert_eq!(read(&dir.join("runtime")), format!("r{round}\n"));
    }
}
