//! Applies one OCI image layer, a tar changeset (plain or gzip), to a directory, with the
//! semantics of containerd's archive package: entries are created with their owners,
//! modes, extended attributes and times, and whiteouts either become overlayfs whiteouts
//! (the target is an upper directory) or delete from a full copy of the parent layers
//! (the copying snapshotter).
//!
//! The layer is streamed, never held in memory. Its uncompressed bytes are hashed as the
//! tar parser reads them, so the result carries the layer's diff ID.

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::{self, Metadata};
use std::io::{self, BufReader, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use flate2::read::MultiGzDecoder;
use log::debug;
use nix::sys::stat::SFlag;
use nix::sys::time::TimeSpec;
use sha2::{Digest, Sha256};
use tar::EntryType;

use super::at::Dir;
use super::copy::{copy_node, create_file, remove_tree};
use super::ops::{self, io_error, Times};
use super::{xattr, Result, SnapshotError};

const WHITEOUT_PREFIX: &[u8] = b".wh.";
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
const XATTR_PAX_PREFIX: &[u8] = b"SCHILY.xattr.";
const BUFFER_SIZE: usize = 64 * 1024;

/// How a layer's bytes are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar stream.
    None,
    /// Gzip; concatenated gzip members are read as one stream.
    Gzip,
}

impl Compression {
    /// The compression an OCI or Docker layer media type names: `...tar`,
    /// `...tar+gzip` or Docker's `...tar.gzip`. Zstd and anything else are refused.
    pub fn from_media_type(media_type: &str) -> Result<Compression> {
        if media_type.ends_with("+zstd") || media_type.ends_with(".zstd") {
            return Err(SnapshotError::Invalid("zstd layers are not supported".into()));
        }
        if media_type.ends_with("tar") {
            Ok(Compression::None)
        } else if media_type.ends_with("tar+gzip") || media_type.ends_with("tar.gzip") {
            Ok(Compression::Gzip)
        } else {
            Err(SnapshotError::Invalid(format!("unsupported layer media type {media_type:?}")))
        }
    }

    /// Guesses from a layer's first bytes: gzip has the magic `1f 8b`, anything else is
    /// taken as plain tar.
    pub fn sniff(first_bytes: &[u8]) -> Compression {
        if first_bytes.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else {
            Compression::None
        }
    }
}

/// What a whiteout entry does to the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whiteouts {
    /// The target is an overlayfs upper directory: deletions become overlay whiteouts
    /// (0:0 character devices) and opaque markers the `trusted.overlay.opaque` attribute.
    Overlay,
    /// The target is a full copy of the parent layers: deletions remove files from it.
    Delete,
}

/// How to apply a layer.
#[derive(Debug, Clone, Copy)]
pub struct ApplyOptions<'a> {
    /// What whiteouts do.
    pub whiteouts: Whiteouts,
    /// The lower layers' directories, top-most first. Used in [`Whiteouts::Overlay`]
    /// mode only: to give directories the layer creates implicitly the metadata they
    /// have below, and to copy up the target of a hard link the layer does not carry.
    pub lowers: &'a [PathBuf],
}

/// What applying a layer found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// `sha256:<hex>` of the uncompressed tar stream, every byte of it.
    pub diff_id: String,
    /// Length of the uncompressed tar stream.
    pub uncompressed_bytes: u64,
}

/// Applies the layer read from `reader` to the existing directory `target`.
///
/// Nothing is rolled back on failure: the caller should discard a target a failed
/// layer was applied to. Needs root (or equivalent capabilities) for owners, device
/// nodes and `trusted.` attributes.
pub fn apply_layer(
    reader: impl Read + Send,
    compression: Compression,
    target: &Path,
    opts: &ApplyOptions,
) -> Result<Applied> {
    let source = Source(reader);
    match compression {
        Compression::None => apply_stream(BufReader::with_capacity(BUFFER_SIZE, source), target, opts),
        Compression::Gzip => apply_gzip(source, target, opts),
    }
}

