//! `ctrfs import`: copies an OCI image layout (a directory, or a tar of one, gzip or not)
//! into a mounted ctrfs with ordinary file operations, so it works on any directory that
//! follows the mount's contract.
//!
//! Every blob goes to `content/<alg>/<hex>` first; only then does each index.json entry
//! become an image by its descriptor being written to `images/<name>/target`, so no image
//! ever names content that is not stored yet.

mod layout;
mod progress;
mod store;
#[cfg(test)]
mod tests;

use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use flate2::read::MultiGzDecoder;
use thiserror::Error;

use crate::model::ValidationError;
use layout::{BlobId, Catalog, Entry};
use progress::{Progress, Totals};
use store::Copier;

pub use layout::REF_NAME;
pub use progress::human_bytes;

/// `oci-layout` and `index.json` are read whole; anything larger is not a real one.
const MAX_METADATA_BYTES: u64 = 16 << 20;

/// Arguments of `ctrfs import`.
#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// The ctrfs mount point.
    pub mountpoint: PathBuf,
    /// An OCI image layout directory, or a tar of one (optionally gzip-compressed).
    pub path: PathBuf,
    /// The image name. With several index.json entries each becomes NAME:<its ref name>.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Report progress on stderr even when the blobs add up to less than 64 MiB.
    #[arg(long)]
    pub progress: bool,
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportReport {
    /// The images created or updated, in index.json order.
    pub images: Vec<ImportedImage>,
    /// Blobs written to the mount.
    pub blobs_copied: usize,
    /// Blobs already stored with the right size, left alone.
    pub blobs_skipped: usize,
    /// Bytes written to the mount.
    pub bytes_copied: u64,
}

/// One image an import created or updated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedImage {
    /// The image name.
    pub name: String,
    /// The digest its target names.
    pub digest: String,
    /// How many of the layout's blobs it reaches (its manifest or index included).
    pub blobs: usize,
    /// Their total size.
    pub bytes: u64,
}

/// Why an import failed; the Display form is the one-line reason the CLI prints.
#[derive(Debug, Error)]
pub enum ImportError {
    /// The source is not a usable OCI image layout.
    #[error("not an OCI image layout: {0}")]
    NotALayout(String),
    /// Without --name every entry needs a ref name.
    #[error("give --name: index.json entry {position} has no org.opencontainers.image.ref.name")]
    NeedName {
        /// The entry's position in `manifests`, from 0.
        position: usize,
    },
    /// With --name and several entries every entry needs a ref name.
    #[error("--name with several images: index.json entry {position} has no org.opencontainers.image.ref.name")]
    NoRefName {
        /// The entry's position in `manifests`, from 0.
        position: usize,
    },
    /// An entry's image name is not a valid one.
    #[error("index.json entry {position}: {source}")]
    BadName {
        /// The entry's position in `manifests`, from 0.
        position: usize,
        /// The rule the name broke.
        source: ValidationError,
    },
    /// Two entries would become the same image.
    #[error("index.json entries {first} and {second} both become image {name}")]
    DuplicateName {
        /// The shared name.
        name: String,
        /// The first entry with it.
        first: usize,
        /// The second entry with it.
        second: usize,
    },
    /// A blob's content hashes to something other than its name.
    #[error("blob {0}: content does not match its digest")]
    DigestMismatch(String),
    /// The mount point lacks the content store.
    #[error("{0} is not a ctrfs mount: it has no content/sha256 directory")]
    NotAMount(PathBuf),
    /// A file operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done ("cannot read", "cannot write", ...).
        action: &'static str,
        /// The file it was done to.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
}

impl ImportError {
    fn io(action: &'static str, path: &Path, source: io::Error) -> Self {
        Self::Io { action, path: path.to_owned(), source }
    }
}

