//! OCI image documents: which media types are indexes, manifests and layers, what each
//! document references, how a platform is chosen from an index, and chain IDs.
//!
//! Pure parsing and arithmetic; reading the bytes is the caller's job.

use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use super::{Descriptor, ValidationError};

/// OCI image index.
pub const MEDIA_TYPE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image manifest.
pub const MEDIA_TYPE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Docker's manifest list (the index's predecessor, still served by registries).
pub const MEDIA_TYPE_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker's schema 2 manifest.
pub const MEDIA_TYPE_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// Largest index, manifest or config document read into memory (containerd uses 4 MiB).
pub const MAX_DOCUMENT_BYTES: u64 = 4 << 20;

/// A parsed index or manifest.
#[derive(Debug, Clone, PartialEq)]
pub enum Document {
    /// An index: one manifest per platform (or per tag).
    Index {
        /// The manifests it lists.
        manifests: Vec<Descriptor>,
    },
    /// A manifest: one config and the layers bottom-up.
    Manifest {
        /// The image configuration.
        config: Descriptor,
        /// The layers, lowest first.
        layers: Vec<Descriptor>,
    },
}

impl Document {
    /// Parses `bytes` as the document `media_type` announces; when the media type is not an
    /// index or manifest type, the document's own `mediaType` field or shape decides.
    pub fn parse(media_type: &str, bytes: &[u8]) -> Result<Document, ValidationError> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| invalid(format!("not JSON: {e}")))?;
        let declared = value.get("mediaType").and_then(Value::as_str).unwrap_or("");
        let kind = [media_type, declared]
            .into_iter()
            .find_map(kind_of_media_type)
            .or_else(|| kind_of_shape(&value))
            .ok_or_else(|| invalid(format!("{media_type} is neither an image index nor a manifest")))?;
        if value.get("schemaVersion").and_then(Value::as_u64) != Some(2) {
            return Err(invalid("schemaVersion must be 2".into()));
        }
        match kind {
            DocumentKind::Index => Ok(Document::Index { manifests: descriptors(&value, "manifests")? }),
            DocumentKind::Manifest => {
                let config = value.get("config").cloned().ok_or_else(|| invalid("a manifest needs a config".into()))?;
                let config = Descriptor::from_json(config).map_err(|e| invalid(format!("config: {e}")))?;
                Ok(Document::Manifest { config, layers: descriptors(&value, "layers")? })
            }
        }
    }

    /// Digests this document points at, for garbage collection.
    pub fn children(&self) -> Vec<String> {
        match self {
            Document::Index { manifests } => manifests.iter().map(|d| d.digest.clone()).collect(),
            Document::Manifest { config, layers } => {
                std::iter::once(config).chain(layers).map(|d| d.digest.clone()).collect()
            }
        }
    }
}

/// What a blob's bytes reference, if they are an index or a manifest: used when a blob is
/// stored without a media type (a file copied into `content/`).
pub fn sniff_children(bytes: &[u8]) -> Vec<String> {
    if bytes.first() != Some(&b'{') {
        return Vec::new();
    }
    Document::parse("", bytes).map(|d| d.children()).unwrap_or_default()
}

#[derive(Clone, Copy)]
enum DocumentKind {
    Index,
    Manifest,
}

/// Whether a media type names an index or a manifest.
pub fn is_document_media_type(media_type: &str) -> bool {
    kind_of_media_type(media_type).is_some()
}

fn kind_of_media_type(media_type: &str) -> Option<DocumentKind> {
    match media_type {
        MEDIA_TYPE_INDEX | MEDIA_TYPE_DOCKER_LIST => Some(DocumentKind::Index),
        MEDIA_TYPE_MANIFEST | MEDIA_TYPE_DOCKER_MANIFEST => Some(DocumentKind::Manifest),
        _ => None,
    }
}

