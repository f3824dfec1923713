//! What an OCI image layout says, judged before anything is named: blob digests, the
//! `oci-layout` marker, `index.json` and the image name each of its entries becomes.
//!
//! Nothing here touches the mount; the caller feeds in bytes it read from a directory or
//! an archive, so both sources share one set of rules.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::Value;
use sha2::{Digest as _, Sha256, Sha512};

use super::ImportError;
use crate::model::{validate_image_name, Descriptor};

/// The annotation OCI layouts use for an entry's tag (umoci, skopeo and docker set it).
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Media types whose content lists further blobs, followed when counting an image's blobs.
const PARENT_MEDIA_TYPES: [&str; 4] = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// The digest algorithms OCI registers, which are the only ones ctrfs stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Algorithm {
    /// SHA-256: 64 hex digits.
    Sha256,
    /// SHA-512: 128 hex digits.
    Sha512,
}

impl Algorithm {
    /// The algorithm a `blobs/` directory (or digest prefix) names.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "sha256" => Some(Self::Sha256),
            "sha512" => Some(Self::Sha512),
            _ => None,
        }
    }

    /// The name used in digests and as the directory under `blobs/` and `content/`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "sha256",
            Self::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Self::Sha256 => 64,
            Self::Sha512 => 128,
        }
    }

    /// A fresh hasher for this algorithm.
    pub fn hasher(self) -> Hasher {
        match self {
            Self::Sha256 => Hasher::Sha256(Sha256::new()),
            Self::Sha512 => Hasher::Sha512(Sha512::new()),
        }
    }
}

/// A running digest of a blob being copied.
pub enum Hasher {
    /// For sha256 blobs.
    Sha256(Sha256),
    /// For sha512 blobs.
    Sha512(Sha512),
}

impl Hasher {
    /// Feeds more of the blob.
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Self::Sha256(h) => h.update(bytes),
            Self::Sha512(h) => h.update(bytes),
        }
    }

    /// The lowercase hex digest of everything fed.
    pub fn finish_hex(self) -> String {
        match self {
            Self::Sha256(h) => hex::encode(h.finalize()),
            Self::Sha512(h) => hex::encode(h.finalize()),
        }
    }
}

/// A blob's identity: algorithm and lowercase hex, as in `blobs/<alg>/<hex>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlobId {
    /// The digest algorithm.
    pub algorithm: Algorithm,
    /// The encoded digest, validated for the algorithm.
    pub hex: String,
}

impl BlobId {
    /// Builds an id from a directory name and a file name, if they form a valid digest.
    pub fn from_parts(algorithm: &str, hex: &str) -> Option<Self> {
        let algorithm = Algorithm::from_name(algorithm)?;
        let lowercase_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
        (hex.len() == algorithm.hex_len() && hex.bytes().all(lowercase_hex))
            .then(|| Self { algorithm, hex: hex.to_owned() })
    }

    /// Parses `algorithm:hex`.
    pub fn parse(digest: &str) -> Option<Self> {
        let (algorithm, hex) = digest.split_once(':')?;
        Self::from_parts(algorithm, hex)
    }

    /// `<alg>/<hex>`: where the blob sits under `blobs/` and under `content/`.
    pub fn relative_path(&self) -> String {
        format!("{}/{}", self.algorithm.name(), self.hex)
    }
}

impl fmt::Display for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), self.hex)
    }
}

/// Everything read from a layout: the two small metadata files and each blob's size.
#[derive(Debug, Default)]
pub struct Catalog {
    /// The bytes of `oci-layout`, once seen.
    pub oci_layout: Option<Vec<u8>>,
    /// The bytes of `index.json`, once seen.
    pub index: Option<Vec<u8>>,
    /// Every blob of the layout with its size in bytes.
    pub blobs: BTreeMap<BlobId, u64>,
}

impl Catalog {
    /// The sum of all blob sizes.
    pub fn total_bytes(&self) -> u64 {
        self.blobs.values().sum()
    }
}