/// Decompressed chunks in flight between the two threads of a gzip layer (1 MiB).
const PIPELINE_DEPTH: usize = 16;
/// Below glibc's mmap threshold, so chunks come from (and go back to) the heap instead
/// of costing an mmap, a munmap and their page faults each.
const CHUNK_SIZE: usize = 64 * 1024;

/// A gzip layer is decompressed on a thread of its own while this one parses and writes
/// the files, as `tar -xzf` runs gzip beside tar: inflating is CPU and applying is mostly
/// system calls, so on two cores the unpack takes the longer of the two, not their sum.
fn apply_gzip(source: impl Read + Send, target: &Path, opts: &ApplyOptions) -> Result<Applied> {
    let (sender, receiver) = std::sync::mpsc::sync_channel(PIPELINE_DEPTH);
    std::thread::scope(|scope| {
        scope.spawn(move || inflate_into(MultiGzDecoder::new(source), &sender));
        // Returning drops the receiver, which stops the inflating thread at its next chunk.
        apply_stream(Chunks { receiver, current: Vec::new(), at: 0 }, target, opts)
    })
}

fn inflate_into(mut decoder: impl Read, sender: &std::sync::mpsc::SyncSender<io::Result<Vec<u8>>>) {
    loop {
        let mut chunk = vec![0; CHUNK_SIZE];
        match decoder.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => {
                chunk.truncate(n);
                if sender.send(Ok(chunk)).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                let _ = sender.send(Err(e));
                return;
            }
        }
    }
}

/// The reading end of the pipeline: the inflated stream, chunk by chunk. The stream
/// ends where the inflating thread stopped; an error it met is returned once, in order.
struct Chunks {
    receiver: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    current: Vec<u8>,
    at: usize,
}

impl Read for Chunks {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.current.len() {
            match self.receiver.recv() {
                Ok(chunk) => {
                    self.current = chunk?;
                    self.at = 0;
                }
                Err(std::sync::mpsc::RecvError) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

fn apply_stream(stream: impl Read, target: &Path, opts: &ApplyOptions) -> Result<Applied> {
    match ops::lstat(target)? {
        Some(meta) if meta.is_dir() => {}
        _ => return Err(SnapshotError::Invalid(format!("{} is not a directory", target.display()))),
    }
    let mut archive = tar::Archive::new(Digesting::new(stream));
    let mut applier = Applier::new(target, opts)?;
    for entry in archive.entries().map_err(stream_error)? {
        applier.apply(&mut entry.map_err(stream_error)?)?;
    }
    // The parser stops at the end-of-archive marker; whatever padding follows is part of
    // the layer's bytes too, and so of its diff ID.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(stream_error)?;
    applier.set_dir_times()?;
    Ok(rest.applied())
}

/// The caller's reader. Its failures are marked, so that they are reported as I/O
/// errors rather than as a malformed layer.
struct Source<R>(R);

impl<R: Read> Read for Source<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf).map_err(|e| match e.kind() {
            io::ErrorKind::Interrupted => e,
            kind => io::Error::new(kind, SourceFailed(e)),
        })
    }
}

#[derive(Debug)]
struct SourceFailed(io::Error);

impl fmt::Display for SourceFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SourceFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// An error met while reading the stream: the caller's reader failing is I/O; anything
/// else (bad gzip, bad tar, a stream that ends early) is a malformed layer.
fn stream_error(e: io::Error) -> SnapshotError {
    if !e.get_ref().is_some_and(|inner| inner.is::<SourceFailed>()) {
        return SnapshotError::Invalid(format!("malformed layer: {e}"));
    }
    let kind = e.kind();
    let source = e.into_inner().and_then(|inner| inner.downcast::<SourceFailed>().ok());
    SnapshotError::io("reading the layer", source.map_or_else(|| kind.into(), |failed| failed.0))
}

/// Hashes and counts the uncompressed bytes on their way to the tar parser.
struct Digesting<R> {
    inner: R,
    sha: Sha256,
    bytes: u64,
}

