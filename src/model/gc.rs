//! containerd's garbage-collection labels: the label keys by which any labelled record
//! pins content or snapshots beyond its built-in references.

use super::Labels;

/// Prefix of labels whose value is a content digest to keep (`…content`, `…content.l.0`).
pub const LABEL_REF_CONTENT: &str = "containerd.io/gc.ref.content";
/// Prefix of labels whose value is a snapshot key to keep: `…snapshot.<snapshotter>[/…]`.
pub const LABEL_REF_SNAPSHOT: &str = "containerd.io/gc.ref.snapshot.";
/// A blob or snapshot carrying this label is kept for its own sake.
pub const LABEL_ROOT: &str = "containerd.io/gc.root";

/// One reference a label makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelRef<'a> {
    /// A content digest.
    Content(&'a str),
    /// A snapshot key of the named snapshotter.
    Snapshot {
        /// The snapshotter, e.g. `overlayfs`.
        snapshotter: &'a str,
        /// The snapshot key.
        key: &'a str,
    },
}

/// The references `labels` make.
pub fn label_refs(labels: &Labels) -> impl Iterator<Item = LabelRef<'_>> {
    labels.iter().filter_map(|(key, value)| {
        if key.starts_with(LABEL_REF_CONTENT) {
            return Some(LabelRef::Content(value));
        }
        let rest = key.strip_prefix(LABEL_REF_SNAPSHOT)?;
        let snapshotter = rest.split('/').next().filter(|s| !s.is_empty())?;
        Some(LabelRef::Snapshot { snapshotter, key: value })
    })
}

/// Whether the labels make their record a collection root.
pub fn is_root(labels: &Labels) -> bool {
    labels.get(LABEL_ROOT).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_content_and_snapshot_references() {
        let mut labels = Labels::new();
        labels.set("containerd.io/gc.ref.content.l.0", "sha256:aa").unwrap();
        labels.set("containerd.io/gc.ref.content", "sha256:bb").unwrap();
        labels.set("containerd.io/gc.ref.snapshot.overlayfs", "k1").unwrap();
        labels.set("containerd.io/gc.ref.snapshot.native/extra", "k2").unwrap();
        labels.set("containerd.io/gc.ref.snapshot.", "ignored").unwrap();
        labels.set("other", "x").unwrap();
        let refs: Vec<_> = label_refs(&labels).collect();
        assert_eq!(
            refs,
            vec![
                LabelRef::Content("sha256:bb"),
                LabelRef::Content("sha256:aa"),
                LabelRef::Snapshot { snapshotter: "native", key: "k2" },
                LabelRef::Snapshot { snapshotter: "overlayfs", key: "k1" },
            ]
        );
        assert!(!is_root(&labels));
        labels.set(LABEL_ROOT, "true").unwrap();
        assert!(is_root(&labels));
    }
}