/// One `index.json` entry that will become an image.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The image name it gets.
    pub name: String,
    /// The entry exactly as index.json gives it; this is what `target` receives.
    pub raw: Value,
    /// The same entry, typed.
    pub descriptor: Descriptor,
    /// The blob the entry points at.
    pub blob: BlobId,
}

fn not_a_layout(why: impl Into<String>) -> ImportError {
    ImportError::NotALayout(why.into())
}

/// Checks every rule a layout must satisfy and names its entries; `name` is `--name`.
pub fn plan(catalog: &Catalog, name: Option<&str>) -> Result<Vec<Entry>, ImportError> {
    check_oci_layout(catalog.oci_layout.as_deref())?;
    let index = catalog.index.as_deref().ok_or_else(|| not_a_layout("no index.json"))?;
    let descriptors = parse_index(index)?;
    let names = image_names(&descriptors, name)?;
    let mut entries = Vec::with_capacity(descriptors.len());
    for (position, ((raw, descriptor), name)) in descriptors.into_iter().zip(names).enumerate() {
        let blob = BlobId::parse(&descriptor.digest)
            .ok_or_else(|| not_a_layout(format!("index.json entry {position}: bad digest")))?;
        check_present(position, &blob, descriptor.size, &catalog.blobs)?;
        entries.push(Entry { name, raw, descriptor, blob });
    }
    Ok(entries)
}

/// `oci-layout` must be a JSON object naming a layout version.
pub fn check_oci_layout(bytes: Option<&[u8]>) -> Result<(), ImportError> {
    let bytes = bytes.ok_or_else(|| not_a_layout("no oci-layout file"))?;
    let doc: Value =
        serde_json::from_slice(bytes).map_err(|e| not_a_layout(format!("oci-layout is not JSON: {e}")))?;
    match doc.get("imageLayoutVersion") {
        Some(Value::String(_)) => Ok(()),
        _ => Err(not_a_layout("oci-layout has no imageLayoutVersion string")),
    }
}

/// Parses `index.json` into its entries, each kept raw and typed.
pub fn parse_index(bytes: &[u8]) -> Result<Vec<(Value, Descriptor)>, ImportError> {
    let doc: Value =
        serde_json::from_slice(bytes).map_err(|e| not_a_layout(format!("index.json is not JSON: {e}")))?;
    if doc.get("schemaVersion").and_then(Value::as_u64) != Some(2) {
        return Err(not_a_layout("index.json schemaVersion is not 2"));
    }
    if let Some(media_type) = doc.get("mediaType") {
        if media_type != "application/vnd.oci.image.index.v1+json" {
            return Err(not_a_layout(format!("index.json has mediaType {media_type}, not an OCI index")));
        }
    }
    let manifests = doc
        .get("manifests")
        .and_then(Value::as_array)
        .ok_or_else(|| not_a_layout("index.json has no manifests array"))?;
    if manifests.is_empty() {
        return Err(not_a_layout("index.json lists no manifests"));
    }
    manifests.iter().enumerate().map(|(i, raw)| typed_entry(i, raw)).collect()
}

fn typed_entry(position: usize, raw: &Value) -> Result<(Value, Descriptor), ImportError> {
    let descriptor = Descriptor::from_json(raw.clone())
        .map_err(|e| not_a_layout(format!("index.json entry {position}: {e}")))?;
    Ok((raw.clone(), descriptor))
}

fn ref_name(descriptor: &Descriptor) -> Option<&str> {
    let name = descriptor.annotations.as_ref()?.get(REF_NAME)?;
    (!name.is_empty()).then_some(name.as_str())
}

/// containerd's annotation for the whole image name (`ctr export`, `docker save` of
/// containerd-backed images).
const CONTAINERD_IMAGE_NAME: &str = "io.containerd.image.name";

fn full_name(descriptor: &Descriptor) -> Option<&str> {
    let name = descriptor.annotations.as_ref()?.get(CONTAINERD_IMAGE_NAME)?;
    (!name.is_empty()).then_some(name.as_str())
}

