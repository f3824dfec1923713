//! A model-based fuzzer: random sequences of file operations run against the mount and
//! against a small in-memory model of the contract in docs/interface.md, and every result
//! is compared: bytes read, sizes, listings and errnos.
//!
//! The model covers containers and image directories (`mkdir`/`rmdir`, nesting and
//! `ENOTEMPTY`), their `labels`, `runtime` and `target` files, label extended attributes,
//! temporary files renamed onto fields, `info.json`, `rm` of a referenced blob (`EBUSY`),
//! and up to three open files at once, with the odd cases: partial writes, writes at
//! offsets, `O_APPEND`/`O_TRUNC`/in-place mixes, `ftruncate` shorter and longer, `truncate`
//! by path, two handles on one file, reads through a writer, `fsync`, and an object
//! removed under an open file and made again.
//!
//! Knobs: `CTRFS_FUZZ_CASES` (default 256, a few seconds), `CTRFS_FUZZ_SEED` (replay).
//! A failure is shrunk to a minimal sequence and its seed appended to
//! `tests/mount/fuzz.proptest-regressions`, which every run replays first; what it found
//! is kept as plain tests at the end of this file.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use serde_json::json;
use sha2::{Digest as _, Sha256};

use crate::common::*;

const CONTAINERS: usize = 2;
const IMAGE_DIRS: [&str; 3] = ["p", "p/q", "r"];
const TEMPS: usize = 2;
const SLOTS: usize = 3;
const KEYS: [&str; 3] = ["a", "b", "c"];
const CHUNK_CHOICES: usize = 16;

/// Label lines whole and in pieces, bad lines, one-line values, newlines.
const TEXT_CHUNKS: [&[u8]; 16] = [
    b"a=1\n", b"b=2\n", b"a=\n", b"c=3", b"\n", b"=x\n", b"bad\n", b"a=9", b"crun\n", b"runc",
    b"x\ty\n", b"b", b"=5\n", b"\n\n", b"c=\n", b"",
];

/// The blob every case may name in a `target` (stored once, before the first case).
const BLOB: &[u8] = b"a layer the fuzzer's targets name\n";

fn blob_hex() -> String {
    hex::encode(Sha256::digest(BLOB))
}

/// Descriptors whole and in pieces, invalid ones, whitespace and stray bytes.
static TARGET_CHUNKS: LazyLock<Vec<Vec<u8>>> = LazyLock::new(|| {
    let absent = "a".repeat(64);
    let here = json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": format!("sha256:{}", blob_hex()), "size": BLOB.len()});
    let elsewhere = json!({"mediaType": "application/x-fuzz", "digest": format!("sha256:{absent}"), "size": 7, "annotations": {"k": "v"}});
    let (here, elsewhere) = (here.to_string().into_bytes(), elsewhere.to_string().into_bytes());
    let no_media_type = json!({"digest": format!("sha256:{absent}"), "size": 7}).to_string().into_bytes();
    let negative = json!({"mediaType": "m", "digest": format!("sha256:{absent}"), "size": -1}).to_string().into_bytes();
    vec![
        here.clone(),
        here[..20].to_vec(),
        here[20..].to_vec(),
        elsewhere[..30].to_vec(),
        elsewhere[30..].to_vec(),
        [elsewhere.as_slice(), b"\n"].concat(),
        no_media_type,
        negative,
        b"\n".to_vec(),
        b" ".to_vec(),
        b"}".to_vec(),
        b"x".to_vec(),
        Vec::new(),
        here[..1].to_vec(),
        [here.as_slice(), b"\n"].concat(),
        elsewhere,
    ]
});

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Obj {
    C(usize),
    I(usize),
}

impl Obj {
    fn rel(self) -> String {
        match self {
            Obj::C(c) => format!("containers/c{c}"),
            Obj::I(i) => format!("images/{}", IMAGE_DIRS[i]),
        }
    }

    fn fields(self) -> [Field; 2] {
        match self {
            Obj::C(_) => [Field::Labels, Field::Runtime],
            Obj::I(_) => [Field::Target, Field::Labels],
        }
    }

    /// The image directory this one is nested in.
    fn parent(self) -> Option<Obj> {
        let Obj::I(i) = self else { return None };
        let (parent, _) = IMAGE_DIRS[i].rsplit_once('/')?;
        IMAGE_DIRS.iter().position(|n| *n == parent).map(Obj::I)
    }

