//! The container record: pure metadata that pins what a task needs (containerd's
//! `containers.Container`), and the rules for each of its one-line fields.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{validate_image_name, Labels, Timestamp, ValidationError};

/// Snapshotter used when none is written (containerd's default on Linux).
pub const DEFAULT_SNAPSHOTTER: &str = "overlayfs";
/// Runtime used when none is written.
pub const DEFAULT_RUNTIME: &str = "runc";
/// The largest spec accepted.
pub const MAX_SPEC_BYTES: usize = 4 << 20;

/// A container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Container {
    /// Required, immutable: the identifier (directory name under `containers/`).
    /// (The OCI runtime spec, file `spec`, is kept beside the record as the bytes written:
    /// optional, mutable, a JSON object when set; see `validate_spec`.)
    pub id: String,
    /// Optional, mutable (`image`): the image name it was made from; empty when none.
    pub image: String,
    /// Optional, mutable (`snapshotter`): empty means the default, `overlayfs`.
    pub snapshotter: String,
    /// Optional, mutable (`snapshot`): the snapshot key of its root filesystem.
    pub snapshot: String,
    /// Optional, mutable (`runtime`): empty means the default, `runc`.
    pub runtime: String,
    /// Optional, mutable (`labels`, `user.*` xattrs).
    pub labels: Labels,
    /// Set once when the record is created.
    pub created_at: Timestamp,
    /// Set on every committed change.
    pub updated_at: Timestamp,
}

/// The container fields that are one-line text files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerField {
    /// `image`
    Image,
    /// `snapshotter`
    Snapshotter,
    /// `snapshot`
    Snapshot,
    /// `runtime`
    Runtime,
}

impl ContainerField {
    /// The file name showing this field.
    pub fn file_name(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Snapshotter => "snapshotter",
            Self::Snapshot => "snapshot",
            Self::Runtime => "runtime",
        }
    }

    /// Checks a value (already stripped of its trailing newline) for this field.
    pub fn validate(self, value: &str) -> Result<(), ValidationError> {
        let field = self.file_name();
        let refuse = |reason: &str| Err(ValidationError::InvalidField { field, reason: reason.into() });
        if value.contains('\n') {
            return refuse("must be a single line");
        }
        if value.chars().any(char::is_control) {
            return refuse("must not hold control characters");
        }
        match self {
            Self::Image if value.is_empty() => Ok(()),
            Self::Image => validate_image_name(value),
            // Empty is unset: the default applies (`overlayfs`, `runc`).
            Self::Snapshotter | Self::Runtime if value.is_empty() => Ok(()),
            Self::Snapshotter if value.contains('/') => refuse("must not hold '/'"),
            Self::Snapshotter | Self::Runtime if value.len() > 255 => refuse("is longer than 255 bytes"),
            Self::Snapshot if value.is_empty() => Ok(()),
            Self::Snapshot => super::validate_snapshot_key(value),
            _ => Ok(()),
        }
    }
}

impl Container {
    /// Whether it references anything collection could free once it is gone: a snapshot
    /// key or a `containerd.io/gc.ref.*` label. (Deleting one that does not can free
    /// nothing, and needs no collection.)
    pub fn references_anything(&self) -> bool {
        !self.snapshot.is_empty() || super::label_refs(&self.labels).next().is_some()
    }

    /// A new container with containerd's defaults, created now.
    pub fn new(id: String, now: Timestamp) -> Self {
        Self {
            id,
            image: String::new(),
            snapshotter: String::new(),
            snapshot: String::new(),
            runtime: String::new(),
            labels: Labels::new(),
            created_at: now,
            updated_at: now,
        }
    }

    /// The current value of a one-line field.
    pub fn field(&self, field: ContainerField) -> &str {
        match field {
            ContainerField::Image => &self.image,
            ContainerField::Snapshotter => &self.snapshotter,
            ContainerField::Snapshot => &self.snapshot,
            ContainerField::Runtime => &self.runtime,
        }
    }

    /// Replaces a one-line field after validating the value.
    pub fn set_field(&mut self, field: ContainerField, value: &str) -> Result<(), ValidationError> {
        field.validate(value)?;
        let slot = match field {
            ContainerField::Image => &mut self.image,
            ContainerField::Snapshotter => &mut self.snapshotter,
            ContainerField::Snapshot => &mut self.snapshot,
            ContainerField::Runtime => &mut self.runtime,
        };
        *slot = value.to_owned();
        Ok(())
    }