/// The image name of each entry, in order: `--name` alone for a single entry,
/// `NAME:<ref>` for several, the ref name itself without `--name`.
pub fn image_names(descriptors: &[(Value, Descriptor)], name: Option<&str>) -> Result<Vec<String>, ImportError> {
    let single = descriptors.len() == 1;
    let mut names = Vec::with_capacity(descriptors.len());
    for (position, (_, descriptor)) in descriptors.iter().enumerate() {
        let reference = ref_name(descriptor);
        let image = match (name, reference) {
            (Some(name), _) if single => name.to_owned(),
            (Some(name), Some(reference)) => format!("{name}:{reference}"),
            (Some(_), None) => return Err(ImportError::NoRefName { position }),
            // containerd and docker record the full name here; the ref name is often a tag.
            (None, _) if full_name(descriptor).is_some() => full_name(descriptor).unwrap_or_default().to_owned(),
            (None, Some(reference)) => reference.to_owned(),
            (None, None) => return Err(ImportError::NeedName { position }),
        };
        validate_image_name(&image).map_err(|source| ImportError::BadName { position, source })?;
        names.push(image);
    }
    check_unique(&names)?;
    Ok(names)
}

fn check_unique(names: &[String]) -> Result<(), ImportError> {
    let mut first_use = BTreeMap::new();
    for (position, name) in names.iter().enumerate() {
        if let Some(&first) = first_use.get(name.as_str()) {
            return Err(ImportError::DuplicateName { name: name.clone(), first, second: position });
        }
        first_use.insert(name.as_str(), position);
    }
    Ok(())
}

/// An image must not point at content the layout lacks, or at a blob of another size.
fn check_present(position: usize, blob: &BlobId, size: i64, blobs: &BTreeMap<BlobId, u64>) -> Result<(), ImportError> {
    match blobs.get(blob) {
        None => Err(not_a_layout(format!("index.json entry {position}: blob {blob} is not in blobs/"))),
        Some(&actual) if i64::try_from(actual) != Ok(size) => Err(not_a_layout(format!(
            "index.json entry {position}: descriptor size {size} but blob {blob} has {actual} bytes"
        ))),
        Some(_) => Ok(()),
    }
}

/// The blobs an image reaches from its target, among those the layout holds, with their
/// total size. `read_json` fetches a stored manifest or index; a child that is absent or
/// unreadable is simply not counted (layouts may legitimately omit some platforms).
pub fn reachable(
    root: &Descriptor,
    blobs: &BTreeMap<BlobId, u64>,
    mut read_json: impl FnMut(&BlobId, u64) -> Option<Value>,
) -> (usize, u64) {
    let mut seen = BTreeSet::new();
    let mut pending = vec![(root.media_type.clone(), root.digest.clone())];
    let mut total = 0;
    while let Some((media_type, digest)) = pending.pop() {
        let Some(blob) = BlobId::parse(&digest) else { continue };
        let Some(&size) = blobs.get(&blob) else { continue };
        if !seen.insert(blob.clone()) {
            continue;
        }
        total += size;
        if PARENT_MEDIA_TYPES.contains(&media_type.as_str()) {
            if let Some(doc) = read_json(&blob, size) {
                pending.extend(children(&doc));
            }
        }
    }
    (seen.len(), total)
}

/// The (mediaType, digest) pairs a manifest or index refers to.
fn children(doc: &Value) -> Vec<(String, String)> {
    let config = doc.get("config").into_iter();
    let lists = ["layers", "manifests"]
        .into_iter()
        .filter_map(|key| doc.get(key).and_then(Value::as_array))
        .flatten();
    config
        .chain(lists)
        .filter_map(|d| {
            let media_type = d.get("mediaType")?.as_str()?;
            let digest = d.get("digest")?.as_str()?;
            Some((media_type.to_owned(), digest.to_owned()))
        })
        .collect()
}
