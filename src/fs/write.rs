//! Write rules: how bytes written to an attribute file become one validated change.
//!
//! Writes are buffered per open file. Each `write()` re-judges what the buffer holds so far
//! and fails as soon as the bytes prove the document invalid (so `echo '{bad' > target`
//! reports an error in the shell); a document that is only incomplete waits for `close()`
//! (flush), where it is parsed into an [`Edit`] and committed in one store transaction.

use serde_json::Value;

use super::ino::AttrFile;
use crate::model::{
    parse_labels, validate_spec, ContainerField, Descriptor, LabelEdit, Labels, ValidationError,
    MAX_DOCUMENT_BYTES, MAX_SPEC_BYTES,
};
use crate::store::{NodeId, NodeKind, Result as StoreResult, Writer};

/// How an open file's bytes relate to the stored value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Opened with `O_TRUNC`: the bytes are the new value.
    Replace,
    /// Opened with `O_APPEND`: labels merge; other files append to the current text.
    Append,
    /// Opened for writing without either: starts from the current content, edited in place.
    Positional,
}

/// The pending bytes of one open file.
#[derive(Debug)]
pub struct WriteBuffer {
    /// How the bytes apply.
    pub mode: WriteMode,
    /// The content at open (the base for `Positional`, the prefix for `Append` of text).
    pub base: Vec<u8>,
    /// The bytes written (for `Positional`, the whole edited document).
    pub data: Vec<u8>,
    /// Something was written or truncated since the last commit.
    pub dirty: bool,
    /// Bytes were written since the last commit (truncation alone does not count).
    pub written: bool,
    /// Why a `write()` was refused; nothing from this handle is committed after that,
    /// and later writes get the same answer.
    pub failure: Option<ValidationError>,
    /// The last commit of this handle was a bare truncation (no bytes): if a write is then
    /// refused, the value from before the truncation is put back.
    pub truncation_committed: bool,
}

impl WriteBuffer {
    /// A buffer for a file opened for writing.
    pub fn new(mode: WriteMode, current: Vec<u8>) -> Self {
        let data = if mode == WriteMode::Positional { current.clone() } else { Vec::new() };
        // O_TRUNC itself is a change: `: > labels` must clear the labels.
        WriteBuffer {
            mode,
            base: current,
            data,
            dirty: mode == WriteMode::Replace,
            written: false,
            failure: None,
            truncation_committed: false,
        }
    }

    /// What a read through this handle sees.
    pub fn visible(&self) -> std::borrow::Cow<'_, [u8]> {
        document(self.mode, &self.base, &self.data)
    }

    /// Applies one `write()` and judges the result; returns the bytes accepted. After a
    /// refusal the handle stays failed: nothing it holds will be committed.
    pub fn write(&mut self, file: AttrFile, offset: u64, bytes: &[u8]) -> Result<usize, ValidationError> {
        if let Some(failure) = &self.failure {
            return Err(failure.clone());
        }
        let result = self.write_and_judge(file, offset, bytes);
        if let Err(e) = &result {
            self.failure = Some(e.clone());
        }
        result
    }

    /// Whether a write was refused.
    pub fn failed(&self) -> bool {
        self.failure.is_some()
    }

    /// The change that puts back the value this handle saw at open.
    pub fn restore_edit(&self, file: AttrFile) -> Result<Edit, ValidationError> {
        parse_complete(file, WriteMode::Replace, &[], &self.base)
    }

    fn write_and_judge(&mut self, file: AttrFile, offset: u64, bytes: &[u8]) -> Result<usize, ValidationError> {
        let limit = size_limit(file);
        let end = match self.mode {
            WriteMode::Append => self.base.len() + self.data.len() + bytes.len(),
            _ => offset as usize + bytes.len(),
        };
        if end > limit {
            return Err(ValidationError::TooLarge { what: file.name(), limit });
        }
        match self.mode {
            WriteMode::Append => self.data.extend_from_slice(bytes),
            WriteMode::Replace | WriteMode::Positional => {
                let offset = offset as usize;
                if self.data.len() < offset + bytes.len() {
                    self.data.resize(offset + bytes.len(), 0);
                }
                self.data[offset..offset + bytes.len()].copy_from_slice(bytes);
            }
        }
        self.dirty = true;
        self.written = true;
        if self.mode != WriteMode::Positional {
            judge_so_far(file, self.mode, &self.base, &self.data)?;
        }
        Ok(bytes.len())
    }

    /// `ftruncate` through this handle.
    pub fn truncate(&mut self, size: u64) {
        match self.mode {
            WriteMode::Append if size == 0 => {
                // Truncating an append handle empties the file: it becomes a replacement.
                self.mode = WriteMode::Replace;
                self.data.clear();
            }
            _ => self.data.resize(size as usize, 0),
        }
        self.dirty = true;
    }

    /// The change this buffer asks for, judged as a complete document.
    pub fn edit(&self, file: AttrFile) -> Result<Edit, ValidationError> {
        parse_complete(file, self.mode, &self.base, &self.data)
    }
}

