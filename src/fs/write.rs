//! Write rules: how bytes written to an attribute file become one validated change.
//!
//! Writes are buffered per open file and judged as they arrive, in time proportional to
//! the new bytes: a `write()` fails as soon as the bytes prove the value invalid, and the
//! `write()` that completes a valid value hands back the [`Edit`] to commit before it
//! returns (shells ignore the error of `close()`, so acknowledging there would be too
//! late). Complete means: a set of whole `key=value` lines, a whole JSON document, a
//! one-line value ending in its newline. What is still incomplete when the writer stops is
//! judged at `close()` (flush), `fsync()` or release.

use serde_json::Value;

use super::ino::AttrFile;
use crate::model::{
    parse_labels, JsonScan, SyntaxSpot, validate_spec, ContainerField, Descriptor, LabelEdit, Labels, ValidationError,
    MAX_DOCUMENT_BYTES, MAX_SPEC_BYTES,
};
use crate::service::Edit;

/// How an open file's bytes relate to the stored value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Opened with `O_TRUNC`: the bytes are the new value.
    Replace,
    /// Opened with `O_APPEND`: labels merge; other files append to the current text.
    Append,
    /// Opened for writing without either: starts from the current content, edited in place
    /// at any offset, so it is judged only at close.
    Positional,
}

/// What is known of the bytes so far, kept between writes.
#[derive(Debug, Clone)]
enum Judgement {
    /// `target`, `spec`: a syntax scan of the document so far.
    Json(JsonScan),
    /// `labels`: the edits of the complete lines, the end of the last complete line, and
    /// how many of the edits this handle has committed.
    Labels { edits: Vec<LabelEdit>, judged: usize, committed: usize },
    /// One-line fields: where the newline is, once one came (in document offsets).
    Line { newline: Option<usize> },
    /// Positional writes: judged at close.
    AtClose,
}

/// The pending bytes of one open file.
#[derive(Debug)]
pub struct WriteBuffer {
    file: AttrFile,
    mode: WriteMode,
    /// Opened with `O_APPEND`: every write goes to the end of what the handle holds, also
    /// after an `ftruncate` made it a replacement (the offset the kernel passes comes from
    /// its cached size, which a `stat` of the stored value may have changed meanwhile).
    appends: bool,
    /// The content at open (the prefix for `Append` of text, and what a refusal puts back).
    base: Vec<u8>,
    /// The bytes written (for `Positional`, the whole edited document).
    data: Vec<u8>,
    judgement: Judgement,
    /// Something was written or truncated since the last commit.
    dirty: bool,
    /// Bytes were written since the last commit (truncation alone does not count).
    written: bool,
    /// Why a `write()` was refused; nothing from this handle is committed after that,
    /// and later writes get the same answer.
    failure: Option<ValidationError>,
    /// This handle committed something (a value or a bare truncation).
    committed: bool,
    /// The last change this handle committed: a refusal puts the value from before the
    /// open back only while the stored value is still this one.
    last_committed: Option<Edit>,
}

impl WriteBuffer {
    /// A buffer for `file` opened for writing; `current` is its content now.
    pub fn new(file: AttrFile, mode: WriteMode, current: Vec<u8>) -> Self {
        let data = if mode == WriteMode::Positional { current.clone() } else { Vec::new() };
        let mut buffer = WriteBuffer {
            file,
            mode,
            appends: mode == WriteMode::Append,
            base: current,
            data,
            judgement: Judgement::AtClose,
            // O_TRUNC itself is a change: `: > labels` must clear the labels.
            dirty: mode == WriteMode::Replace,
            written: false,
            failure: None,
            committed: false,
            last_committed: None,
        };
        // The content at open is a stored value, so it judges clean.
        let _ = buffer.rejudge();
        buffer
    }

    /// Marks a buffer opened with `O_APPEND`: every write goes to the end of what it
    /// holds, whatever offset the kernel passes (also with `O_TRUNC`, whose handle is a
    /// replacement: the kernel's offset comes from its cached size, which a `stat` of the
    /// stored, normalised value may have changed).
    pub fn appending(mut self, appends: bool) -> Self {
        self.appends |= appends;
        self
    }

    /// The file this buffer writes.
    pub fn file(&self) -> AttrFile {
        self.file
    }