impl<R: Read> Digesting<R> {
    fn new(inner: R) -> Self {
        Digesting { inner, sha: Sha256::new(), bytes: 0 }
    }

    fn applied(self) -> Applied {
        Applied { diff_id: format!("sha256:{}", hex::encode(self.sha.finalize())), uncompressed_bytes: self.bytes }
    }
}

impl<R: Read> Read for Digesting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// The layer's path for an entry, relative to the target: leading `/` and `./` dropped,
/// `..` refused. Empty for the root itself.
fn clean_path(raw: &Path) -> Result<PathBuf> {
    let mut clean = PathBuf::new();
    for component in raw.components() {
        match component {
            Component::Normal(part) => clean.push(part),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(SnapshotError::Invalid(format!("{}: path leaves the layer's root", raw.display())));
            }
        }
    }
    Ok(clean)
}

/// A whiteout entry, by its name.
#[derive(Debug, PartialEq, Eq)]
enum Marker {
    /// `.wh.<name>`: `path` is deleted.
    Delete { path: PathBuf },
    /// `.wh..wh..opq`: nothing below `dir` comes from lower layers.
    Opaque { dir: PathBuf },
    /// Another `.wh..wh.` name: aufs bookkeeping, meaningless here.
    Aufs,
}

fn marker(rel: &Path) -> Result<Option<Marker>> {
    let Some(name) = rel.file_name() else { return Ok(None) };
    let Some(deleted) = name.as_bytes().strip_prefix(WHITEOUT_PREFIX) else { return Ok(None) };
    let dir = rel.parent().unwrap_or(Path::new("")).to_path_buf();
    if name.as_bytes() == OPAQUE_MARKER {
        return Ok(Some(Marker::Opaque { dir }));
    }
    if deleted.starts_with(WHITEOUT_PREFIX) {
        return Ok(Some(Marker::Aufs));
    }
    if matches!(deleted, b"" | b"." | b"..") {
        return Err(SnapshotError::Invalid(format!("{}: whiteout names no file", rel.display())));
    }
    Ok(Some(Marker::Delete { path: dir.join(OsStr::from_bytes(deleted)) }))
}

/// Whether `meta` is an overlayfs whiteout: a character device numbered 0:0.
fn is_whiteout(meta: &Metadata) -> bool {
    ops::node_kind(meta) == Some(SFlag::S_IFCHR) && meta.rdev() == 0
}

fn is_opaque(dir: &Path) -> Result<bool> {
    let value = xattr::get(dir, OsStr::new(OPAQUE_XATTR))
        .map_err(|e| io_error(&format!("reading {OPAQUE_XATTR} of"), dir, e))?;
    Ok(value.as_deref() == Some(b"y"))
}

/// What one lower layer says about a path.
enum Probe {
    Found(PathBuf, Metadata),
    /// Deleted, or shadowed by a non-directory, in this layer: no layer below counts.
    Hidden,
    /// Not in this layer; `opaque` if a directory above it is opaque here, which also
    /// ends the search.
    Absent { opaque: bool },
}

/// Looks `rel` up in one lower layer as overlayfs would, without following symlinks.
fn probe(lower: &Path, rel: &Path) -> Result<Probe> {
    let mut path = lower.to_path_buf();
    let mut opaque = false;
    let mut parts = rel.components().peekable();
    while let Some(part) = parts.next() {
        path.push(part);
        let Some(meta) = ops::lstat(&path)? else { return Ok(Probe::Absent { opaque }) };
        if is_whiteout(&meta) {
            return Ok(Probe::Hidden);
        }
        if parts.peek().is_none() {
            return Ok(Probe::Found(path, meta));
        }
        if !meta.is_dir() {
            return Ok(Probe::Hidden);
        }
        opaque |= is_opaque(&path)?;
    }
    Ok(Probe::Absent { opaque })
}

/// An entry's metadata, from its header and PAX records.
struct EntryMeta {
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: TimeSpec,
    xattrs: Vec<(OsString, Vec<u8>)>,
}