    fn name(self) -> String {
        match self {
            Obj::C(c) => format!("c{c}"),
            Obj::I(i) => IMAGE_DIRS[i].rsplit('/').next().unwrap().to_owned(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Field {
    Labels,
    Runtime,
    Target,
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::Labels => "labels",
            Field::Runtime => "runtime",
            Field::Target => "target",
        }
    }

    fn chunk(self, i: usize) -> Vec<u8> {
        match self {
            Field::Target => TARGET_CHUNKS[i % TARGET_CHUNKS.len()].clone(),
            _ => TEXT_CHUNKS[i % TEXT_CHUNKS.len()].to_vec(),
        }
    }

    fn unset(self) -> Value {
        match self {
            Field::Labels => Value::Labels(BTreeMap::new()),
            Field::Runtime => Value::Runtime(None),
            Field::Target => Value::Target(None),
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
    Mkdir(Obj),
    Rmdir(Obj),
    ListRoot(&'static str),
    ListDir(Obj),
    StatInfo(Obj),
    Open { slot: usize, obj: Obj, field: Field, mode: OpenMode },
    Write { slot: usize, chunk: usize },
    WriteAt { slot: usize, offset: u64, chunk: usize },
    ReadHandle(usize),
    Ftruncate { slot: usize, len: u64 },
    Fsync(usize),
    Close(usize),
    ReadPath(Obj, Field),
    Stat(Obj, Field),
    TruncatePath(Obj, Field, u64),
    Remove(Obj, Field),
    SetXattr { obj: Obj, key: usize, value: u8, flags: i32 },
    GetXattr(Obj, usize),
    RemoveXattr(Obj, usize),
    ListXattr(Obj),
    TempPut { obj: Obj, t: usize, like: Field, chunks: Vec<usize> },
    TempRead(Obj, usize),
    TempRename { obj: Obj, t: usize, field: Field },
    RenameField(Obj, Field),
    RemoveBlob,
}

fn obj() -> impl Strategy<Value = Obj> + Clone {
    prop_oneof![(0..CONTAINERS).prop_map(Obj::C), (0..IMAGE_DIRS.len()).prop_map(Obj::I)]
}

fn obj_field() -> impl Strategy<Value = (Obj, Field)> + Clone {
    (obj(), 0..2usize).prop_map(|(o, k)| (o, o.fields()[k]))
}

fn op() -> impl Strategy<Value = Op> {
    let slot = 0..SLOTS;
    let chunk = 0..CHUNK_CHOICES;
    let mode = prop_oneof![Just(OpenMode::Read), Just(OpenMode::Truncate), Just(OpenMode::Append), Just(OpenMode::InPlace)];
    let flags = prop_oneof![Just(0), Just(libc::XATTR_CREATE), Just(libc::XATTR_REPLACE)];
    prop_oneof![
        1 => obj().prop_map(Op::Mkdir),
        1 => obj().prop_map(Op::Rmdir),
        1 => prop_oneof![Just("containers"), Just("images")].prop_map(Op::ListRoot),
        2 => obj().prop_map(Op::ListDir),
        1 => obj().prop_map(Op::StatInfo),
        6 => (slot.clone(), obj_field(), mode).prop_map(|(slot, (obj, field), mode)| Op::Open { slot, obj, field, mode }),
        10 => (slot.clone(), chunk.clone()).prop_map(|(slot, chunk)| Op::Write { slot, chunk }),
        2 => (slot.clone(), 0..12u64, chunk.clone()).prop_map(|(slot, offset, chunk)| Op::WriteAt { slot, offset, chunk }),
        2 => slot.clone().prop_map(Op::ReadHandle),
        2 => (slot.clone(), 0..10u64).prop_map(|(slot, len)| Op::Ftruncate { slot, len }),
        2 => slot.clone().prop_map(Op::Fsync),
        4 => slot.prop_map(Op::Close),
        3 => obj_field().prop_map(|(o, f)| Op::ReadPath(o, f)),
        2 => obj_field().prop_map(|(o, f)| Op::Stat(o, f)),
        1 => (obj_field(), prop_oneof![Just(0u64), Just(3u64)]).prop_map(|((o, f), n)| Op::TruncatePath(o, f, n)),
        1 => obj_field().prop_map(|(o, f)| Op::Remove(o, f)),
        2 => (obj(), 0..KEYS.len(), 1..3u8, flags).prop_map(|(obj, key, value, flags)| Op::SetXattr { obj, key, value, flags }),
        1 => (obj(), 0..KEYS.len()).prop_map(|(o, k)| Op::GetXattr(o, k)),
        1 => (obj(), 0..KEYS.len()).prop_map(|(o, k)| Op::RemoveXattr(o, k)),
        1 => obj().prop_map(Op::ListXattr),
        2 => (obj_field(), 0..TEMPS, prop::collection::vec(chunk, 0..4))
            .prop_map(|((obj, like), t, chunks)| Op::TempPut { obj, t, like, chunks }),
        1 => (obj(), 0..TEMPS).prop_map(|(o, t)| Op::TempRead(o, t)),
        2 => (obj_field(), 0..TEMPS).prop_map(|((obj, field), t)| Op::TempRename { obj, t, field }),
        1 => obj_field().prop_map(|(o, f)| Op::RenameField(o, f)),
        1 => Just(Op::RemoveBlob),
    ]
}

fn temp_bytes(like: Field, chunks: &[usize]) -> Vec<u8> {
    chunks.iter().flat_map(|i| like.chunk(*i)).collect()
}

/// What one operation gave; the model predicts the same.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Done,
    Errno(String),
    Bytes(String),
    Size(u64),
    Names(Vec<String>),
    /// One of these: the blob a target names may have been collected since an earlier
    /// target that named it was replaced.
    OneOf(Vec<Outcome>),
    /// A result the contract leaves open (an operation on a file whose object was removed,
    /// the removal of a blob nothing references); the state it leaves is still checked.
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

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

// ---------------------------------------------------------------------------------------
// The model: values and their rules.

/// One object's fields as the contract defines them.
#[derive(Debug, Clone, Default, PartialEq)]
struct Record {
    labels: BTreeMap<String, String>,
    runtime: Option<String>,
    /// As written, byte for byte.
    target: Option<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Labels(BTreeMap<String, String>),
    Runtime(Option<String>),
    Target(Option<Vec<u8>>),
}

impl Record {
    fn get(&self, field: Field) -> Value {
        match field {
            Field::Labels => Value::Labels(self.labels.clone()),
            Field::Runtime => Value::Runtime(self.runtime.clone()),
            Field::Target => Value::Target(self.target.clone()),
        }
    }

    fn set(&mut self, value: Value) {
        match value {
            Value::Labels(l) => self.labels = l,
            Value::Runtime(r) => self.runtime = r,
            Value::Target(t) => self.target = t,
        }
    }

    /// The file's bytes, `None` when the field has no value (no file).
    fn render(&self, field: Field) -> Option<Vec<u8>> {
        match field {
            Field::Labels if self.labels.is_empty() => None,
            Field::Labels => Some(self.labels.iter().map(|(k, v)| format!("{k}={v}\n")).collect::<String>().into_bytes()),
            Field::Runtime => self.runtime.as_ref().map(|r| format!("{r}\n").into_bytes()),
            Field::Target => self.target.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Edit {
    Replace(Value),
    Merge(Vec<(String, Option<String>)>),
}

type LabelEdit = (String, Option<String>);

/// A label line's edit: `Ok(None)` for an empty line, `Err` for a refused one.
fn label_line(line: &[u8]) -> Result<Option<LabelEdit>, ()> {
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
fn label_edits(text: &[u8], complete: bool) -> Result<Vec<LabelEdit>, ()> {
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

fn replaced(edits: &[LabelEdit]) -> Value {
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
    let body = doc.strip_suffix(b"\n").unwrap_or(doc);
    let text = std::str::from_utf8(body).map_err(drop)?;
    if text.chars().any(char::is_control) || text.len() > 255 {
        return Err(());
    }
    Ok(Value::Runtime((!text.is_empty()).then(|| text.to_owned())))
}

/// How far a `target` document has come.
enum Json {
    Blank,
    Incomplete,
    Complete(serde_json::Value),
    Syntax,
}

fn json_state(doc: &[u8]) -> Json {
    match serde_json::from_slice::<serde_json::Value>(doc) {
        Ok(v) => Json::Complete(v),
        Err(_) if doc.iter().all(u8::is_ascii_whitespace) => Json::Blank,
        Err(e) if e.is_eof() => Json::Incomplete,
        Err(_) => Json::Syntax,
    }
}

/// The descriptor rules of docs/interface.md, for the shapes the chunks can make.
fn valid_descriptor(v: &serde_json::Value) -> bool {
    let Some(o) = v.as_object() else { return false };
    let media_type = o.get("mediaType").and_then(|m| m.as_str()).is_some_and(|m| !m.is_empty());
    let digest = o.get("digest").and_then(|d| d.as_str()).is_some_and(|d| {
        d.strip_prefix("sha256:").is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    });
    let size = o.get("size").and_then(|s| s.as_u64());
    // The blob here is checked against the descriptor: its size must be the blob's.
    let size_right = match o.get("digest").and_then(|d| d.as_str()) {
        Some(d) if d == format!("sha256:{}", blob_hex()) => size == Some(BLOB.len() as u64),
        _ => size.is_some(),
    };
    media_type && digest && size_right
}

fn target_value(doc: &[u8]) -> Result<Value, ()> {
    match json_state(doc) {
        Json::Complete(v) if valid_descriptor(&v) => Ok(Value::Target(Some(doc.to_vec()))),
        _ => Err(()),
    }
}

/// A whole value as `rename` of a temporary file onto `field` judges it.
fn complete_value(field: Field, bytes: &[u8]) -> Result<Value, ()> {
    match field {
        Field::Labels => label_edits(bytes, true).map(|e| replaced(&e)),
        Field::Runtime if bytes.strip_suffix(b"\n").unwrap_or(bytes).contains(&b'\n') => Err(()),
        Field::Runtime => runtime_value(bytes),
        Field::Target => target_value(bytes),
    }
}

// ---------------------------------------------------------------------------------------
// The model: open files.

#[derive(Debug, Clone)]
struct ModelHandle {
    obj: Obj,
    /// The object's incarnation at open: a handle whose object was removed is stale.
    generation: u64,
    field: Field,
    mode: OpenMode,
    /// The file's bytes at open, and its value then (what a refusal puts back).
    base: Vec<u8>,
    before: Value,
    data: Vec<u8>,
    /// The descriptor's file offset (sequential writes go there).
    pos: u64,
    /// Opened with `O_APPEND`: every write goes to the end of what the handle holds, also
    /// once an `ftruncate` made it a replacement.
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
    /// `quiet` is a write of only whitespace, in order, after a committed document.
    fn judge_write(&mut self, quiet: bool) -> Result<Option<Edit>, ()> {
        match (self.mode, self.field) {
            (OpenMode::InPlace | OpenMode::Read, _) => Ok(None),
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
                match doc.iter().filter(|b| **b == b'\n').count() {
                    0 => Ok(None),
                    1 if doc.ends_with(b"\n") => runtime_value(&doc).map(|v| Some(Edit::Replace(v))),
                    _ => Err(()),
                }
            }
            (_, Field::Target) => match json_state(&self.shown()) {
                Json::Syntax => Err(()),
                Json::Blank | Json::Incomplete => Ok(None),
                Json::Complete(_) if quiet => {
                    self.dirty = false;
                    Ok(None)
                }
                Json::Complete(_) => target_value(&self.shown()).map(|v| Some(Edit::Replace(v))),
            },
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
            (_, Field::Target) => target_value(&self.shown()).map(Edit::Replace),
        }
    }

    /// Whether a refusal puts the value from before the open back (label lines merged with
    /// `>>` were each acknowledged on their own and stay).
    fn restores(&self) -> bool {
        self.committed.is_some() && !(self.field == Field::Labels && self.mode == OpenMode::Append)
    }
}

/// A refusal final only at release, which runs after `close()` returned, may put a value
/// back: the runner waits until the mount shows what the model says.
struct Settle {
    obj: Obj,
    field: Field,
}

#[derive(Debug, Default)]
struct Model {
    objects: BTreeMap<Obj, (u64, Record)>,
    temps: BTreeMap<(Obj, usize), Vec<u8>>,
    handles: BTreeMap<usize, ModelHandle>,
    generation: u64,
}

impl Model {
    fn record(&mut self, obj: Obj) -> Option<&mut Record> {
        self.objects.get_mut(&obj).map(|(_, r)| r)
    }

    fn rendered(&self, obj: Obj, field: Field) -> Option<Option<Vec<u8>>> {
        self.objects.get(&obj).map(|(_, r)| r.render(field))
    }

    fn live(&self, h: &ModelHandle) -> bool {
        self.objects.get(&h.obj).is_some_and(|(g, _)| *g == h.generation)
    }

    /// Whether a descriptor open for writing `obj`'s `field` is not yet closed: a field
    /// being created is there for `stat`, empty, before its first write.
    fn is_writing(&self, obj: Obj, field: Field) -> bool {
        self.handles.values().any(|h| h.obj == obj && h.field == field && h.mode != OpenMode::Read && self.live(h))
    }

    /// The files that exist for `stat`: fields with a value, and fields being written.
    fn files_shown(&self) -> BTreeSet<(Obj, Field)> {
        let mut shown = BTreeSet::new();
        for (obj, (_, r)) in &self.objects {
            for f in obj.fields() {
                if r.render(f).is_some() || self.is_writing(*obj, f) {
                    shown.insert((*obj, f));
                }
            }
        }
        shown
    }

    fn children(&self, obj: Obj) -> Vec<Obj> {
        self.objects.keys().copied().filter(|o| o.parent() == Some(obj)).collect()
    }

    fn blob_referenced(&self) -> bool {
        let digest = format!("sha256:{}", blob_hex());
        self.objects.values().filter_map(|(_, r)| r.target.as_ref()).any(|t| {
            serde_json::from_slice::<serde_json::Value>(t).ok().is_some_and(|v| v["digest"] == digest.as_str())
        })
    }

    fn apply(&mut self, obj: Obj, edit: Edit) {
        let record = self.record(obj).expect("a live handle's object");
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
    }

    /// Commits a handle's edit: a whole value is what a refusal may later put back.
    fn commit(&mut self, slot: usize, edit: Edit) {
        let obj = self.handles[&slot].obj;
        self.apply(obj, edit.clone());
        let h = self.handles.get_mut(&slot).unwrap();
        h.dirty = false;
        if let Edit::Replace(v) = edit {
            h.committed = Some(v);
        }
    }

    /// A refusal: the value from before the open goes back while it is still this
    /// handle's, and the open file commits nothing more.
    fn refuse(&mut self, slot: usize) {
        let h = self.handles[&slot].clone();
        if h.restores() {
            let record = self.record(h.obj).unwrap();
            if Some(record.get(h.field)) == h.committed {
                record.set(h.before.clone());
            }
        }
        let h = self.handles.get_mut(&slot).unwrap();
        h.refused = true;
        h.dirty = false;
    }

    fn step(&mut self, op: &Op) -> (Outcome, Option<Settle>) {
        let outcome = match op {
            Op::Mkdir(obj) => self.mkdir(*obj),
            Op::Rmdir(obj) => self.rmdir(*obj),
            Op::ListRoot(root) => Outcome::Names(
                self.objects
                    .keys()
                    .filter(|o| o.parent().is_none() && o.rel().starts_with(root))
                    .map(|o| o.name())
                    .collect(),
            ),
            Op::ListDir(obj) => match self.objects.get(obj) {
                None => errno(libc::ENOENT),
                Some((_, r)) => {
                    let mut names: Vec<String> =
                        obj.fields().into_iter().filter(|f| r.render(*f).is_some()).map(|f| f.name().to_owned()).collect();
                    names.extend(self.children(*obj).into_iter().map(Obj::name));
                    names.sort();
                    Outcome::Names(names)
                }
            },
            Op::StatInfo(obj) => match self.objects.get(obj) {
                Some((_, r)) if matches!(obj, Obj::C(_)) || r.target.is_some() => Outcome::Done,
                _ => errno(libc::ENOENT),
            },
            Op::Open { slot, obj, field, mode } => self.open(*slot, *obj, *field, *mode),
            Op::Write { slot, chunk } => self.write(*slot, *chunk, None),
            Op::WriteAt { slot, offset, chunk } => self.write(*slot, *chunk, Some(*offset)),
            Op::ReadHandle(slot) => match self.handles.get(slot) {
                None => Outcome::Any,
                Some(h) if !self.live(h) => Outcome::Any,
                // Read through the page cache: each read shows the file as it is then (empty
                // once the field has no value); only documents over 128 KiB, which these
                // never are, keep the content at open (docs/interface.md, "Times, sizes and caching").
                Some(h) if h.mode == OpenMode::Read => {
                    Outcome::Bytes(text(&self.rendered(h.obj, h.field).flatten().unwrap_or_default()))
                }
                Some(h) => Outcome::Bytes(text(&h.shown())),
            },
            Op::Ftruncate { slot, len } => self.ftruncate(*slot, *len),
            Op::Fsync(slot) => self.fsync(*slot),
            Op::Close(slot) => return self.close(*slot),
            Op::ReadPath(obj, f) => match self.rendered(*obj, *f) {
                None | Some(None) => errno(libc::ENOENT),
                Some(Some(bytes)) => Outcome::Bytes(text(&bytes)),
            },
            Op::Stat(obj, f) => match self.rendered(*obj, *f) {
                Some(None) if self.is_writing(*obj, *f) => Outcome::Size(0),
                None | Some(None) => errno(libc::ENOENT),
                Some(Some(bytes)) => Outcome::Size(bytes.len() as u64),
            },
            Op::TruncatePath(obj, f, len) => self.truncate_path(*obj, *f, *len),
            Op::Remove(obj, f) => match self.rendered(*obj, *f) {
                Some(Some(_)) => {
                    self.record(*obj).unwrap().set(f.unset());
                    Outcome::Done
                }
                _ => errno(libc::ENOENT),
            },
            Op::SetXattr { obj, key, value, flags } => match self.record(*obj) {
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
            Op::GetXattr(obj, key) => match self.record(*obj) {
                None => errno(libc::ENOENT),
                Some(r) => match r.labels.get(KEYS[*key]) {
                    Some(v) => Outcome::Bytes(v.clone()),
                    None => errno(libc::ENODATA),
                },
            },
            Op::RemoveXattr(obj, key) => match self.record(*obj) {
                None => errno(libc::ENOENT),
                Some(r) => match r.labels.remove(KEYS[*key]) {
                    Some(_) => Outcome::Done,
                    None => errno(libc::ENODATA),
                },
            },
            Op::ListXattr(obj) => match self.record(*obj) {
                None => errno(libc::ENOENT),
                Some(r) => Outcome::Names(r.labels.keys().map(|k| format!("user.{k}")).collect()),
            },
            Op::TempPut { obj, t, like, chunks } => {
                if !self.objects.contains_key(obj) {
                    errno(libc::ENOENT)
                } else {
                    self.temps.insert((*obj, *t), temp_bytes(*like, chunks));
                    Outcome::Done
                }
            }
            Op::TempRead(obj, t) => match self.temps.get(&(*obj, *t)) {
                None => errno(libc::ENOENT),
                Some(bytes) => Outcome::Bytes(text(bytes)),
            },
            Op::TempRename { obj, t, field } => match self.temps.get(&(*obj, *t)).cloned() {
                None => errno(libc::ENOENT),
                Some(bytes) => match complete_value(*field, &bytes) {
                    Err(()) => errno(libc::EINVAL),
                    Ok(v) => {
                        self.record(*obj).unwrap().set(v);
                        self.temps.remove(&(*obj, *t));
                        Outcome::Done
                    }
                },
            },
            Op::RenameField(obj, f) => match self.rendered(*obj, *f) {
                Some(None) if self.is_writing(*obj, *f) => errno(libc::EPERM),
                None | Some(None) => errno(libc::ENOENT),
                Some(Some(_)) => errno(libc::EPERM),
            },
            // Unreferenced, it may be kept (its lease), pinned (an open or cleared target
            // named it) or collected already: any answer, nothing the model shows changes.
            Op::RemoveBlob if self.blob_referenced() => Outcome::OneOf(vec![errno(libc::EBUSY), errno(libc::ENOENT)]),
            Op::RemoveBlob => Outcome::Any,
        };
        (outcome, None)
    }

    fn mkdir(&mut self, obj: Obj) -> Outcome {
        if self.objects.contains_key(&obj) {
            return errno(libc::EEXIST);
        }
        if obj.parent().is_some_and(|p| !self.objects.contains_key(&p)) {
            return errno(libc::ENOENT);
        }
        self.generation += 1;
        self.objects.insert(obj, (self.generation, Record::default()));
        Outcome::Done
    }

    fn rmdir(&mut self, obj: Obj) -> Outcome {
        if !self.objects.contains_key(&obj) {
            return errno(libc::ENOENT);
        }
        if !self.children(obj).is_empty() {
            return errno(libc::ENOTEMPTY);
        }
        self.objects.remove(&obj);
        self.temps.retain(|(o, _), _| *o != obj);
        Outcome::Done
    }

    fn open(&mut self, slot: usize, obj: Obj, field: Field, mode: OpenMode) -> Outcome {
        if self.handles.contains_key(&slot) {
            return Outcome::Any; // the runner skips it too
        }
        let Some((generation, record)) = self.objects.get(&obj).cloned() else { return errno(libc::ENOENT) };
        let rendered = record.render(field);
        let creating = rendered.is_none() && self.is_writing(obj, field);
        let needs_file = match mode {
            OpenMode::Read => true,
            OpenMode::InPlace => !creating,
            OpenMode::Truncate | OpenMode::Append => false,
        };
        if needs_file && rendered.is_none() {
            return errno(libc::ENOENT);
        }
        let base = rendered.unwrap_or_default();
        let data = if mode == OpenMode::InPlace { base.clone() } else { Vec::new() };
        let h = ModelHandle {
            obj,
            generation,
            field,
            mode,
            before: record.get(field),
            base,
            data,
            pos: 0,
            o_append: mode == OpenMode::Append,
            dirty: mode == OpenMode::Truncate,
            refused: false,
            committed: None,
            merged: 0,
        };
        self.handles.insert(slot, h);
        Outcome::Done
    }

    fn write(&mut self, slot: usize, chunk: usize, offset: Option<u64>) -> Outcome {
        let Some(h) = self.handles.get(&slot).cloned() else { return Outcome::Any };
        if !self.live(&h) {
            return Outcome::Any;
        }
        if h.mode == OpenMode::Read {
            return errno(libc::EBADF);
        }
        let bytes = h.field.chunk(chunk);
        if bytes.is_empty() {
            // write(2) of nothing never reaches the filesystem.
            return Outcome::Done;
        }
        if h.refused {
            return errno(libc::EINVAL);
        }
        let complete_before = matches!(json_state(&h.shown()), Json::Complete(_));
        let h = self.handles.get_mut(&slot).unwrap();
        let at = match h.o_append {
            true => h.data.len(),
            false => offset.unwrap_or(h.pos) as usize,
        };
        let sequential = at == h.data.len();
        let quiet = sequential && complete_before && !h.dirty && bytes.iter().all(u8::is_ascii_whitespace);
        if h.data.len() < at + bytes.len() {
            h.data.resize(at + bytes.len(), 0);
        }
        h.data[at..at + bytes.len()].copy_from_slice(&bytes);
        if offset.is_none() {
            h.pos = (at + bytes.len()) as u64;
        }
        h.dirty = true;
        if !sequential {
            h.merged = 0;
        }
        match h.judge_write(quiet) {
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
        if h.mode == OpenMode::Read || h.refused {
            return errno(libc::EINVAL);
        }
        let shown = h.shown();
        if len as usize > shown.len() {
            return errno(libc::EINVAL);
        }
        // Empty is no target, and a prefix no document can continue is refused; but not
        // through a handle that writes in place, which is judged only at its close: a
        // later write at an earlier offset may still make the prefix a document.
        let hopeless = h.mode != OpenMode::InPlace && matches!(json_state(&shown[..len as usize]), Json::Syntax);
        if h.field == Field::Target && (len == 0 || hopeless) {
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

    fn truncate_path(&mut self, obj: Obj, field: Field, len: u64) -> Outcome {
        match self.rendered(obj, field) {
            None => return errno(libc::ENOENT),
            Some(None) if !self.is_writing(obj, field) => return errno(libc::ENOENT),
            _ => {}
        }
        if len != 0 || field == Field::Target {
            // Only to 0, and only where empty is a value.
            return errno(libc::EINVAL);
        }
        self.record(obj).unwrap().set(field.unset());
        Outcome::Done
    }

    /// Commits what the handle holds; `Err` is a refusal not yet final.
    fn flush(&mut self, slot: usize) -> Result<(), ()> {
        let h = self.handles[&slot].clone();
        if !h.dirty || h.refused {
            return Ok(());
        }
        let edit = h.pending()?;
        let merged = matches!(edit, Edit::Merge(_));
        self.commit(slot, edit);
        if merged {
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
        let result = if h.refused {
            (errno(libc::EINVAL), None)
        } else {
            match self.flush(slot) {
                Ok(()) => (Outcome::Done, None),
                Err(()) => {
                    // Final at release, after close() returned.
                    self.refuse(slot);
                    (errno(libc::EINVAL), Some(Settle { obj: h.obj, field: h.field }))
                }
            }
        };
        self.handles.remove(&slot);
        result
    }
}

// ---------------------------------------------------------------------------------------
// The mount.

struct Real<'a> {
    fx: &'a MountFixture,
    handles: BTreeMap<usize, (File, Field)>,
}

impl Real<'_> {
    fn dir(&self, obj: Obj) -> PathBuf {
        self.fx.path(&obj.rel())
    }

    fn file(&self, obj: Obj, f: Field) -> PathBuf {
        self.dir(obj).join(f.name())
    }

    fn blob(&self) -> PathBuf {
        self.fx.path(&format!("content/sha256/{}", blob_hex()))
    }

    fn step(&mut self, op: &Op) -> Outcome {
        match op {
            Op::Mkdir(obj) => from_io(fs::create_dir(self.dir(*obj)), |_| Outcome::Done),
            Op::Rmdir(obj) => from_io(fs::remove_dir(self.dir(*obj)), |_| Outcome::Done),
            Op::ListRoot(root) => names(&self.fx.path(root)),
            Op::ListDir(obj) => names(&self.dir(*obj)),
            Op::StatInfo(obj) => from_io(fs::metadata(self.dir(*obj).join("info.json")), |_| Outcome::Done),
            Op::Open { slot, obj, field, mode } => {
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
                from_io(opts.open(self.file(*obj, *field)), |file| {
                    self.handles.insert(*slot, (file, *field));
                    Outcome::Done
                })
            }
            Op::Write { slot, chunk } => self.with_handle(*slot, |f, field| {
                let bytes = field.chunk(*chunk);
                from_io((&*f).write(&bytes), |n| full(n, &bytes))
            }),
            Op::WriteAt { slot, offset, chunk } => self.with_handle(*slot, |f, field| {
                let bytes = field.chunk(*chunk);
                from_io(f.write_at(&bytes, *offset), |n| full(n, &bytes))
            }),
            Op::ReadHandle(slot) => self.with_handle(*slot, |f, _| {
                let mut buf = vec![0u8; 1 << 16];
                from_io(f.read_at(&mut buf, 0), |n| Outcome::Bytes(text(&buf[..n])))
            }),
            Op::Ftruncate { slot, len } => self.with_handle(*slot, |f, _| from_io(f.set_len(*len), |_| Outcome::Done)),
            Op::Fsync(slot) => self.with_handle(*slot, |f, _| from_io(f.sync_all(), |_| Outcome::Done)),
            Op::Close(slot) => match self.handles.remove(slot) {
                None => Outcome::Any,
                Some((f, _)) => match close_checked(f) {
                    Ok(()) => Outcome::Done,
                    Err(e) => errno(e),
                },
            },
            Op::ReadPath(obj, f) => from_io(fs::read(self.file(*obj, *f)), |b| Outcome::Bytes(text(&b))),
            Op::Stat(obj, f) => from_io(fs::metadata(self.file(*obj, *f)), |m| Outcome::Size(m.len())),
            Op::TruncatePath(obj, f, len) => {
                let path = std::ffi::CString::new(self.file(*obj, *f).to_str().unwrap()).unwrap();
                // SAFETY: a valid NUL-terminated path.
                let rc = unsafe { libc::truncate(path.as_ptr(), *len as libc::off_t) };
                if rc == 0 {
                    Outcome::Done
                } else {
                    errno(io::Error::last_os_error().raw_os_error().unwrap_or(0))
                }
            }
            Op::Remove(obj, f) => from_io(fs::remove_file(self.file(*obj, *f)), |_| Outcome::Done),
            Op::SetXattr { obj, key, value, flags } => from_io(
                set_xattr(&self.dir(*obj), &format!("user.{}", KEYS[*key]), value.to_string().as_bytes(), *flags),
                |_| Outcome::Done,
            ),
            Op::GetXattr(obj, key) => {
                from_io(get_xattr(&self.dir(*obj), &format!("user.{}", KEYS[*key])), |v| Outcome::Bytes(text(&v)))
            }
            Op::RemoveXattr(obj, key) => {
                from_io(remove_xattr(&self.dir(*obj), &format!("user.{}", KEYS[*key])), |_| Outcome::Done)
            }
            Op::ListXattr(obj) => from_io(list_xattr(&self.dir(*obj)), |mut names| {
                names.sort();
                Outcome::Names(names)
            }),
            Op::TempPut { obj, t, like, chunks } => {
                match write_doc(&self.dir(*obj).join(format!("tmp{t}")), &temp_bytes(*like, chunks), Mode::Truncate) {
                    Ok(()) => Outcome::Done,
                    Err((_, e)) => errno(e),
                }
            }
            Op::TempRead(obj, t) => from_io(fs::read(self.dir(*obj).join(format!("tmp{t}"))), |b| Outcome::Bytes(text(&b))),
            Op::TempRename { obj, t, field } => {
                let dir = self.dir(*obj);
                from_io(fs::rename(dir.join(format!("tmp{t}")), dir.join(field.name())), |_| Outcome::Done)
            }
            Op::RenameField(obj, f) => {
                let dir = self.dir(*obj);
                from_io(fs::rename(dir.join(f.name()), dir.join("moved")), |_| Outcome::Done)
            }
            Op::RemoveBlob => from_io(fs::remove_file(self.blob()), |_| Outcome::Done),
        }
    }

    fn with_handle(&mut self, slot: usize, f: impl FnOnce(&mut File, Field) -> Outcome) -> Outcome {
        match self.handles.get_mut(&slot) {
            None => Outcome::Any,
            Some((file, field)) => f(file, *field),
        }
    }

    /// Closes every handle and removes every object, and stores the blob again if a case
    /// removed it: the mount as a new case expects it.
    fn reset(&mut self) {
        self.handles.clear();
        if !self.blob().exists() {
            put(&self.blob(), BLOB);
        }
        for entry in fs::read_dir(self.fx.path("containers")).unwrap() {
            let path = entry.unwrap().path();
            fs::remove_dir(&path).unwrap_or_else(|e| panic!("rmdir {}: {e}", path.display()));
        }
        for name in ["p/q", "p", "r"] {
            let path = self.fx.path(&format!("images/{name}"));
            if let Err(e) = fs::remove_dir(&path) {
                assert_eq!(e.raw_os_error(), Some(libc::ENOENT), "rmdir {}: {e}", path.display());
            }
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

// ---------------------------------------------------------------------------------------
// The runner.

/// Whether `cond` holds within 5 s (polled: what it waits for happens on the daemon's
/// threads after the call returned).
fn settles(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// What the runs did, for the report line: operations compared, by what the mount
/// answered.
static ANSWERS: LazyLock<Mutex<BTreeMap<String, u64>>> = LazyLock::new(Mutex::default);
static SETTLED: AtomicU64 = AtomicU64::new(0);

fn count(got: &Outcome) {
    let key = match got {
        Outcome::Errno(e) => e.clone(),
        Outcome::Done | Outcome::Bytes(_) | Outcome::Size(_) | Outcome::Names(_) => "ok".to_owned(),
        Outcome::OneOf(_) | Outcome::Any => "unchecked".to_owned(),
    };
    *ANSWERS.lock().unwrap().entry(key).or_default() += 1;
}

/// Runs one sequence against both; the first difference fails the case.
fn run_case(fx: &MountFixture, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut model = Model::default();
    let mut real = Real { fx, handles: BTreeMap::new() };
    let result = run_ops(&mut model, &mut real, ops);
    real.reset();
    result
}

/// Every object exists when a case starts, so that most operations reach a file.
fn prelude() -> Vec<Op> {
    (0..CONTAINERS).map(Obj::C).chain((0..IMAGE_DIRS.len()).map(Obj::I)).map(Op::Mkdir).collect()
}

/// Points an operation's slot at an open file (its number picks one of those open), and
/// an `open` at a free slot, so that few operations are spent on empty slots.
fn resolve(model: &Model, op: &Op) -> Op {
    let open: Vec<usize> = model.handles.keys().copied().collect();
    let pick = |k: usize| if open.is_empty() { k } else { open[k % open.len()] };
    let mut op = op.clone();
    match &mut op {
        Op::Write { slot, .. } | Op::WriteAt { slot, .. } | Op::Ftruncate { slot, .. } => *slot = pick(*slot),
        Op::ReadHandle(slot) | Op::Fsync(slot) | Op::Close(slot) => *slot = pick(*slot),
        Op::Open { slot, .. } => *slot = (0..SLOTS).find(|s| !model.handles.contains_key(s)).unwrap_or(*slot),
        _ => {}
    }
    op
}

fn run_ops(model: &mut Model, real: &mut Real, ops: &[Op]) -> Result<(), TestCaseError> {
    // What each operation gave, for the failure message: the sequence as it ran (slots
    // resolved), which the minimal failing input alone does not show.
    let mut trace = String::new();
    for (i, op) in prelude().iter().chain(ops).enumerate() {
        let op = &resolve(model, op);
        let fail = |what: String, trace: &str| Err(TestCaseError::fail(format!("op {i} {op:?}: {what}\nas run:\n{trace}")));
        let shown_before = model.files_shown();
        let (want, settle) = model.step(op);
        let got = real.step(op);
        let agrees = match &want {
            Outcome::Any => true,
            Outcome::OneOf(choices) => choices.contains(&got),
            want => got == *want,
        };
        count(if matches!(want, Outcome::Any) { &want } else { &got });
        trace.push_str(&format!("  {i:>2} {op:?} -> {got:?}\n"));
        if !agrees {
            return fail(format!("the mount gave {got:?}, the model {want:?}"), &trace);
        }
        if let Some(Settle { obj, field }) = settle {
            let want = model.rendered(obj, field).flatten().map(|b| text(&b));
            let path = real.file(obj, field);
            SETTLED.fetch_add(1, Ordering::Relaxed);
            if !settles(|| fs::read(&path).ok().map(|b| text(&b)) == want) {
                return fail(format!("{} never settled to {want:?}", path.display()), &trace);
            }
        }
        for (obj, field) in shown_before.difference(&model.files_shown()) {
            // Cleared by something other than an unlink (an empty value written or renamed
            // onto it, its last label removed): the kernel may show the name a moment
            // longer, until the daemon's notice makes it drop it.
            if model.objects.contains_key(obj) && !matches!(op, Op::Remove(..)) {
                let path = real.file(*obj, *field);
                if !settles(|| fs::metadata(&path).err().and_then(|e| e.raw_os_error()) == Some(libc::ENOENT)) {
                    return fail(format!("{} never went: {:?}", path.display(), fs::metadata(&path)), &trace);
                }
            }
        }
    }
    check_state(model, real, ops.len()).map_err(|e| TestCaseError::fail(format!("{e}\nas run:\n{trace}")))
}

/// After the sequence: every field of every object reads as the model says.
fn check_state(model: &Model, real: &Real, n: usize) -> Result<(), TestCaseError> {
    let objects = (0..CONTAINERS).map(Obj::C).chain((0..IMAGE_DIRS.len()).map(Obj::I));
    for obj in objects {
        for f in obj.fields() {
            let want = model.rendered(obj, f).flatten().map(|b| text(&b));
            let got = fs::read(real.file(obj, f)).ok().map(|b| text(&b));
            if got != want {
                return Err(TestCaseError::fail(format!("after {n} ops {}/{}: the mount has {got:?}, the model {want:?}", obj.rel(), f.name())));
            }
        }
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("CTRFS_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
}

fn runner() -> TestRunner {
    let mut config = Config::with_cases(cases());
    config.failure_persistence = Some(Box::new(FileFailurePersistence::Direct("tests/mount/fuzz.proptest-regressions")));
    config.max_shrink_iters = 4000;
    match std::env::var("CTRFS_FUZZ_SEED").ok().and_then(|v| v.parse::<u64>().ok()) {
        Some(seed) => {
            let mut bytes = [0u8; 32];
            bytes[..8].copy_from_slice(&seed.to_le_bytes());
            TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes))
        }
        None => TestRunner::new(config),
    }
}

/// Runs in a process of its own: another test's thread that forks (every `sh -c`) gives
/// the child a copy of the fuzzer's descriptors, and the child's exec closes them, which
/// the kernel sends as a FUSE flush of the fuzzer's open files: a `close()` the model
/// never made. (The daemon cannot tell one flush from another; a program whose threads
/// fork while another writes sees the same.)
#[test]
fn random_file_operations_agree_with_the_model_of_the_contract() {
    const INNER: &str = "CTRFS_FUZZ_IN_OWN_PROCESS";
    if std::env::var_os(INNER).is_some() {
        return fuzz_against_the_model();
    }
    let name = "fuzz::random_file_operations_agree_with_the_model_of_the_contract";
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(INNER, "1")
        .output()
        .expect("the test binary runs again");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "the fuzzer failed:\n{stdout}\n{stderr}");
    for line in stderr.lines().filter(|l| l.starts_with("fuzz:")) {
        eprintln!("{line}");
    }
}

fn fuzz_against_the_model() {
    let mut fx = MountFixture::new();
    if let Ok(filter) = std::env::var("CTRFS_FUZZ_LOG") {
        // The daemon's log filter, e.g. `debug`, to see what it did in a failing case.
        fx.set_daemon_env("RUST_LOG", Some(&filter));
        fx.remount();
    }
    put(&fx.path(&format!("content/sha256/{}", blob_hex())), BLOB);
    let started = Instant::now();
    match runner().run(&prop::collection::vec(op(), 1..40), |ops| run_case(&fx, &ops)) {
        Ok(()) => {
            let answers = ANSWERS.lock().unwrap();
            eprintln!(
                "fuzz: {} cases agreed with the model: {} operations compared, answered {answers:?}, {} refusals final at release waited for, {:.1}s",
                cases(),
                answers.values().sum::<u64>(),
                SETTLED.load(Ordering::Relaxed),
                started.elapsed().as_secs_f64()
            )
        }
        Err(e) => panic!("{e}\nlog:\n{}", fx.log()),
    }
}

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

/// A refused write puts back the labels from before the open also where the value it had
/// committed was "no labels" on a name prefix in images/, which has no record then (found
/// by the fuzzer: the labels stayed cleared).
#[test]
fn a_refused_label_edit_of_an_image_prefix_puts_its_labels_back() {
    let fx = MountFixture::new();
    fs::create_dir(fx.path("images/p")).unwrap();
    let labels = fx.path("images/p/labels");
    set_xattr(&fx.path("images/p"), "user.a", b"1", 0).unwrap();
    let file = OpenOptions::new().write(true).truncate(true).open(&labels).unwrap();
    file.write_at(b"\n", 0).unwrap();
    assert!(errno_of(fs::read(&labels)) == libc::ENOENT, "the empty value was committed");
    assert_eq!(errno_of(file.write_at(b"=x\n", 1)), libc::EINVAL);
    assert_eq!(read(&labels), "a=1\n");
}

/// A truncation through a descriptor changes only what that descriptor holds until it is
/// committed: the size its `ftruncate` answers must not be cached as the file's (found by
/// the fuzzer once attributes were cached: a reader was told 0 bytes for a second).
#[test]
fn an_ftruncate_not_yet_committed_is_not_what_readers_see() {
    let fx = MountFixture::new();
    fs::create_dir(fx.path("images/r")).unwrap();
    let labels = fx.path("images/r/labels");
    let mut file = OpenOptions::new().write(true).truncate(true).create(true).open(&labels).unwrap();
    file.write_all(b"a=1\n").unwrap();
    assert_eq!(ls(&fx.path("images/r")), ["labels"]);
    file.set_len(0).unwrap();
    assert_eq!(read(&labels), "a=1\n");
    assert_eq!(fs::metadata(&labels).unwrap().len(), 4);
}

/// An ftruncate through a descriptor opened on a field under the inode of the temporary
/// file renamed onto it edits what the descriptor holds, as through the field's own inode;
/// it used to commit the truncation at once (found by the fuzzer).
#[test]
fn an_ftruncate_through_a_renamed_temporary_files_inode_is_not_committed_at_once() {
    let fx = MountFixture::new();
    fs::create_dir(fx.path("containers/c")).unwrap();
    let dir = fx.path("containers/c");
    fs::write(dir.join("tmp"), "crun\n").unwrap();
    fs::rename(dir.join("tmp"), dir.join("runtime")).unwrap();
    let file = OpenOptions::new().write(true).open(dir.join("runtime")).unwrap();
    file.set_len(0).unwrap();
    assert_eq!(read(&dir.join("runtime")), "crun\n", "nothing committed before the close");
    drop(file);
}