    /// What a read through this handle sees.
    pub fn visible(&self) -> std::borrow::Cow<'_, [u8]> {
        document(self.mode, &self.base, &self.data)
    }

    /// Whether something was written or truncated since the last commit.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Whether the change waiting is a truncation with no bytes written after it.
    pub fn is_bare_truncation(&self) -> bool {
        !self.written
    }

    /// Whether a write was refused.
    pub fn failed(&self) -> bool {
        self.failure.is_some()
    }

    /// Marks the handle refused: nothing more from it is committed.
    pub fn fail(&mut self, why: ValidationError) {
        self.failure = Some(why);
        self.dirty = false;
    }

    /// Drops what is uncommitted after a refusal decided elsewhere (a commit refused).
    pub fn abandon(&mut self) {
        self.dirty = false;
    }

    /// Whether this handle committed anything.
    pub fn has_committed(&self) -> bool {
        self.committed
    }

    /// Whether a refusal must put back the value from before the open: this handle
    /// committed part of a value it now cannot finish. Label lines appended with `>>` were
    /// each acknowledged on their own, so they stay.
    pub fn needs_restore(&self) -> bool {
        self.committed && !(self.file == AttrFile::Labels && self.mode == WriteMode::Append)
    }

    /// Applies one `write()` and judges the result. Returns the change to commit when the
    /// bytes now form a complete valid value, `None` while they are only incomplete. After
    /// a refusal the handle stays failed.
    pub fn write(&mut self, offset: u64, bytes: &[u8]) -> Result<Option<Edit>, ValidationError> {
        if let Some(failure) = &self.failure {
            return Err(failure.clone());
        }
        let result = self.write_and_judge(offset, bytes);
        if let Err(e) = &result {
            self.fail(e.clone());
        }
        result
    }

    fn write_and_judge(&mut self, offset: u64, bytes: &[u8]) -> Result<Option<Edit>, ValidationError> {
        let limit = size_limit(self.file);
        let too_large = || ValidationError::TooLarge { what: self.file.name(), limit };
        let (start, end) = match self.mode {
            _ if self.appends => (self.data.len(), self.data.len() + bytes.len()),
            WriteMode::Append | WriteMode::Replace | WriteMode::Positional => {
                let start = usize::try_from(offset).map_err(|_| too_large())?;
                (start, start.checked_add(bytes.len()).ok_or_else(too_large)?)
            }
        };
        let prefix = if self.mode == WriteMode::Append { self.base.len() } else { 0 };
        if prefix + end > limit {
            return Err(too_large());
        }
        let sequential = start == self.data.len();
        if self.data.len() < end {
            self.data.resize(end, 0);
        }
        self.data[start..end].copy_from_slice(bytes);
        let was_dirty = self.dirty;
        self.dirty = true;
        self.written = true;
        if !sequential {
            self.rejudge()?;
        }
        match &mut self.judgement {
            Judgement::AtClose => Ok(None),
            Judgement::Json(scan) => {
                let was_complete = scan.is_complete();
                if sequential {
                    if let Err(e) = scan.feed(bytes) {
                        let spot = SyntaxSpot::at_offset(&document(self.mode, &self.base, &self.data), e.offset);
                        return Err(json_error(self.file, e.to_string(), spot));
                    }
                }
                if !scan.is_complete() {
                    return Ok(None);
                }
                if was_complete && sequential && !was_dirty {
                    // Only whitespace after a document already committed: nothing changed.
                    self.dirty = false;
                    return Ok(None);
                }
                parse_complete(self.file, self.mode, &self.base, &self.data).map(Some)
            }
            Judgement::Labels { edits, judged, committed } => {
                // Only the new bytes can hold a newline not yet seen.
                let from = if sequential { start.max(*judged) } else { *judged };
                let Some(last_newline) = self.data[from..].iter().rposition(|b| *b == b'\n') else {
                    return Ok(None);
                };
                let lines_end = from + last_newline + 1;
                let text = utf8(self.file, &self.data[*judged..lines_end])?;
                edits.extend(parse_labels(text, false)?);
                *judged = lines_end;
                if lines_end != self.data.len() {
                    return Ok(None);
                }
                Ok(match self.mode {
                    WriteMode::Append if edits.len() == *committed => {
                        self.dirty = was_dirty;
                        None
                    }
                    WriteMode::Append => Some(Edit::MergeLabels(edits[*committed..].to_vec())),
                    WriteMode::Replace | WriteMode::Positional => Some(Edit::ReplaceLabels(Labels::from_edits(edits.clone()))),
                })
            }
            Judgement::Line { newline } => {
                let prefix = if self.mode == WriteMode::Append { self.base.len() } else { 0 };
                // Out of order, the rejudgement has just scanned the whole document.
                let new_bytes = if sequential { &self.data[start..] } else { &[][..] };
                for at in new_bytes.iter().enumerate().filter(|(_, b)| **b == b'\n').map(|(i, _)| prefix + start + i) {
                    if newline.replace(at).is_some() {
                        return Err(single_line(self.file));
                    }
                }
                match *newline {
                    None => Ok(None),
                    Some(at) if at + 1 == prefix + self.data.len() => {
                        let bytes = document(self.mode, &self.base, &self.data);
                        let line = utf8(self.file, &bytes[..at])?;
                        let field = container_field(self.file);
                        field.validate(line)?;
                        Ok(Some(Edit::Field(field, line.to_owned())))
                    }
                    Some(_) => Err(single_line(self.file)),
                }
            }
        }
    }

    /// Starts the judgement over from the bytes held (after an out-of-order write or a
    /// truncation; rare, so a cost in the size of the document does not matter here).
    fn rejudge(&mut self) -> Result<(), ValidationError> {
        self.judgement = match (self.mode, self.file) {
            (WriteMode::Positional, _) => Judgement::AtClose,
            (_, AttrFile::Target | AttrFile::Spec) => {
                let mut scan = JsonScan::object();
                let document = document(self.mode, &self.base, &self.data);
                let fed = scan.feed(&document);
                let fed = fed.map_err(|e| json_error(self.file, e.to_string(), SyntaxSpot::at_offset(&document, e.offset)));
                self.judgement = Judgement::Json(scan);
                return fed;
            }
            (_, AttrFile::Labels) => Judgement::Labels { edits: Vec::new(), judged: 0, committed: 0 },
            // The whole document (for `>>`, the value appended to, which ends in its
            // newline): a newline may only be its last byte.
            _ => {
                let document = document(self.mode, &self.base, &self.data);
                let mut newlines = document.iter().enumerate().filter(|(_, b)| **b == b'\n').map(|(at, _)| at);
                let newline = newlines.next();
                if newlines.next().is_some() || newline.is_some_and(|at| at + 1 != document.len()) {
                    return Err(single_line(self.file));
                }
                Judgement::Line { newline }
            }
        };
        Ok(())
    }

    /// Records that what this buffer asked for was committed.
    pub fn mark_committed(&mut self, edit: Edit) {
        self.dirty = false;
        self.written = false;
        self.committed = true;
        if let Judgement::Labels { edits, committed, .. } = &mut self.judgement {
            // An unfinished last line went with this commit (a close or fsync), but stays
            // unjudged: more bytes of the same line may still come through another
            // descriptor, and the whole line is judged (and merged) again then.
            *committed = edits.len();
        }
        self.last_committed = Some(edit);
    }

    /// What this handle committed last, as the whole value it set (`None` for label lines
    /// merged with `>>`, which are never put back).
    pub fn last_committed(&self) -> Option<&Edit> {
        self.last_committed.as_ref().filter(|e| !matches!(e, Edit::MergeLabels(_)))
    }

    /// `ftruncate` through this handle. It may shorten what the file shows, never lengthen
    /// it (the zeros a longer size adds are never part of a valid value), and a size that
    /// leaves a document that can never be valid is refused; a refusal leaves the buffer
    /// as it was. On an `O_APPEND` handle the file shown is the old value and the
    /// appended bytes: shortening it makes the handle a replacement of what is left.
    pub fn truncate(&mut self, size: u64) -> Result<(), ValidationError> {
        let limit = size_limit(self.file);
        let size = usize::try_from(size).ok().filter(|s| *s <= limit);
        let size = size.ok_or(ValidationError::TooLarge { what: self.file.name(), limit })?;
        let shown = self.visible().len();
        if size > shown {
            return Err(ValidationError::InvalidField {
                field: self.file.name(),
                reason: format!("can only be shortened (to at most {shown} bytes), not extended to {size}"),
            });
        }
        let (mode, data, judgement) = (self.mode, self.data.clone(), self.judgement.clone());
        if self.mode == WriteMode::Append {
            let mut whole = self.visible().into_owned();
            whole.truncate(size);
            self.mode = WriteMode::Replace;
            self.data = whole;
        } else {
            self.data.truncate(size);
        }
        if let Err(e) = self.rejudge() {
            (self.mode, self.data, self.judgement) = (mode, data, judgement);
            return Err(e);
        }
        self.dirty = true;
        Ok(())
    }

    /// The change this buffer asks for, judged as a complete value (at close or fsync).
    pub fn pending_edit(&self) -> Result<Edit, ValidationError> {
        if let Judgement::Labels { edits, judged, committed } = &self.judgement {
            let tail = utf8(self.file, &self.data[*judged..])?;
            let mut all = edits.clone();
            all.extend(parse_labels(tail, true)?);
            return Ok(match self.mode {
                WriteMode::Append => Edit::MergeLabels(all.split_off(*committed)),
                WriteMode::Replace | WriteMode::Positional => Edit::ReplaceLabels(Labels::from_edits(all)),
            });
        }
        parse_complete(self.file, self.mode, &self.base, &self.data)
    }

    /// The change that puts back the value this handle saw at open (an image that had
    /// no target goes back to being a name prefix).
    pub fn restore_edit(&self) -> Result<Edit, ValidationError> {
        if self.file == AttrFile::Target && self.base.is_empty() {
            return Ok(Edit::ClearTarget);
        }
        parse_complete(self.file, WriteMode::Replace, &[], &self.base)
    }
}