impl EntryMeta {
    fn read<R: Read>(entry: &mut tar::Entry<R>, rel: &Path) -> Result<EntryMeta> {
        let bad = |what: &str| SnapshotError::Invalid(format!("{}: bad {what} in header", rel.display()));
        let header = entry.header();
        let raw = header.as_old();
        let uid = number(header.uid(), &raw.uid).and_then(|id| u32::try_from(id).ok()).ok_or_else(|| bad("uid"))?;
        let gid = number(header.gid(), &raw.gid).and_then(|id| u32::try_from(id).ok()).ok_or_else(|| bad("gid"))?;
        let mode = number(header.mode().map(u64::from), &raw.mode).ok_or_else(|| bad("mode"))? as u32 & 0o7777;
        let secs = number(header.mtime(), &raw.mtime).and_then(|t| i64::try_from(t).ok()).ok_or_else(|| bad("mtime"))?;
        let mut meta = EntryMeta { uid, gid, mode, mtime: TimeSpec::new(secs, 0), xattrs: Vec::new() };
        let Some(records) = entry.pax_extensions().map_err(|_| bad("PAX records"))? else { return Ok(meta) };
        for record in records {
            let record = record.map_err(|_| bad("PAX record"))?;
            let key = record.key_bytes();
            if let Some(name) = key.strip_prefix(XATTR_PAX_PREFIX) {
                meta.xattrs.push((OsString::from_vec(name.to_vec()), record.value_bytes().to_vec()));
            } else if key == b"mtime" {
                meta.mtime = parse_pax_time(record.value_bytes()).ok_or_else(|| bad("PAX mtime"))?;
            } else if key.starts_with(b"GNU.sparse.") {
                return Err(SnapshotError::Invalid(format!("{}: sparse files are not supported", rel.display())));
            }
        }
        Ok(meta)
    }
}

/// A numeric header field as parsed, except that an empty one (all NUL or space) is
/// zero, as Go's archive/tar, which wrote many layers, reads it.
fn number(parsed: io::Result<u64>, raw: &[u8]) -> Option<u64> {
    if raw.iter().all(|b| *b == 0 || *b == b' ') {
        return Some(0);
    }
    parsed.ok()
}

/// A PAX time: decimal seconds since the epoch with an optional fraction, maybe negative.
fn parse_pax_time(value: &[u8]) -> Option<TimeSpec> {
    let text = std::str::from_utf8(value).ok()?;
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) {
        return None;
    }
    let secs: i64 = whole.parse().ok()?;
    // Nanoseconds: the first nine fraction digits, right-padded with zeros.
    let nanos = fraction.bytes().chain(std::iter::repeat(b'0')).take(9).fold(0i64, |n, d| n * 10 + i64::from(d - b'0'));
    Some(match (negative, nanos) {
        (false, _) => TimeSpec::new(secs, nanos),
        (true, 0) => TimeSpec::new(-secs, 0),
        (true, _) => TimeSpec::new(-secs - 1, 1_000_000_000 - nanos),
    })
}

/// The kind of inode an entry made, for what metadata applies to it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Made {
    Dir,
    File,
    Symlink,
    Node,
}

/// Where one entry of the layer lives: its parent directory, held open (reached from the
/// target's root without following a symlink), and its name there.
struct At {
    dir: Dir,
    name: OsString,
}

impl At {
    /// The entry's path for calls that do not follow a final symlink; valid while `self`
    /// is alive.
    fn path(&self) -> PathBuf {
        self.dir.entry(&self.name)
    }
}

/// The state of one layer application. Every entry is reached from `root_dir` one
/// directory at a time with `O_NOFOLLOW`, so a symlink the layer planted, or one swapped
/// in while it is applied, cannot send a create, unlink, chown or chmod outside.
struct Applier<'a> {
    root: &'a Path,
    root_dir: Dir,
    opts: &'a ApplyOptions<'a>,
    /// Paths (relative) this layer wrote, with all their ancestors; kept in Delete mode
    /// only, where an opaque marker removes everything else below its directory.
    written: HashSet<PathBuf>,
    /// Directory times to set once all entries are in, as adding children changes them.
    dir_times: HashMap<PathBuf, Times>,
    buf: Vec<u8>,
}