    /// The read-only `info.json` document: the record, then the spec as written (without
    /// its surrounding whitespace) under `"spec"`, last, so that its size follows from the
    /// spec's length without the spec being read or rendered.
    pub fn info_json(&self, spec: Option<&[u8]>) -> String {
        let (mut text, tail) = self.info_frame();
        match spec.map(trim_json_whitespace) {
            Some(spec) => text.push_str(&String::from_utf8_lossy(spec)),
            None => text.push_str("null"),
        }
        text.push_str(tail);
        text
    }

    /// The length of `info_json` for a spec of `spec_len` bytes once trimmed.
    pub fn info_json_len(&self, spec_len: Option<usize>) -> usize {
        let (head, tail) = self.info_frame();
        head.len() + spec_len.unwrap_or("null".len()) + tail.len()
    }

    fn info_frame(&self) -> (String, &'static str) {
        let record = serde_json::to_string_pretty(self).expect("a container always serializes");
        let open = record.strip_suffix("\n}").unwrap_or(&record);
        (format!("{open},\n  \"spec\": "), "\n}\n")
    }
}

/// A JSON document without the whitespace around it.
pub fn trim_json_whitespace(bytes: &[u8]) -> &[u8] {
    let ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    let start = bytes.iter().position(|b| !ws(b)).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|b| !ws(b)).map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// Checks that a complete JSON value can be a runtime spec. The full OCI schema is the
/// runtime's business at task start; here only the shape that every consumer relies on.
pub fn validate_spec(value: &Value) -> Result<(), ValidationError> {
    let invalid = |reason: &str| Err(ValidationError::InvalidSpec { reason: reason.into() });
    let Some(object) = value.as_object() else {
        return invalid("a spec must be a JSON object");
    };
    if object.get("ociVersion").is_some_and(|v| !v.is_string()) {
        return invalid("ociVersion must be a string");
    }
    for field in ["process", "root", "linux", "annotations"] {
        if object.get(field).is_some_and(|v| !v.is_object()) {
            return invalid("process, root, linux and annotations must be objects");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_have_their_own_rules() {
        let rows: &[(ContainerField, &str, bool)] = &[
            (ContainerField::Image, "", true),
            (ContainerField::Image, "docker.io/library/busybox:1.36", true),
            (ContainerField::Image, "a//b", false),
            (ContainerField::Snapshotter, "overlayfs", true),
            (ContainerField::Snapshotter, "", true),
            (ContainerField::Snapshotter, "a/b", false),
            (ContainerField::Runtime, "io.containerd.runc.v2", true),
            (ContainerField::Runtime, "", true),
            (ContainerField::Snapshot, "", true),
            (ContainerField::Snapshot, "a\nb", false),
            (ContainerField::Snapshot, "tab\there", false),
        ];
        for (field, value, ok) in rows {
            assert_eq!(field.validate(value).is_ok(), *ok, "{field:?} {value:?}");
        }
    }

    #[test]
    fn spec_must_be_an_object() {
        assert!(validate_spec(&json!({"ociVersion": "1.0.2", "process": {"args": ["sh"]}})).is_ok());
        assert!(validate_spec(&json!([])).is_err());
        assert!(validate_spec(&json!({"process": 1})).is_err());
        assert!(validate_spec(&json!({"ociVersion": 1})).is_err());
    }

    #[test]
    fn a_new_container_sets_no_field() {
        let c = Container::new("web".into(), Timestamp::from_nanos(0));
        assert_eq!(c.field(ContainerField::Snapshotter), "", "unset: the default applies");
        assert_eq!(c.field(ContainerField::Runtime), "");
    }

    #[test]
    fn info_json_embeds_the_spec_as_written_and_knows_its_size_from_the_length() {
        let c = Container::new("web".into(), Timestamp::from_nanos(0));
        for spec in [None, Some(&b"\n  {\"process\": {\"args\": [\"sh\"]}}\n\n"[..])] {
            let text = c.info_json(spec);
            let value: Value = serde_json::from_str(&text).expect("valid JSON");
            assert_eq!(value["id"], "web");
            assert_eq!(value["spec"].is_null(), spec.is_none());
            assert_eq!(c.info_json_len(spec.map(|s| trim_json_whitespace(s).len())), text.len());
        }
        assert_eq!(trim_json_whitespace(b" \t\r\n"), b"");
    }
}
