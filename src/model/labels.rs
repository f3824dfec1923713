//! Labels: the `key=value` map every image and container carries, with containerd's limits,
//! the `labels` file format and its replace/merge semantics.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ValidationError;

/// containerd's limit on `len(key) + len(value)`.
pub const MAX_LABEL_BYTES: usize = 4096;

/// The most labels one object may carry. containerd sets no such bound; ctrfs needs one
/// because every label change rewrites the whole record in one transaction and `labels`
/// and `listxattr` render the whole set, so a set of 100,000 short labels (which fits in
/// one 1 MiB `labels` write) would make each later change and listing cost that much.
/// 1024 is far above what containerd itself writes (a `gc.ref.content.*` label per
/// layer or manifest of an image).
pub const MAX_LABELS: usize = 1024;

/// The most bytes a label set may take as its `labels` file renders it: the limit of a
/// `labels` write, so that what `cat labels` gives can always be written back (labels
/// set one by one through `setxattr` could otherwise add up to more).
pub const MAX_LABELS_BYTES: usize = super::MAX_DOCUMENT_BYTES;

/// A validated label set, ordered by key so the file and `info.json` are stable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Labels(BTreeMap<String, String>);

/// One parsed line of a `labels` file: set a key, or (empty value) remove it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelEdit {
    /// `key=value` with a non-empty value.
    Set(String, String),
    /// `key=`: containerd's way to delete a label in an update.
    Remove(String),
}

impl Labels {
    /// No labels.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Iterates `(key, value)` in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no labels.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sets one label after checking it; an empty value removes the key (containerd).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ValidationError> {
        validate_label(key, value)?;
        if value.is_empty() {
            self.0.remove(key);
        } else {
            self.0.insert(key.to_owned(), value.to_owned());
        }
        Ok(())
    }

    /// Removes a label; returns whether it was there.
    pub fn remove(&mut self, key: &str) -> bool {
        self.0.remove(key).is_some()
    }

    /// Applies parsed edits in order (the `>>` merge).
    pub fn apply(&mut self, edits: Vec<LabelEdit>) {
        for edit in edits {
            match edit {
                LabelEdit::Set(k, v) => {
                    self.0.insert(k, v);
                }
                LabelEdit::Remove(k) => {
                    self.0.remove(&k);
                }
            }
        }
    }

    /// Builds the set a `>` write means: the edits alone (removals are simply absent).
    pub fn from_edits(edits: Vec<LabelEdit>) -> Self {
        let mut labels = Self::new();
        labels.apply(edits);
        labels
    }

    /// Checks the set as a whole: at most [`MAX_LABELS`] labels, rendered in at most
    /// [`MAX_LABELS_BYTES`]. Each label was checked on its own as it was parsed or set.
    pub fn validate_set(&self) -> Result<(), ValidationError> {
        if self.0.len() > MAX_LABELS {
            return Err(ValidationError::InvalidLabel {
                key: format!("({} labels)", self.0.len()),
                reason: "an object may carry at most 1024 labels",
            });
        }
        let bytes: usize = self.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
        if bytes > MAX_LABELS_BYTES {
            return Err(ValidationError::TooLarge { what: "the label set", limit: MAX_LABELS_BYTES });
        }
        Ok(())
    }

    /// The `labels` file: `key=value\n` per label, sorted by key.
    pub fn render(&self) -> String {
        self.iter().map(|(k, v)| format!("{k}={v}\n")).collect()
    }
}

/// Checks one key/value pair against containerd's rules.
pub fn validate_label(key: &str, value: &str) -> Result<(), ValidationError> {
    let refuse = |reason| Err(ValidationError::InvalidLabel { key: truncate_for_log(key), reason });
    if key.is_empty() {
        return refuse("label key must not be empty");
    }
    if key.len() + value.len() > MAX_LABEL_BYTES {
        return refuse("key and value together are longer than 4096 bytes");
    }
    if key.contains('=') {
        return refuse("label key must not hold '='");
    }
    if key.contains(['\n', '\0']) || value.contains(['\n', '\0']) {
        return refuse("labels must not hold newlines or NUL");
    }
    Ok(())
}

/// Parses one line (without its newline) of a `labels` file.
pub fn parse_line(line: &str) -> Result<Option<LabelEdit>, ValidationError> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    if line.is_empty() {
        return Ok(None);
    }
    let Some((key, value)) = line.split_once('=') else {
        return Err(ValidationError::InvalidLabel {
            key: truncate_for_log(line),
            reason: "a label line must be key=value",
        });
    };
    validate_label(key, value)?;
    Ok(Some(if value.is_empty() {
        LabelEdit::Remove(key.to_owned())
    } else {
        LabelEdit::Set(key.to_owned(), value.to_owned())
    }))
}

/// Parses a whole `labels` document. With `complete == false`, a last line without its
/// newline is left unjudged (more bytes may follow); this lets a `write()` fail as soon as
/// a finished line is bad.
pub fn parse_document(text: &str, complete: bool) -> Result<Vec<LabelEdit>, ValidationError> {
    let mut edits = Vec::new();
    let mut lines: Vec<&str> = text.split('\n').collect();
    let unfinished = lines.pop().unwrap_or("");
    for line in lines {
        edits.extend(parse_line(line)?);
    }
    if complete {
        edits.extend(parse_line(unfinished)?);
    }
    Ok(edits)
}

fn truncate_for_log(s: &str) -> String {
    let mut end = s.len().min(64);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sets_and_removals() {
        let edits = parse_document("b=2\na=1\n\nc=\n", true).unwrap();
        assert_eq!(
            edits,
            vec![
                LabelEdit::Set("b".into(), "2".into()),
                LabelEdit::Set("a".into(), "1".into()),
                LabelEdit::Remove("c".into()),
            ]
        );
        let mut labels = Labels::from_edits(edits);
        assert_eq!(labels.render(), "a=1\nb=2\n");
        labels.apply(parse_document("a=\nz=x=y\n", true).unwrap());
        assert_eq!(labels.render(), "b=2\nz=x=y\n");
    }

    #[test]
    fn unfinished_last_line_waits_unless_complete() {
        assert_eq!(parse_document("a=1\nbro", false).unwrap().len(), 1);
        assert!(parse_document("a=1\nbro", true).is_err());
        assert!(parse_document("bro\n", false).is_err());
    }

    #[test]
    fn bounds_the_set_by_count_and_rendered_size() {
        let mut labels = Labels::new();
        for i in 0..MAX_LABELS {
            labels.set(&format!("k{i}"), "v").unwrap();
        }
        assert_eq!(labels.validate_set(), Ok(()));
        labels.set("one-more", "v").unwrap();
        assert!(matches!(labels.validate_set(), Err(ValidationError::InvalidLabel { .. })));
        let mut big = Labels::new();
        for i in 0..300 {
            big.set(&format!("k{i:03}"), &"v".repeat(4000)).unwrap();
        }
        assert!(matches!(big.validate_set(), Err(ValidationError::TooLarge { .. })));
    }

    #[test]
    fn enforces_containerd_limits() {
        let key = "k".repeat(10);
        assert!(validate_label(&key, &"v".repeat(4086)).is_ok());
        assert!(matches!(
            validate_label(&key, &"v".repeat(4087)),
            Err(ValidationError::InvalidLabel { .. })
        ));
        assert!(validate_label("", "v").is_err());
        assert!(validate_label("a", "x\ny").is_err());
        assert!(parse_line("=v").is_err());
        let mut labels = Labels::new();
        labels.set("a", "1").unwrap();
        labels.set("a", "").unwrap();
        assert!(labels.is_empty());
    }
}