/// `ctrfs import`: runs the import and prints one summary line per image, or the reason.
pub fn run_cli(args: &ImportArgs) -> ExitCode {
    match import(args) {
        Ok(report) => {
            for image in &report.images {
                println!(
                    "imported {} {} ({} blobs, {})",
                    image.name,
                    image.digest,
                    image.blobs,
                    human_bytes(image.bytes)
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ctrfs: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Imports the layout at `args.path` into the mount at `args.mountpoint`.
pub fn import(args: &ImportArgs) -> Result<ImportReport, ImportError> {
    if !args.mountpoint.join("content/sha256").is_dir() {
        return Err(ImportError::NotAMount(args.mountpoint.clone()));
    }
    match sniff(&args.path)? {
        Source::Directory => import_directory(args),
        Source::Tar { gzip } => import_tar(args, gzip),
    }
}

/// What kind of layout `ctrfs import` was given.
enum Source {
    Directory,
    Tar { gzip: bool },
}

/// Tells a directory from a tar from a gzip stream by looking, not by the file name.
fn sniff(path: &Path) -> Result<Source, ImportError> {
    let metadata = fs::metadata(path).map_err(|e| ImportError::io("cannot read", path, e))?;
    if metadata.is_dir() {
        return Ok(Source::Directory);
    }
    let mut head = Vec::with_capacity(512);
    File::open(path)
        .and_then(|f| f.take(512).read_to_end(&mut head))
        .map_err(|e| ImportError::io("cannot read", path, e))?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Source::Tar { gzip: true })
    } else if head.get(257..262) == Some(b"ustar") {
        Ok(Source::Tar { gzip: false })
    } else {
        Err(ImportError::NotALayout(format!(
            "{} is neither a directory nor a tar or tar.gz archive",
            path.display()
        )))
    }
}

fn import_directory(args: &ImportArgs) -> Result<ImportReport, ImportError> {
    let catalog = scan_directory(&args.path)?;
    // Everything is judged before the first byte is copied.
    let entries = layout::plan(&catalog, args.name.as_deref())?;
    let totals = Totals { blobs: Some(catalog.blobs.len()), bytes: Some(catalog.total_bytes()) };
    let mut copier = Copier::new(&args.mountpoint, progress_for(args, totals, catalog.total_bytes()));
    for (blob, &size) in &catalog.blobs {
        let path = args.path.join("blobs").join(blob.relative_path());
        let mut file = File::open(&path).map_err(|e| ImportError::io("cannot read", &path, e))?;
        copier.store(blob, size, &mut file, &path)?;
    }
    finish(args, copier, &entries, &catalog)
}

/// Reads the metadata files and lists `blobs/<alg>/<hex>` with sizes, in sorted order.
fn scan_directory(dir: &Path) -> Result<Catalog, ImportError> {
    let mut catalog = Catalog {
        oci_layout: read_optional(&dir.join("oci-layout"))?,
        index: read_optional(&dir.join("index.json"))?,
        blobs: Default::default(),
    };
    let blobs_dir = dir.join("blobs");
    if !blobs_dir.exists() {
        return Ok(catalog);
    }
    for algorithm_dir in list_dir(&blobs_dir)? {
        let algorithm = file_name(&algorithm_dir);
        check_algorithm(&algorithm)?;
        if !algorithm_dir.is_dir() {
            return Err(ImportError::NotALayout(format!("blobs/{algorithm} is not a directory")));
        }
        for blob_path in list_dir(&algorithm_dir)? {
            let blob = blob_id(&algorithm, &file_name(&blob_path))?;
            let metadata = fs::metadata(&blob_path).map_err(|e| ImportError::io("cannot read", &blob_path, e))?;
            if !metadata.is_file() {
                return Err(ImportError::NotALayout(format!("blobs/{} is not a file", blob.relative_path())));
            }
            catalog.blobs.insert(blob, metadata.len());
        }
    }
    Ok(catalog)
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, ImportError> {
    match File::open(path) {
        Ok(file) => read_small(file, path).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ImportError::io("cannot read", path, e)),
    }
}

/// Reads a metadata file whole, refusing one too large to be genuine.
fn read_small(source: impl Read, origin: &Path) -> Result<Vec<u8>, ImportError> {
    let mut bytes = Vec::new();
    source
        .take(MAX_METADATA_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ImportError::io("cannot read", origin, e))?;
    if bytes.len() as u64 > MAX_METADATA_BYTES {
        return Err(ImportError::NotALayout(format!("{} is larger than 16 MiB", origin.display())));
    }
    Ok(bytes)
}

/// The entries of a directory, sorted by name.
fn list_dir(dir: &Path) -> Result<Vec<PathBuf>, ImportError> {
    let read_error = |e| ImportError::io("cannot read", dir, e);
    let mut paths = fs::read_dir(dir)
        .map_err(read_error)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(read_error)?;
    paths.sort();
    Ok(paths)
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

fn check_algorithm(algorithm: &str) -> Result<(), ImportError> {
    match layout::Algorithm::from_name(algorithm) {
        Some(_) => Ok(()),
        None => Err(ImportError::NotALayout(format!(
            "blobs/{algorithm}: unsupported digest algorithm (sha256 and sha512 are)"
        ))),
    }
}

/// The blob `blobs/<algorithm>/<hex>` names, or why that name cannot be a blob.
fn blob_id(algorithm: &str, hex: &str) -> Result<BlobId, ImportError> {
    check_algorithm(algorithm)?;
    BlobId::from_parts(algorithm, hex)
        .ok_or_else(|| ImportError::NotALayout(format!("blobs/{algorithm}/{hex} is not named by a {algorithm} digest")))
}

fn import_tar(args: &ImportArgs, gzip: bool) -> Result<ImportReport, ImportError> {
    let path = &args.path;
    let file = File::open(path).map_err(|e| ImportError::io("cannot read", path, e))?;
    let archive_size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let totals = if gzip { Totals::default() } else { tar_totals(path) };
    let threshold_bytes = totals.bytes.unwrap_or(archive_size);
    let mut copier = Copier::new(&args.mountpoint, progress_for(args, totals, threshold_bytes));
    let reader: Box<dyn Read> = if gzip {
        Box::new(MultiGzDecoder::new(BufReader::new(file)))
    } else {
        Box::new(file)
    };
    let catalog = stream_tar(reader, path, &mut copier)?;
    let entries = layout::plan(&catalog, args.name.as_deref())?;
    finish(args, copier, &entries, &catalog)
}

/// Where an archive member belongs in a layout.
enum Member {
    OciLayout,
    Index,
    Blob { algorithm: String, hex: String },
    Other,
}

/// Classifies a member by its path, ignoring `./` and a leading `/`.
fn classify(path: &Path) -> Member {
    let parts: Vec<String> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(part) => Some(part.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    match parts.as_slice() {
        [name] if name == "oci-layout" => Member::OciLayout,
        [name] if name == "index.json" => Member::Index,
        [blobs, algorithm, hex] if blobs == "blobs" => Member::Blob { algorithm: algorithm.clone(), hex: hex.clone() },
        _ => Member::Other,
    }
}

/// Copies each blob as the archive reaches it and keeps the metadata files in memory, since
/// either may come before or after the blobs.
fn stream_tar(reader: Box<dyn Read>, path: &Path, copier: &mut Copier) -> Result<Catalog, ImportError> {
    let read_error = |e| ImportError::io("cannot read", path, e);
    let mut archive = tar::Archive::new(reader);
    let mut catalog = Catalog::default();
    for member in archive.entries().map_err(read_error)? {
        let mut member = member.map_err(read_error)?;
        let member_path = member.path().map_err(read_error)?.into_owned();
        let kind = member.header().entry_type();
        match classify(&member_path) {
            Member::Other => {}
            _ if kind.is_dir() => {}
            _ if !kind.is_file() => {
                return Err(ImportError::NotALayout(format!("{} is not a regular file", member_path.display())))
            }
            Member::OciLayout => catalog.oci_layout = Some(read_small(&mut member, &member_path)?),
            Member::Index => catalog.index = Some(read_small(&mut member, &member_path)?),
            Member::Blob { algorithm, hex } => {
                let blob = blob_id(&algorithm, &hex)?;
                let size = member.size();
                copier.store(&blob, size, &mut member, path)?;
                catalog.blobs.insert(blob, size);
            }
        }
    }
    Ok(catalog)
}

/// Counts the blobs of an uncompressed archive by seeking from header to header.
/// Best effort: a damaged archive gets no totals here and its error from the real pass.
fn tar_totals(path: &Path) -> Totals {
    let count = || -> io::Result<(usize, u64)> {
        let mut archive = tar::Archive::new(File::open(path)?);
        let mut totals = (0, 0);
        for member in archive.entries_with_seek()? {
            let member = member?;
            let is_blob = matches!(classify(&member.path()?), Member::Blob { .. });
            if is_blob && member.header().entry_type().is_file() {
                totals.0 += 1;
                totals.1 += member.size();
            }
        }
        Ok(totals)
    };
    match count() {
        Ok((blobs, bytes)) => Totals { blobs: Some(blobs), bytes: Some(bytes) },
        Err(_) => Totals::default(),
    }
}

fn progress_for(args: &ImportArgs, totals: Totals, size_hint: u64) -> Progress {
    Progress::new(args.progress || size_hint > progress::AUTO_THRESHOLD, totals)
}

/// With every blob in, points each image at its target and sums up.
fn finish(
    args: &ImportArgs,
    mut copier: Copier,
    entries: &[Entry],
    catalog: &Catalog,
) -> Result<ImportReport, ImportError> {
    copier.progress.finish();
    let mut images = Vec::with_capacity(entries.len());
    for entry in entries {
        store::write_target(&args.mountpoint, entry)?;
        let (blobs, bytes) =
            layout::reachable(&entry.descriptor, &catalog.blobs, |blob, size| copier.read_json(blob, size));
        images.push(ImportedImage { name: entry.name.clone(), digest: entry.blob.to_string(), blobs, bytes });
    }
    Ok(ImportReport {
        images,
        blobs_copied: copier.copied,
        blobs_skipped: copier.skipped,
        bytes_copied: copier.bytes_copied,
    })
}