/// One validated change to one field of a record.
#[derive(Debug, Clone, PartialEq)]
pub enum Edit {
    /// A new image target.
    Target(Descriptor),
    /// A new (or cleared) runtime spec.
    Spec(Option<Value>),
    /// A new value for a one-line container field.
    Field(ContainerField, String),
    /// A whole new label set (`>`).
    ReplaceLabels(Labels),
    /// Label edits merged into the current set (`>>`).
    MergeLabels(Vec<LabelEdit>),
}

impl Edit {
    /// Applies the edit to the record of `node` inside the caller's transaction.
    pub fn apply(self, w: &mut Writer<'_>, node: NodeId, kind: NodeKind) -> StoreResult<()> {
        match (kind, self) {
            (NodeKind::ImageDir, Edit::Target(descriptor)) => w.put_image_target(node, descriptor).map(drop),
            (NodeKind::Container, Edit::Spec(spec)) => w
                .update_container(node, |c| {
                    c.spec = spec;
                    Ok(())
                })
                .map(drop),
            (NodeKind::Container, Edit::Field(field, value)) => {
                w.update_container(node, |c| c.set_field(field, &value)).map(drop)
            }
            (_, Edit::ReplaceLabels(labels)) => w
                .update_labels(node, |l| {
                    *l = labels;
                    Ok(())
                })
                .map(drop),
            (_, Edit::MergeLabels(edits)) => w
                .update_labels(node, |l| {
                    l.apply(edits);
                    Ok(())
                })
                .map(drop),
            (kind, edit) => Err(crate::store::StoreError::NotPermitted(format!("{edit:?} does not apply to a {kind:?}"))),
        }
    }
}

/// The largest document a file accepts.
pub fn size_limit(file: AttrFile) -> usize {
    match file {
        AttrFile::Spec => MAX_SPEC_BYTES,
        _ => MAX_DOCUMENT_BYTES,
    }
}

/// The bytes that make up the document: for `Append`, what was there plus what came.
fn document<'a>(mode: WriteMode, base: &'a [u8], data: &'a [u8]) -> std::borrow::Cow<'a, [u8]> {
    match mode {
        WriteMode::Append => std::borrow::Cow::Owned([base, data].concat()),
        WriteMode::Replace | WriteMode::Positional => std::borrow::Cow::Borrowed(data),
    }
}