/// The empty value of `file`, as a truncation without a handle sets it.
pub fn empty_value(file: AttrFile) -> Result<Edit, ValidationError> {
    parse_complete(file, WriteMode::Replace, &[], &[])
}

/// The largest document a file accepts.
pub fn size_limit(file: AttrFile) -> usize {
    match file {
        AttrFile::Spec => MAX_SPEC_BYTES,
        _ => MAX_DOCUMENT_BYTES,
    }
}

/// The refusal of a one-line value that holds a second line.
fn single_line(file: AttrFile) -> ValidationError {
    ValidationError::InvalidField { field: file.name(), reason: "must be a single line".into() }
}

/// The bytes that make up the document: for `Append`, what was there plus what came.
fn document<'a>(mode: WriteMode, base: &'a [u8], data: &'a [u8]) -> std::borrow::Cow<'a, [u8]> {
    match mode {
        WriteMode::Append => std::borrow::Cow::Owned([base, data].concat()),
        WriteMode::Replace | WriteMode::Positional => std::borrow::Cow::Borrowed(data),
    }
}

/// Parses a finished document into the change it asks for.
fn parse_complete(file: AttrFile, mode: WriteMode, base: &[u8], data: &[u8]) -> Result<Edit, ValidationError> {
    let bytes = document(mode, base, data);
    match file {
        AttrFile::Target => {
            if is_json_blank(&bytes) {
                return Err(ValidationError::InvalidDescriptor { reason: "target must not be empty".into() });
            }
            let value = serde_json::from_slice(&bytes).map_err(|e| serde_error(file, &bytes, &e))?;
            // Kept as written, like a spec: `cat target` gives back what was written (JSON
            // that parsed is UTF-8).
            let text = String::from_utf8_lossy(&bytes).into_owned();
            Descriptor::from_json(value).map(|d| Edit::Target(d, Some(text)))
        }
        AttrFile::Spec => {
            if is_json_blank(&bytes) {
                return Ok(Edit::Spec(None));
            }
            let value: Value = serde_json::from_slice(&bytes).map_err(|e| serde_error(file, &bytes, &e))?;
            validate_spec(&value)?;
            // Kept byte for byte: `cat spec` gives back what was written.
            Ok(Edit::Spec(Some(bytes.into_owned())))
        }
        AttrFile::Labels => {
            let text = utf8(file, data)?;
            let edits = parse_labels(text, true)?;
            Ok(match mode {
                WriteMode::Append => Edit::MergeLabels(edits),
                WriteMode::Replace | WriteMode::Positional => Edit::ReplaceLabels(Labels::from_edits(edits)),
            })
        }
        AttrFile::Image | AttrFile::Snapshotter | AttrFile::Snapshot | AttrFile::Runtime => {
            let text = utf8(file, &bytes)?;
            let value = text.strip_suffix('\n').unwrap_or(text);
            let field = container_field(file);
            field.validate(value)?;
            Ok(Edit::Field(field, value.to_owned()))
        }
        AttrFile::Info
        | AttrFile::SnapshotKind
        | AttrFile::Parent
        | AttrFile::Mounts
        | AttrFile::Usage
        | AttrFile::References => Err(ValidationError::InvalidField { field: file.name(), reason: "is read-only".into() }),
    }
}