fn kind_of_shape(value: &Value) -> Option<DocumentKind> {
    if value.get("manifests").is_some_and(Value::is_array) {
        Some(DocumentKind::Index)
    } else if value.get("config").is_some_and(Value::is_object) && value.get("layers").is_some_and(Value::is_array) {
        Some(DocumentKind::Manifest)
    } else {
        None
    }
}

fn descriptors(value: &Value, field: &str) -> Result<Vec<Descriptor>, ValidationError> {
    let Some(items) = value.get(field).and_then(Value::as_array) else {
        return Err(invalid(format!("{field} must be an array")));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| Descriptor::from_json(item.clone()).map_err(|e| invalid(format!("{field}[{i}]: {e}"))))
        .collect()
}

/// The parts of an image configuration that unpacking needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageConfig {
    /// `os`.
    pub os: String,
    /// `architecture`.
    pub architecture: String,
    /// `rootfs.diff_ids`: the digest of each layer's uncompressed tar, lowest first.
    pub diff_ids: Vec<String>,
}

impl ImageConfig {
    /// Parses a config blob.
    pub fn parse(bytes: &[u8]) -> Result<ImageConfig, ValidationError> {
        #[derive(Deserialize)]
        struct RootFs {
            #[serde(rename = "type")]
            kind: String,
            diff_ids: Vec<String>,
        }
        #[derive(Deserialize)]
        struct Raw {
            #[serde(default)]
            os: String,
            #[serde(default)]
            architecture: String,
            rootfs: RootFs,
        }
        let raw: Raw = serde_json::from_slice(bytes).map_err(|e| invalid(format!("image config: {e}")))?;
        if raw.rootfs.kind != "layers" {
            return Err(invalid(format!("image config: rootfs.type is {:?}, not \"layers\"", raw.rootfs.kind)));
        }
        for diff_id in &raw.rootfs.diff_ids {
            if !diff_id.starts_with("sha256:") || diff_id.len() != 71 {
                return Err(invalid(format!("image config: diff_id {diff_id:?} is not a sha256 digest")));
            }
        }
        Ok(ImageConfig { os: raw.os, architecture: raw.architecture, diff_ids: raw.rootfs.diff_ids })
    }
}

/// Chain IDs of a layer stack (OCI image spec): the first is the first diff ID, each next
/// one is `sha256(previous + " " + diff_id)`. A chain ID names a whole stack, so two images
/// sharing their lower layers share those snapshots.
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut chain: Vec<String> = Vec::with_capacity(diff_ids.len());
    for diff_id in diff_ids {
        let next = match chain.last() {
            None => diff_id.clone(),
            Some(previous) => {
                let digest = Sha256::digest(format!("{previous} {diff_id}").as_bytes());
                format!("sha256:{}", hex::encode(digest))
            }
        };
        chain.push(next);
    }
    chain
}

/// An OCI platform: what an index entry runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// `os`, e.g. `linux`.
    pub os: String,
    /// `architecture` in Go's spelling, e.g. `amd64`.
    pub architecture: String,
}

impl Platform {
    /// The platform this binary runs on.
    pub fn host() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Platform { os: "linux".into(), architecture: architecture.into() }
    }

    /// Whether an index entry's platform (absent: any) runs here.
    pub fn matches(&self, descriptor: &Descriptor) -> bool {
        let Some(platform) = &descriptor.platform else { return true };
        let field = |name| platform.get(name).and_then(Value::as_str).unwrap_or("");
        field("os") == self.os && field("architecture") == self.architecture
    }

    /// The entry of `manifests` to use here: the first that matches.
    pub fn choose<'a>(&self, manifests: &'a [Descriptor]) -> Option<&'a Descriptor> {
        manifests.iter().find(|m| self.matches(m) && kind_of_media_type(&m.media_type).is_some())
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)
    }
}