/// Judges an unfinished document: errors only when no further bytes could make it valid.
fn judge_so_far(file: AttrFile, mode: WriteMode, base: &[u8], data: &[u8]) -> Result<(), ValidationError> {
    match file {
        AttrFile::Target | AttrFile::Spec => {
            let bytes = document(mode, base, data);
            match serde_json::from_slice::<Value>(&bytes) {
                Ok(value) => judge_json(file, value).map(drop),
                Err(e) if e.is_eof() => Ok(()),
                Err(e) => Err(json_error(file, e.to_string())),
            }
        }
        AttrFile::Labels => {
            // For `>>` only the appended lines are label edits; the base is already valid.
            let text = utf8_prefix(file, data)?;
            parse_labels(text, false).map(drop)
        }
        AttrFile::Image | AttrFile::Snapshotter | AttrFile::Snapshot | AttrFile::Runtime => {
            let bytes = document(mode, base, data);
            let text = utf8_prefix(file, &bytes)?;
            match text.split_once('\n') {
                Some((line, "")) => container_field(file).validate(line),
                Some(_) => Err(ValidationError::InvalidField { field: file.name(), reason: "must be a single line".into() }),
                None => Ok(()),
            }
        }
        AttrFile::Info
        | AttrFile::SnapshotKind
        | AttrFile::Parent
        | AttrFile::Mounts
        | AttrFile::Usage
        | AttrFile::References => Ok(()),
    }
}