impl<'a> Applier<'a> {
    fn new(root: &'a Path, opts: &'a ApplyOptions<'a>) -> Result<Self> {
        let root_dir = Dir::open(root).map_err(|e| io_error("opening", root, e))?;
        Ok(Applier { root, root_dir, opts, written: HashSet::new(), dir_times: HashMap::new(), buf: vec![0; BUFFER_SIZE] })
    }

    fn overlay(&self) -> bool {
        self.opts.whiteouts == Whiteouts::Overlay
    }

    fn apply<R: Read>(&mut self, entry: &mut tar::Entry<R>) -> Result<()> {
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            debug!("ignoring a PAX global header");
            return Ok(());
        }
        let raw = entry.path().map_err(|e| SnapshotError::Invalid(format!("bad entry path: {e}")))?.into_owned();
        let rel = clean_path(&raw)?;
        if let Some(marker) = marker(&rel)? {
            return self.whiteout(&rel, marker);
        }
        if kind.is_gnu_sparse() {
            return Err(SnapshotError::Invalid(format!("{}: sparse files are not supported", rel.display())));
        }
        let meta = EntryMeta::read(entry, &rel)?;
        if rel.as_os_str().is_empty() && !(kind.is_dir() || old_style_dir(entry)) {
            return Err(SnapshotError::Invalid(format!("{}: only a directory can be the root", raw.display())));
        }
        match kind {
            EntryType::Regular | EntryType::Continuous if old_style_dir(entry) => self.directory(&rel, &meta),
            EntryType::Regular | EntryType::Continuous => self.file(&rel, entry, &meta),
            EntryType::Directory => self.directory(&rel, &meta),
            EntryType::Symlink => self.symlink(&rel, &link_name(entry, &rel)?, &meta),
            EntryType::Link => self.hard_link(&rel, &link_name(entry, &rel)?),
            EntryType::Char => self.node(&rel, SFlag::S_IFCHR, device(entry, &rel)?, &meta),
            EntryType::Block => self.node(&rel, SFlag::S_IFBLK, device(entry, &rel)?, &meta),
            EntryType::Fifo => self.node(&rel, SFlag::S_IFIFO, 0, &meta),
            other => Err(SnapshotError::Invalid(format!(
                "{}: unsupported entry type {:?}",
                rel.display(),
                char::from(other.as_byte())
            ))),
        }
    }

    /// Opens the directories `dirs` (a path relative to the target) one by one from the
    /// target's root, never through a symlink. Missing ones are created when `create`;
    /// otherwise a missing one makes the answer `None`. A symlink or non-directory on the
    /// way is refused: following it could write outside the target. `rel` is the entry
    /// being applied, for messages.
    fn open_dirs(&mut self, rel: &Path, dirs: &Path, create: bool) -> Result<Option<Dir>> {
        let mut dir = self.root_dir.try_clone().map_err(|e| io_error("opening", self.root, e))?;
        let mut prefix = PathBuf::new();
        for part in dirs.components() {
            let name = part.as_os_str();
            prefix.push(name);
            let next = match dir.child(name) {
                Ok(next) => next,
                Err(e) => match ops::lstat(&dir.entry(name))? {
                    Some(meta) if meta.file_type().is_symlink() => {
                        return Err(SnapshotError::Invalid(format!("{}: path goes through a symlink", rel.display())));
                    }
                    Some(meta) if !meta.is_dir() => {
                        let why = format!("{}: {} is not a directory", rel.display(), prefix.display());
                        return Err(SnapshotError::Invalid(why));
                    }
                    Some(_) => return Err(io_error("opening", &dir.entry(name), e)),
                    None if create => {
                        self.implicit_dir(&dir, name, &prefix)?;
                        dir.child(name).map_err(|e| io_error("opening", &dir.entry(name), e))?
                    }
                    None => return Ok(None),
                },
            };
            dir = next;
        }
        Ok(Some(dir))
    }

    /// The parent directory of `rel`, held open, and the name in it (`.` in the root for
    /// the root itself); `None` when a parent is missing and not `create`.
    fn locate(&mut self, rel: &Path, create: bool) -> Result<Option<At>> {
        let (parent, name) = match (rel.parent(), rel.file_name()) {
            (Some(parent), Some(name)) => (parent, name.to_owned()),
            _ => (Path::new(""), OsString::from(".")),
        };
        Ok(self.open_dirs(rel, parent, create)?.map(|dir| At { dir, name }))
    }

    /// [`Applier::locate`], creating missing parents.
    fn place(&mut self, rel: &Path) -> Result<At> {
        let missing = || SnapshotError::Invalid(format!("{}: its directory could not be made", rel.display()));
        self.locate(rel, true)?.ok_or_else(missing)
    }

    /// Creates a directory the layer needs but has no entry for. In Overlay mode it takes
    /// the metadata the directory has in the lower layers, so that the merged view does
    /// not change; otherwise root's, mode 0755.
    fn implicit_dir(&mut self, parent: &Dir, name: &OsStr, rel: &Path) -> Result<()> {
        let path = parent.entry(name);
        ops::mkdir(&path)?;
        match self.find_lower(rel)? {
            Some((lower, meta)) if meta.is_dir() => {
                ops::lchown(&path, meta.uid(), meta.gid())?;
                xattr::copy_all(&lower, &path, true, false)?;
                ops::chmod(&path, meta.mode())?;
                self.dir_times.insert(rel.to_path_buf(), Times::of(&meta));
            }
            _ => {
                ops::lchown(&path, 0, 0)?;
                ops::chmod(&path, 0o755)?;
            }
        }
        Ok(())
    }

    /// Where `rel` is in the merged view of the lower layers (Overlay mode only).
    fn find_lower(&self, rel: &Path) -> Result<Option<(PathBuf, Metadata)>> {
        if !self.overlay() {
            return Ok(None);
        }
        for lower in self.opts.lowers {
            match probe(lower, rel)? {
                Probe::Found(path, meta) => return Ok(Some((path, meta))),
                Probe::Hidden | Probe::Absent { opaque: true } => return Ok(None),
                Probe::Absent { opaque: false } => {}
            }
        }
        Ok(None)
    }

    /// Makes way for a new entry at `rel`: parents created, and what is there removed,
    /// except a directory when `keep_dir`. Returns where the entry goes and whether a
    /// directory was kept.
    fn make_way(&mut self, rel: &Path, keep_dir: bool) -> Result<(At, bool)> {
        let at = self.place(rel)?;
        let path = at.path();
        let kept = match ops::lstat(&path)? {
            Some(meta) if meta.is_dir() && keep_dir => true,
            Some(_) => remove_tree(&path).map(|()| false)?,
            None => false,
        };
        Ok((at, kept))
    }

    fn mark_written(&mut self, rel: &Path) {
        if self.overlay() {
            return;
        }
        for path in rel.ancestors() {
            if path.as_os_str().is_empty() || !self.written.insert(path.to_path_buf()) {
                break;
            }
        }
    }

    fn directory(&mut self, rel: &Path, meta: &EntryMeta) -> Result<()> {
        // The root itself is `.` in the root, always a directory, so always kept.
        let (at, kept) = self.make_way(rel, true)?;
        if !kept {
            ops::mkdir(&at.path())?;
        }
        self.set_metadata(&at, rel, meta, Made::Dir)
    }

    fn file<R: Read>(&mut self, rel: &Path, entry: &mut tar::Entry<R>, meta: &EntryMeta) -> Result<()> {
        let (at, _) = self.make_way(rel, false)?;
        let path = at.path();
        let mut file = create_file(&path)?;
        let mut copied = 0u64;
        loop {
            let n = match entry.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(stream_error(e)),
            };
            file.write_all(&self.buf[..n]).map_err(|e| io_error("writing", &path, e))?;
            copied += n as u64;
        }
        if copied != entry.size() {
            return Err(SnapshotError::Invalid(format!("{}: layer ends inside the file", rel.display())));
        }
        drop(file);
        self.set_metadata(&at, rel, meta, Made::File)
    }

    fn symlink(&mut self, rel: &Path, target: &Path, meta: &EntryMeta) -> Result<()> {
        let (at, _) = self.make_way(rel, false)?;
        let path = at.path();
        std::os::unix::fs::symlink(target, &path).map_err(|e| io_error("creating symlink", &path, e))?;
        self.set_metadata(&at, rel, meta, Made::Symlink)
    }

    fn node(&mut self, rel: &Path, kind: SFlag, rdev: u64, meta: &EntryMeta) -> Result<()> {
        let (at, _) = self.make_way(rel, false)?;
        ops::mknod(&at.path(), kind, rdev)?;
        self.set_metadata(&at, rel, meta, Made::Node)
    }

    /// A hard link shares its target's inode, so it takes no metadata of its own: the
    /// target's entry (or the lower layer it was copied up from) already gave it.
    fn hard_link(&mut self, rel: &Path, link: &Path) -> Result<()> {
        let source_rel = clean_path(link)?;
        if source_rel.as_os_str().is_empty() || source_rel == rel {
            return Err(SnapshotError::Invalid(format!("{}: bad hard link target {}", rel.display(), link.display())));
        }
        let source = self.link_source(rel, &source_rel)?;
        let (at, _) = self.make_way(rel, false)?;
        let path = at.path();
        fs::hard_link(source.path(), &path).map_err(|e| io_error("linking", &path, e))?;
        self.mark_written(rel);
        Ok(())
    }

    /// The file a hard link at `rel` should share: `source_rel` in the target, or in
    /// Overlay mode, copied up from the lower layers when only they have it.
    fn link_source(&mut self, rel: &Path, source_rel: &Path) -> Result<At> {
        let invalid = |why: &str| {
            SnapshotError::Invalid(format!("{}: hard link to {}: {why}", rel.display(), source_rel.display()))
        };
        let here = match self.locate(source_rel, false)? {
            Some(at) => ops::lstat(&at.path())?.map(|meta| (at, meta)),
            None => None,
        };
        match here {
            Some((_, meta)) if meta.is_dir() => Err(invalid("a directory")),
            Some((_, meta)) if self.overlay() && is_whiteout(&meta) => Err(invalid("deleted")),
            Some((at, _)) => Ok(at),
            None => match self.find_lower(source_rel)? {
                Some((_, meta)) if meta.is_dir() => Err(invalid("a directory")),
                Some((lower, meta)) => {
                    let at = self.place(source_rel)?;
                    copy_node(&lower, &at.path(), &meta, false)?;
                    Ok(at)
                }
                None => Err(invalid("not found")),
            },
        }
    }

    /// Owner first (chown clears setuid, setgid and file capabilities), then attributes,
    /// then mode; times now, or for a directory at the very end.
    fn set_metadata(&mut self, at: &At, rel: &Path, meta: &EntryMeta, made: Made) -> Result<()> {
        let path = at.path();
        ops::lchown(&path, meta.uid, meta.gid)?;
        for (name, value) in &meta.xattrs {
            xattr::set_copied(&path, name, value, matches!(made, Made::Dir | Made::File))?;
        }
        if made != Made::Symlink {
            ops::chmod(&path, meta.mode)?;
        }
        let times = Times::both(meta.mtime);
        if made == Made::Dir {
            self.dir_times.insert(rel.to_path_buf(), times);
        } else {
            ops::set_times(&path, times)?;
        }
        self.mark_written(rel);
        Ok(())
    }

    fn whiteout(&mut self, marker_rel: &Path, marker: Marker) -> Result<()> {
        match (marker, self.opts.whiteouts) {
            (Marker::Aufs, _) => {
                debug!("ignoring aufs marker {}", marker_rel.display());
                Ok(())
            }
            (Marker::Delete { path }, Whiteouts::Overlay) => {
                let (at, _) = self.make_way(&path, false)?;
                ops::mknod(&at.path(), SFlag::S_IFCHR, 0)
            }
            (Marker::Delete { path }, Whiteouts::Delete) => {
                if let Some(at) = self.locate(&path, false)? {
                    remove_tree(&at.path())?;
                }
                Ok(())
            }
            (Marker::Opaque { .. }, Whiteouts::Overlay) => {
                // The marker's parent, held open, is the directory made opaque.
                let at = self.place(marker_rel)?;
                let path = at.dir.itself();
                xattr::set(&path, OsStr::new(OPAQUE_XATTR), b"y")
                    .map_err(|e| io_error(&format!("setting {OPAQUE_XATTR} on"), &path, e))
            }
            (Marker::Opaque { dir }, Whiteouts::Delete) => {
                if self.locate(marker_rel, false)?.is_some() {
                    self.remove_unwritten(&dir)?;
                }
                Ok(())
            }
        }
    }

    /// Removes everything below `dir` this layer did not write, whether the layer wrote
    /// it before or after the opaque marker (later entries are simply created anew).
    fn remove_unwritten(&mut self, dir: &Path) -> Result<()> {
        let mut dirs = vec![dir.to_path_buf()];
        while let Some(rel_dir) = dirs.pop() {
            let Some(held) = self.open_dirs(&rel_dir, &rel_dir, false)? else { continue };
            let here = held.itself();
            for (name, is_dir) in held.entries().map_err(|e| io_error("listing", &here, e))? {
                let rel = rel_dir.join(&name);
                if !self.written.contains(&rel) {
                    remove_tree(&held.entry(&name))?;
                } else if is_dir {
                    dirs.push(rel);
                }
            }
        }
        Ok(())
    }

    /// Sets the deferred directory times, deepest first. A directory since removed, or
    /// no longer reachable without a symlink, is skipped.
    fn set_dir_times(&mut self) -> Result<()> {
        let mut dirs: Vec<_> = std::mem::take(&mut self.dir_times).into_iter().collect();
        dirs.sort_by_key(|(rel, _)| std::cmp::Reverse(rel.components().count()));
        for (rel, times) in dirs {
            let Ok(Some(at)) = self.locate(&rel, false) else { continue };
            let path = at.path();
            if ops::lstat(&path)?.is_some_and(|m| m.is_dir()) {
                ops::set_times(&path, times)?;
            }
        }
        Ok(())
    }
}

/// Pre-POSIX archives mark a directory as a regular file whose name ends in `/`.
fn old_style_dir<R: Read>(entry: &tar::Entry<R>) -> bool {
    let regular = matches!(entry.header().entry_type(), EntryType::Regular | EntryType::Continuous);
    regular && entry.path_bytes().ends_with(b"/")
}

fn link_name<R: Read>(entry: &tar::Entry<R>, rel: &Path) -> Result<PathBuf> {
    match entry.link_name() {
        Ok(Some(name)) if !name.as_os_str().is_empty() => Ok(name.into_owned()),
        _ => Err(SnapshotError::Invalid(format!("{}: link without a target", rel.display()))),
    }
}

fn device<R: Read>(entry: &tar::Entry<R>, rel: &Path) -> Result<u64> {
    let header = entry.header();
    match (header.device_major(), header.device_minor()) {
        (Ok(major), Ok(minor)) => {
            Ok(nix::sys::stat::makedev(major.unwrap_or(0).into(), minor.unwrap_or(0).into()))
        }
        _ => Err(SnapshotError::Invalid(format!("{}: bad device numbers", rel.display()))),
    }
}

#[cfg(test)]
mod tests;