fn invalid(reason: String) -> ValidationError {
    ValidationError::InvalidImage { reason }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn digest(fill: char) -> String {
        format!("sha256:{}", fill.to_string().repeat(64))
    }

    fn descriptor(media_type: &str, fill: char) -> Value {
        json!({"mediaType": media_type, "digest": digest(fill), "size": 1})
    }

    #[test]
    fn parses_manifests_and_indexes_and_lists_their_children() {
        let manifest = json!({"schemaVersion": 2, "mediaType": MEDIA_TYPE_MANIFEST,
            "config": descriptor("application/vnd.oci.image.config.v1+json", 'c'),
            "layers": [descriptor("application/vnd.oci.image.layer.v1.tar+gzip", '1'),
                       descriptor("application/vnd.oci.image.layer.v1.tar", '2')]});
        let bytes = serde_json::to_vec(&manifest).unwrap();
        let doc = Document::parse(MEDIA_TYPE_MANIFEST, &bytes).unwrap();
        assert_eq!(doc.children(), vec![digest('c'), digest('1'), digest('2')]);
        assert_eq!(sniff_children(&bytes), doc.children());

        let index = json!({"schemaVersion": 2, "manifests": [descriptor(MEDIA_TYPE_MANIFEST, 'e')]});
        let bytes = serde_json::to_vec(&index).unwrap();
        assert_eq!(Document::parse("", &bytes).unwrap().children(), vec![digest('e')]);
        assert!(sniff_children(b"\x1f\x8b not json").is_empty());
    }

    #[test]
    fn refuses_documents_that_are_not_oci() {
        let cases: [(&str, &[u8]); 5] = [
            (MEDIA_TYPE_MANIFEST, b"not json"),
            (MEDIA_TYPE_MANIFEST, br#"{"schemaVersion": 1, "config": {}, "layers": []}"#),
            (MEDIA_TYPE_MANIFEST, br#"{"schemaVersion": 2, "layers": []}"#),
            (MEDIA_TYPE_INDEX, br#"{"schemaVersion": 2, "manifests": [{"digest": "md5:x"}]}"#),
            ("application/octet-stream", br#"{"schemaVersion": 2}"#),
        ];
        for (media_type, bytes) in cases {
            let result = Document::parse(media_type, bytes);
            assert!(matches!(result, Err(ValidationError::InvalidImage { .. })), "{}", String::from_utf8_lossy(bytes));
        }
    }

    #[test]
    fn chain_ids_follow_the_image_spec() {
        let diff_ids = vec![digest('a'), digest('b')];
        let chain = chain_ids(&diff_ids);
        assert_eq!(chain[0], digest('a'));
        let expected = Sha256::digest(format!("{} {}", digest('a'), digest('b')).as_bytes());
        assert_eq!(chain[1], format!("sha256:{}", hex::encode(expected)));
        assert!(chain_ids(&[]).is_empty());
    }

    #[test]
    fn a_config_needs_layer_diff_ids() {
        let good = json!({"os": "linux", "architecture": "amd64", "rootfs": {"type": "layers", "diff_ids": [digest('a')]}});
        let config = ImageConfig::parse(&serde_json::to_vec(&good).unwrap()).unwrap();
        assert_eq!(config.diff_ids, vec![digest('a')]);
        for bad in [json!({"rootfs": {"type": "other", "diff_ids": []}}), json!({"rootfs": {"type": "layers", "diff_ids": ["x"]}}), json!({})] {
            assert!(ImageConfig::parse(&serde_json::to_vec(&bad).unwrap()).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_host_platform_picks_its_manifest() {
        let host = Platform::host();
        let mut other = descriptor(MEDIA_TYPE_MANIFEST, '1');
        other["platform"] = json!({"os": "linux", "architecture": "s390x-not-here"});
        let mut ours = descriptor(MEDIA_TYPE_MANIFEST, '2');
        ours["platform"] = json!({"os": host.os, "architecture": host.architecture});
        let manifests: Vec<Descriptor> = [other, ours].into_iter().map(|v| Descriptor::from_json(v).unwrap()).collect();
        assert_eq!(host.choose(&manifests).unwrap().digest, digest('2'));
        assert!(host.choose(&manifests[..1]).is_none());
    }
}