/// Parses a finished document into the change it asks for.
fn parse_complete(file: AttrFile, mode: WriteMode, base: &[u8], data: &[u8]) -> Result<Edit, ValidationError> {
    let bytes = document(mode, base, data);
    match file {
        AttrFile::Target => {
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Err(ValidationError::InvalidDescriptor { reason: "target must not be empty".into() });
            }
            let value = serde_json::from_slice(&bytes).map_err(|e| json_error(file, e.to_string()))?;
            judge_json(file, value)
        }
        AttrFile::Spec => {
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(Edit::Spec(None));
            }
            let value = serde_json::from_slice(&bytes).map_err(|e| json_error(file, e.to_string()))?;
            judge_json(file, value)
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

fn judge_json(file: AttrFile, value: Value) -> Result<Edit, ValidationError> {
    match file {
        AttrFile::Target => Descriptor::from_json(value).map(Edit::Target),
        _ => {
            validate_spec(&value)?;
            Ok(Edit::Spec(Some(value)))
        }
    }
}

fn json_error(file: AttrFile, reason: String) -> ValidationError {
    match file {
        AttrFile::Target => ValidationError::InvalidDescriptor { reason: format!("not JSON: {reason}") },
        _ => ValidationError::InvalidSpec { reason: format!("not JSON: {reason}") },
    }
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

/// The valid UTF-8 prefix of bytes that may end inside a multi-byte character.
fn utf8_prefix(file: AttrFile, bytes: &[u8]) -> Result<&str, ValidationError> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Ok(text),
        Err(e) if e.error_len().is_none() => Ok(std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default()),
        Err(_) => utf8(file, bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest() -> String {
        format!("sha256:{}", "b".repeat(64))
    }

    #[test]
    fn json_is_refused_as_soon_as_the_bytes_prove_it_invalid() {
        let mut b = WriteBuffer::new(WriteMode::Replace, Vec::new());
        assert!(b.write(AttrFile::Target, 0, b"{\"mediaType\":").is_ok(), "incomplete waits");
        assert!(b.edit(AttrFile::Target).is_err(), "but is invalid when complete");
        let mut bad = WriteBuffer::new(WriteMode::Replace, Vec::new());
        assert!(bad.write(AttrFile::Target, 0, b"{bad\n").is_err());
        let doc = format!("{{\"mediaType\":\"m\",\"digest\":\"md5:{}\",\"size\":1}}\n", "0".repeat(32));
        assert!(WriteBuffer::new(WriteMode::Replace, Vec::new()).write(AttrFile::Target, 0, doc.as_bytes()).is_err());
        let negative = format!("{{\"mediaType\":\"m\",\"digest\":\"{}\",\"size\":-1}}", digest());
        assert!(WriteBuffer::new(WriteMode::Replace, Vec::new()).write(AttrFile::Target, 0, negative.as_bytes()).is_err());
        let mut spec = WriteBuffer::new(WriteMode::Replace, Vec::new());
        assert!(spec.write(AttrFile::Spec, 0, b"[1]\n").is_err());
    }

    #[test]
    fn a_document_split_over_writes_commits_at_close() {
        let doc = format!("{{\"mediaType\":\"m\",\"digest\":\"{}\",\"size\":3}}\n", digest());
        let (a, rest) = doc.split_at(10);
        let mut b = WriteBuffer::new(WriteMode::Replace, Vec::new());
        b.write(AttrFile::Target, 0, a.as_bytes()).unwrap();
        b.write(AttrFile::Target, a.len() as u64, rest.as_bytes()).unwrap();
        assert!(matches!(b.edit(AttrFile::Target).unwrap(), Edit::Target(d) if d.size == 3));
    }

    #[test]
    fn labels_replace_or_merge_by_open_mode() {
        let mut replace = WriteBuffer::new(WriteMode::Replace, b"old=1\n".to_vec());
        replace.write(AttrFile::Labels, 0, b"b=2\na=1\n").unwrap();
        assert_eq!(replace.edit(AttrFile::Labels).unwrap(), Edit::ReplaceLabels(Labels::from_edits(parse_labels("a=1\nb=2\n", true).unwrap())));
        let mut merge = WriteBuffer::new(WriteMode::Append, b"old=1\n".to_vec());
        merge.write(AttrFile::Labels, 99, b"old=\nnew=2\n").unwrap();
        assert_eq!(
            merge.edit(AttrFile::Labels).unwrap(),
            Edit::MergeLabels(vec![LabelEdit::Remove("old".into()), LabelEdit::Set("new".into(), "2".into())])
        );
        let mut bad = WriteBuffer::new(WriteMode::Replace, Vec::new());
        assert!(bad.write(AttrFile::Labels, 0, b"novalue\n").is_err());
        assert!(bad.failed());
        assert!(bad.write(AttrFile::Labels, 0, b"x=1\n").is_err(), "a failed handle stays failed");
    }

    #[test]
    fn truncation_alone_is_a_change() {
        let empty = WriteBuffer::new(WriteMode::Replace, b"a=1\n".to_vec());
        assert!(empty.dirty);
        assert_eq!(empty.edit(AttrFile::Labels).unwrap(), Edit::ReplaceLabels(Labels::new()));
        assert!(empty.edit(AttrFile::Target).is_err());
        assert_eq!(empty.edit(AttrFile::Spec).unwrap(), Edit::Spec(None));
    }

    #[test]
    fn one_line_fields_refuse_a_second_line_at_write() {
        let mut b = WriteBuffer::new(WriteMode::Replace, Vec::new());
        assert!(b.write(AttrFile::Runtime, 0, b"crun\n").is_ok());
        assert_eq!(b.edit(AttrFile::Runtime).unwrap(), Edit::Field(ContainerField::Runtime, "crun".into()));
        assert!(b.write(AttrFile::Runtime, 5, b"more\n").is_err());
        let mut positional = WriteBuffer::new(WriteMode::Positional, b"runc\n".to_vec());
        positional.write(AttrFile::Runtime, 0, b"c").unwrap();
        assert_eq!(positional.edit(AttrFile::Runtime).unwrap(), Edit::Field(ContainerField::Runtime, "cunc".into()));
    }

    #[test]
    fn oversized_documents_are_refused() {
        let mut b = WriteBuffer::new(WriteMode::Replace, Vec::new());
        let big = vec![b' '; MAX_DOCUMENT_BYTES + 1];
        assert!(matches!(b.write(AttrFile::Labels, 0, &big), Err(ValidationError::TooLarge { .. })));
        // The kernel splits a large write; the retry of the rest gets the same answer.
        assert!(matches!(b.write(AttrFile::Labels, 0, b"x=1\n"), Err(ValidationError::TooLarge { .. })));
    }
}