/// Nothing but JSON's own whitespace (RFC 8259: space, tab, LF, CR; not form feed).
fn is_json_blank(bytes: &[u8]) -> bool {
    crate::model::trim_json_whitespace(bytes).is_empty()
}

fn json_error(file: AttrFile, reason: String, spot: SyntaxSpot) -> ValidationError {
    let what = if file == AttrFile::Target { "descriptor" } else { "spec" };
    ValidationError::NotJson { what, reason, spot }
}

fn serde_error(file: AttrFile, bytes: &[u8], e: &serde_json::Error) -> ValidationError {
    json_error(file, e.to_string(), SyntaxSpot::at_line_column(bytes, e.line(), e.column()))
}

fn container_field(file: AttrFile) -> ContainerField {
    match file {
        AttrFile::Image => ContainerField::Image,
        AttrFile::Snapshotter => ContainerField::Snapshotter,
        AttrFile::Snapshot => ContainerField::Snapshot,
        _ => ContainerField::Runtime,
    }
}

fn utf8(file: AttrFile, bytes: &[u8]) -> Result<&str, ValidationError> {
    std::str::from_utf8(bytes)
        .map_err(|_| ValidationError::InvalidField { field: file.name(), reason: "must be UTF-8 text".into() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest() -> String {
        format!("sha256:{}", "b".repeat(64))
    }

    fn replace(file: AttrFile) -> WriteBuffer {
        WriteBuffer::new(file, WriteMode::Replace, Vec::new())
    }

    #[test]
    fn a_second_line_is_refused_at_its_write_also_after_a_truncation() {
        // Found by the fuzzer: the rejudgement after `ftruncate` forgot the newline held.
        let mut b = WriteBuffer::new(AttrFile::Runtime, WriteMode::Append, Vec::new());
        assert!(matches!(b.write(0, b"c=\n").unwrap(), Some(Edit::Field(..))));
        b.truncate(3).unwrap();
        assert!(b.write(3, b"c=3").is_err(), "bytes after the newline are a second line");
        let mut b = replace(AttrFile::Runtime);
        b.write(0, b"ab").unwrap();
        assert!(b.write(0, b"x\ny").is_err(), "a newline before the end, written out of order");
        let mut b = replace(AttrFile::Runtime);
        b.write(0, b"a\n").unwrap();
        assert!(b.truncate(1).is_ok() && b.write(1, b"b\n").unwrap().is_some(), "shortened, then finished again");
    }

    #[test]
    fn an_append_handle_shortened_by_ftruncate_still_appends_whatever_the_offset() {
        // Found by the fuzzer: after the truncation the kernel's offset (its cached size,
        // which a stat of the stored value had changed) left a hole of zeros.
        let mut b = WriteBuffer::new(AttrFile::Labels, WriteMode::Append, b"a=1\n".to_vec());
        b.truncate(2).unwrap();
        assert!(matches!(b.write(4, b"b\n").unwrap(), Some(Edit::ReplaceLabels(_))));
        assert_eq!(&*b.visible(), b"a=b\n");
        // `O_APPEND | O_TRUNC`: a replacement that still appends.
        let mut b = WriteBuffer::new(AttrFile::Labels, WriteMode::Replace, b"a=1\n".to_vec()).appending(true);
        assert!(matches!(b.write(9, b"c=3\n").unwrap(), Some(Edit::ReplaceLabels(_))));
        assert_eq!(&*b.visible(), b"c=3\n");
    }

    #[test]
    fn json_is_refused_as_soon_as_the_bytes_prove_it_invalid() {
        let mut b = replace(AttrFile::Target);
        assert_eq!(b.write(0, b"{\"mediaType\":").unwrap(), None, "incomplete waits");
        assert!(b.pending_edit().is_err(), "but is invalid when complete");
        assert!(replace(AttrFile::Target).write(0, b"{bad\n").is_err());
        let doc = format!("{{\"mediaType\":\"m\",\"digest\":\"md5:{}\",\"size\":1}}\n", "0".repeat(32));
        assert!(replace(AttrFile::Target).write(0, doc.as_bytes()).is_err());
        let negative = format!("{{\"mediaType\":\"m\",\"digest\":\"{}\",\"size\":-1}}", digest());
        assert!(replace(AttrFile::Target).write(0, negative.as_bytes()).is_err());
        assert!(replace(AttrFile::Spec).write(0, b"[1]\n").is_err());
    }

    #[test]
    fn the_write_that_completes_a_document_returns_its_edit() {
        let doc = format!("{{\"mediaType\":\"m\",\"digest\":\"{}\",\"size\":3}}\n", digest());
        let (a, rest) = doc.split_at(10);
        let mut b = replace(AttrFile::Target);
        assert_eq!(b.write(0, a.as_bytes()).unwrap(), None);
        let edit = b.write(a.len() as u64, rest.as_bytes()).unwrap();
        assert!(matches!(edit, Some(Edit::Target(d, _)) if d.size == 3));
        b.mark_committed(Edit::Spec(None));
        assert!(!b.is_dirty());
        assert_eq!(b.write(doc.len() as u64, b"\n\n").unwrap(), None, "whitespace after it changes nothing");
        assert!(!b.is_dirty());
        assert!(b.write(doc.len() as u64 + 2, b"x").is_err(), "anything else is refused");
        assert!(b.needs_restore());
    }

    #[test]
    fn a_spec_in_many_small_writes_is_scanned_once() {
        let spec = serde_json::json!({"process": {"args": ["sh", "-c", "x".repeat(20_000)]}, "root": {"path": "/r"}});
        let text = serde_json::to_string(&spec).unwrap();
        let mut b = replace(AttrFile::Spec);
        let mut offset = 0;
        let mut edits = 0;
        for chunk in text.as_bytes().chunks(7) {
            if b.write(offset, chunk).unwrap().is_some() {
                edits += 1;
            }
            offset += chunk.len() as u64;
        }
        assert_eq!(edits, 1, "the last write, and only it, completes the document");
    }

    #[test]
    fn labels_commit_at_each_write_that_ends_a_line() {
        let mut replace_labels = WriteBuffer::new(AttrFile::Labels, WriteMode::Replace, b"old=1\n".to_vec());
        assert_eq!(replace_labels.write(0, b"b=2\na=").unwrap(), None, "a line still open waits");
        let edit = replace_labels.write(6, b"1\n").unwrap();
        assert_eq!(edit, Some(Edit::ReplaceLabels(Labels::from_edits(parse_labels("a=1\nb=2\n", true).unwrap()))));
        let mut merge = WriteBuffer::new(AttrFile::Labels, WriteMode::Append, b"old=1\n".to_vec());
        let edit = merge.write(99, b"old=\nnew=2\n").unwrap();
        assert_eq!(edit, Some(Edit::MergeLabels(vec![LabelEdit::Remove("old".into()), LabelEdit::Set("new".into(), "2".into())])));
        merge.mark_committed(Edit::MergeLabels(Vec::new()));
        assert_eq!(merge.write(0, b"z=9\n").unwrap(), Some(Edit::MergeLabels(vec![LabelEdit::Set("z".into(), "9".into())])), "only the new lines");
        assert!(!merge.needs_restore(), "appended lines were acknowledged one by one");
        let mut bad = replace(AttrFile::Labels);
        assert!(bad.write(0, b"novalue\n").is_err());
        assert!(bad.failed());
        assert!(bad.write(0, b"x=1\n").is_err(), "a failed handle stays failed");
    }

    #[test]
    fn a_last_line_without_newline_is_judged_at_close() {
        let mut b = replace(AttrFile::Labels);
        assert_eq!(b.write(0, b"a=1\nb=2").unwrap(), None);
        assert_eq!(b.pending_edit().unwrap(), Edit::ReplaceLabels(Labels::from_edits(parse_labels("a=1\nb=2", true).unwrap())));
        let mut line = replace(AttrFile::Runtime);
        assert_eq!(line.write(0, b"crun").unwrap(), None);
        assert_eq!(line.pending_edit().unwrap(), Edit::Field(ContainerField::Runtime, "crun".into()));
    }

    #[test]
    fn truncation_alone_is_a_change() {
        for (file, valid) in [(AttrFile::Labels, true), (AttrFile::Target, false), (AttrFile::Spec, true)] {
            let empty = WriteBuffer::new(file, WriteMode::Replace, Vec::new());
            assert!(empty.is_dirty() && empty.is_bare_truncation());
            assert_eq!(empty.pending_edit().is_ok(), valid, "{file:?}");
        }
        assert_eq!(empty_value(AttrFile::Spec).unwrap(), Edit::Spec(None));
    }

    #[test]
    fn one_line_fields_commit_at_their_newline_and_refuse_a_second_line() {
        let mut b = replace(AttrFile::Runtime);
        assert_eq!(b.write(0, b"crun\n").unwrap(), Some(Edit::Field(ContainerField::Runtime, "crun".into())));
        b.mark_committed(Edit::Spec(None));
        assert!(b.write(5, b"more\n").is_err());
        let mut positional = WriteBuffer::new(AttrFile::Runtime, WriteMode::Positional, b"runc\n".to_vec());
        assert_eq!(positional.write(0, b"c").unwrap(), None, "positional edits wait for close");
        assert_eq!(positional.pending_edit().unwrap(), Edit::Field(ContainerField::Runtime, "cunc".into()));
    }

    #[test]
    fn sizes_and_offsets_are_bounded() {
        let mut b = replace(AttrFile::Labels);
        let big = vec![b' '; MAX_DOCUMENT_BYTES + 1];
        assert!(matches!(b.write(0, &big), Err(ValidationError::TooLarge { .. })));
        // The kernel splits a large write; the retry of the rest gets the same answer.
        assert!(matches!(b.write(0, b"x=1\n"), Err(ValidationError::TooLarge { .. })));
        let mut far = replace(AttrFile::Labels);
        assert!(matches!(far.write(u64::MAX - 1, b"x=1\n"), Err(ValidationError::TooLarge { .. })));
        let mut t = replace(AttrFile::Spec);
        assert!(matches!(t.truncate(1 << 40), Err(ValidationError::TooLarge { .. })));
        assert!(matches!(t.truncate(10), Err(ValidationError::InvalidField { .. })), "zeros never make a value");
        assert!(t.visible().is_empty(), "and the refused truncation changed nothing");
        t.write(0, b"{\"a\": 1}").unwrap();
        assert!(t.truncate(3).is_ok(), "shortening is an edit");
        assert_eq!(&*t.visible(), b"{\"a");
        let mut append = WriteBuffer::new(AttrFile::Labels, WriteMode::Append, b"a=1\nb=2\n".to_vec());
        append.write(0, b"c=3\n").unwrap();
        append.truncate(4).unwrap();
        assert_eq!(&*append.visible(), b"a=1\n", "an append handle shortens the file it shows");
        assert_eq!(append.pending_edit().unwrap(), Edit::ReplaceLabels(Labels::from_edits(parse_labels("a=1\n", true).unwrap())));
    }

    #[test]
    fn a_close_in_the_middle_of_a_label_line_leaves_the_line_open() {
        // `{ /bin/printf a=; echo 1; } > labels`: the child's exit closes (and commits)
        // `a=` before `1` arrives through another descriptor.
        let mut b = replace(AttrFile::Labels);
        assert_eq!(b.write(0, b"a=").unwrap(), None);
        let tail = b.pending_edit().unwrap();
        b.mark_committed(tail);
        let edit = b.write(2, b"1\n").unwrap();
        assert_eq!(edit, Some(Edit::ReplaceLabels(Labels::from_edits(parse_labels("a=1\n", true).unwrap()))));
        let mut line = replace(AttrFile::Runtime);
        assert_eq!(line.write(0, b"cr").unwrap(), None);
        assert_eq!(line.write(2, b"un\n").unwrap(), Some(Edit::Field(ContainerField::Runtime, "crun".into())));
        assert!(line.write(5, b"x\n").is_err(), "a second line");
        assert!(matches!(
            WriteBuffer::new(AttrFile::Runtime, WriteMode::Append, b"runc\n".to_vec()).write(0, b"x"),
            Err(ValidationError::InvalidField { .. })
        ));
        assert!(replace(AttrFile::Spec).write(0, b"\x0c").map(drop).unwrap_err().to_string().contains("JSON"), "form feed is not JSON whitespace");
    }
}
