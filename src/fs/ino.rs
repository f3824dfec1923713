//! Inode numbers: a pure function of the persistent node id and the file's slot.
//!
//! `ino = node_id << 5 | slot`, where slot 0 is the node itself, slots 1..8 and 13..17 its
//! attribute files and 9..12 a task's views (`logs/<id>/`, its two streams, `wait/<id>`);
//! the root is the exception FUSE imposes (`ino 1`), so the root node's slots are free for
//! the files at the mount's top that are no node (`events`): `1 << 5 | slot`. Node ids are never reused, so an inode
//! number names one object for ever, across remounts, and the FUSE generation can stay 0.
//! (Schema 1 used 4 slot bits; the snapshot files needed more, so inode numbers changed
//! once, at the upgrade to schema 2, which needs a remount anyway.)
//!
//! Queries are not nodes and have numbers of their own ([`QueryIno`]): the reserved node
//! ids 11–13 for `images/.filter`, `containers/.filter` and `images/.by-target`; bit 60
//! for one query directory (`.filter/<expr>/`), numbered while the kernel holds it; slot
//! 18 of an object's node for the symbolic link to it that every query lists. Temporary
//! files use bit 61 (`temp.rs`) and tasks being created bit 62 (`handles.rs`); stored
//! node ids stay below 2^55, so none of these collide.

use crate::store::{schema, NodeId};

/// The root's inode number (fixed by FUSE).
pub const ROOT_INO: u64 = 1;
const SLOT_BITS: u32 = 5;
const SLOT_MASK: u64 = (1 << SLOT_BITS) - 1;

/// An attribute file of an object directory. The discriminant is its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttrFile {
    /// `images/<name>/target`
    Target = 1,
    /// `*/labels`
    Labels = 2,
    /// `*/info.json`
    Info = 3,
    /// `containers/<id>/spec`
    Spec = 4,
    /// `containers/<id>/image`
    Image = 5,
    /// `containers/<id>/snapshotter`
    Snapshotter = 6,
    /// `containers/<id>/snapshot`
    Snapshot = 7,
    /// `containers/<id>/runtime`
    Runtime = 8,
    /// `snapshots/<key>/kind`
    SnapshotKind = 13,
    /// `snapshots/<key>/parent`
    Parent = 14,
    /// `snapshots/<key>/mounts`
    Mounts = 15,
    /// `snapshots/<key>/usage`
    Usage = 16,
    /// `snapshots/<key>/references`
    References = 17,
}

/// Every attribute file, by slot.
pub const ALL_ATTR_FILES: [AttrFile; 13] = [
    AttrFile::Target,
    AttrFile::Labels,
    AttrFile::Info,
    AttrFile::Spec,
    AttrFile::Image,
    AttrFile::Snapshotter,
    AttrFile::Snapshot,
    AttrFile::Runtime,
    AttrFile::SnapshotKind,
    AttrFile::Parent,
    AttrFile::Mounts,
    AttrFile::Usage,
    AttrFile::References,
];

/// The files of an image directory, in listing order.
pub const IMAGE_FILES: [AttrFile; 3] = [AttrFile::Target, AttrFile::Labels, AttrFile::Info];
/// The files of a container directory, in listing order.
pub const CONTAINER_FILES: [AttrFile; 7] = [
    AttrFile::Spec,
    AttrFile::Image,
    AttrFile::Snapshotter,
    AttrFile::Snapshot,
    AttrFile::Runtime,
    AttrFile::Labels,
    AttrFile::Info,
];

/// The files of a snapshot directory, in listing order.
pub const SNAPSHOT_FILES: [AttrFile; 8] = [
    AttrFile::SnapshotKind,
    AttrFile::Parent,
    AttrFile::Mounts,
    AttrFile::Usage,
    AttrFile::References,
    AttrFile::Snapshotter,
    AttrFile::Labels,
    AttrFile::Info,
];

impl AttrFile {
    /// Its file name.
    pub fn name(self) -> &'static str {
        match self {
            AttrFile::Target => "target",
            AttrFile::Labels => "labels",
            AttrFile::Info => "info.json",
            AttrFile::Spec => "spec",
            AttrFile::Image => "image",
            AttrFile::Snapshotter => "snapshotter",
            AttrFile::Snapshot => "snapshot",
            AttrFile::Runtime => "runtime",
            AttrFile::SnapshotKind => "kind",
            AttrFile::Parent => "parent",
            AttrFile::Mounts => "mounts",
            AttrFile::Usage => "usage",
            AttrFile::References => "references",
        }
    }

    fn from_slot(slot: u64) -> Option<Self> {
        ALL_ATTR_FILES.into_iter().find(|f| *f as u64 == slot)
    }
}

/// One of a task's output streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    /// `logs/<id>/stdout`
    Stdout,
    /// `logs/<id>/stderr`
    Stderr,
}

impl Stream {
    /// Its file name.
    pub fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// A file at the mount's top that is no node: a view the daemon generates. Reachable by
/// name, never listed. The discriminant is its slot under the root node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RootFile {
    /// `events`: the stream of published events.
    Events = 1,
    /// `error_log`: the last refusals of this mount.
    ErrorLog = 2,
}

/// Every root file, by slot.
pub const ROOT_FILES: [RootFile; 2] = [RootFile::Events, RootFile::ErrorLog];

impl RootFile {
    /// Its file name.
    pub fn name(self) -> &'static str {
        match self {
            RootFile::Events => "events",
            RootFile::ErrorLog => "error_log",
        }
    }

    /// The root file called `name`.
    pub fn named(name: &str) -> Option<Self> {
        ROOT_FILES.into_iter().find(|f| f.name() == name)
    }

    fn from_slot(slot: u64) -> Option<Self> {
        ROOT_FILES.into_iter().find(|f| *f as u64 == slot)
    }
}

/// Slots of a task node's views (after the attribute files' slots).
const SLOT_LOG_DIR: u64 = 9;
const SLOT_STDOUT: u64 = 10;
const SLOT_STDERR: u64 = 11;
const SLOT_WAIT: u64 = 12;

/// Every inode number of node `node`: itself, its attribute files and a task's views.
pub fn inodes_of(node: NodeId) -> impl Iterator<Item = u64> {
    let views = [Ino::Node(node), Ino::LogDir(node), Ino::Log(node, Stream::Stdout), Ino::Log(node, Stream::Stderr), Ino::Wait(node)];
    views.into_iter().chain(ALL_ATTR_FILES.into_iter().map(move |file| Ino::File(node, file))).map(Ino::number)
}

/// What an inode number designates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ino {
    /// A node itself: a directory, or for a task the file `tasks/<id>`.
    Node(NodeId),
    /// One attribute file of a node.
    File(NodeId, AttrFile),
    /// `logs/<id>/` of a task node.
    LogDir(NodeId),
    /// `logs/<id>/stdout` or `stderr` of a task node.
    Log(NodeId, Stream),
    /// `wait/<id>` of a task node.
    Wait(NodeId),
    /// A file at the mount's top (under the root node).
    RootFile(RootFile),
}

impl Ino {
    /// The inode number.
    pub fn number(self) -> u64 {
        match self {
            Ino::Node(node) if node == schema::ROOT => ROOT_INO,
            Ino::Node(node) => node.0 << SLOT_BITS,
            Ino::File(node, file) => node.0 << SLOT_BITS | file as u64,
            Ino::LogDir(node) => node.0 << SLOT_BITS | SLOT_LOG_DIR,
            Ino::Log(node, Stream::Stdout) => node.0 << SLOT_BITS | SLOT_STDOUT,
            Ino::Log(node, Stream::Stderr) => node.0 << SLOT_BITS | SLOT_STDERR,
            Ino::Wait(node) => node.0 << SLOT_BITS | SLOT_WAIT,
            Ino::RootFile(file) => schema::ROOT.0 << SLOT_BITS | file as u64,
        }
    }

    /// Decodes an inode number; `None` for numbers this filesystem never hands out.
    pub fn decode(number: u64) -> Option<Ino> {
        if number == ROOT_INO {
            return Some(Ino::Node(schema::ROOT));
        }
        let node = NodeId(number >> SLOT_BITS);
        if node == schema::ROOT {
            return RootFile::from_slot(number & SLOT_MASK).map(Ino::RootFile);
        }
        if node.0 < schema::ROOT.0 || QueryRoot::ALL.iter().any(|r| r.node() == node) || number & NOT_A_NODE_BITS != 0 {
            return None;
        }
        match number & SLOT_MASK {
            0 => Some(Ino::Node(node)),
            SLOT_LOG_DIR => Some(Ino::LogDir(node)),
            SLOT_STDOUT => Some(Ino::Log(node, Stream::Stdout)),
            SLOT_STDERR => Some(Ino::Log(node, Stream::Stderr)),
            SLOT_WAIT => Some(Ino::Wait(node)),
            slot => AttrFile::from_slot(slot).map(|f| Ino::File(node, f)),
        }
    }

    /// The node it belongs to.
    pub fn node(self) -> NodeId {
        match self {
            Ino::Node(n) | Ino::File(n, _) | Ino::LogDir(n) | Ino::Log(n, _) | Ino::Wait(n) => n,
            Ino::RootFile(_) => schema::ROOT,
        }
    }
}

/// Inode number bits that name what is not a stored node: bit 61 temporary files
/// (`temp.rs`), bit 60 query directories. (Bit 62, node ids from 2^57, are tasks being
/// created, `handles.rs`; stored node ids stay below 2^55.)
const NOT_A_NODE_BITS: u64 = 0b11 << 60;
/// The bit of a query directory's inode number.
const QUERY_DIR_BIT: u64 = 1 << 60;
/// The slot of an object's symbolic link in query directories.
const SLOT_LINK: u64 = 18;

/// A fixed directory of queries, reachable by name and never listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueryRoot {
    /// `images/.filter/`
    ImagesFilter,
    /// `containers/.filter/`
    ContainersFilter,
    /// `images/.by-target/`
    ImagesByTarget,
}

impl QueryRoot {
    /// All of them.
    pub const ALL: [QueryRoot; 3] = [QueryRoot::ImagesFilter, QueryRoot::ContainersFilter, QueryRoot::ImagesByTarget];

    /// The reserved node id its inode number is made of.
    fn node(self) -> NodeId {
        match self {
            QueryRoot::ImagesFilter => NodeId(11),
            QueryRoot::ContainersFilter => NodeId(12),
            QueryRoot::ImagesByTarget => NodeId(13),
        }
    }

    /// Its name in its parent.
    pub fn name(self) -> &'static str {
        match self {
            QueryRoot::ImagesFilter | QueryRoot::ContainersFilter => ".filter",
            QueryRoot::ImagesByTarget => ".by-target",
        }
    }

    /// The directory it lives in (`images/` or `containers/`).
    pub fn parent(self) -> NodeId {
        match self {
            QueryRoot::ContainersFilter => schema::CONTAINERS,
            QueryRoot::ImagesFilter | QueryRoot::ImagesByTarget => schema::IMAGES,
        }
    }

    /// The query root called `name` in directory `parent`, if any.
    pub fn named(parent: NodeId, name: &str) -> Option<QueryRoot> {
        QueryRoot::ALL.into_iter().find(|r| r.parent() == parent && r.name() == name)
    }
}

/// What a query inode number designates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueryIno {
    /// `.filter/` or `.by-target/`.
    Root(QueryRoot),
    /// One query directory, by the number it was given while the kernel holds it.
    Dir(u64),
    /// The symbolic link to an object (a container or an image directory).
    Link(NodeId),
}

impl QueryIno {
    /// The inode number.
    pub fn number(self) -> u64 {
        match self {
            QueryIno::Root(root) => root.node().0 << SLOT_BITS,
            QueryIno::Dir(id) => QUERY_DIR_BIT | (id & (QUERY_DIR_BIT - 1)),
            QueryIno::Link(node) => node.0 << SLOT_BITS | SLOT_LINK,
        }
    }

    /// Decodes a query inode number; `None` for every other number.
    pub fn decode(number: u64) -> Option<QueryIno> {
        if number & QUERY_DIR_BIT != 0 && number >> 61 == 0 {
            return Some(QueryIno::Dir(number & (QUERY_DIR_BIT - 1)));
        }
        let node = NodeId(number >> SLOT_BITS);
        match number & SLOT_MASK {
            0 => QueryRoot::ALL.into_iter().find(|r| r.node() == node).map(QueryIno::Root),
            SLOT_LINK if node.0 > schema::ROOT.0 && number >> 60 == 0 => Some(QueryIno::Link(node)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_never_collides() {
        let mut seen = std::collections::HashSet::new();
        let nodes = [schema::ROOT, schema::IMAGES, schema::CONTAINERS, schema::TASKS, NodeId(16), NodeId(1 << 40)];
        for node in nodes {
            let mut inos = vec![Ino::Node(node)];
            if node == schema::ROOT {
                inos.extend(ROOT_FILES.map(Ino::RootFile));
            } else {
                inos.extend(CONTAINER_FILES.iter().chain(IMAGE_FILES.iter()).chain(SNAPSHOT_FILES.iter()).map(|f| Ino::File(node, *f)));
                inos.extend([Ino::LogDir(node), Ino::Log(node, Stream::Stdout), Ino::Log(node, Stream::Stderr), Ino::Wait(node)]);
            }
            for ino in inos {
                assert_eq!(Ino::decode(ino.number()), Some(ino));
                seen.insert((ino.number(), ino));
            }
        }
        let numbers: std::collections::HashSet<u64> = seen.iter().map(|(n, _)| *n).collect();
        assert_eq!(numbers.len(), seen.len());
        assert_eq!(Ino::Node(schema::ROOT).number(), 1);
        assert_eq!(Ino::decode(0), None);
        assert_eq!(Ino::decode(16), None);
        assert_eq!(Ino::decode(16 << 5 | 31), None);
        // Under the root node only its files' slots decode; slot 0 is not the root.
        assert_eq!(Ino::decode(1 << 5), None);
        assert_eq!(Ino::decode(1 << 5 | 31), None);
        assert_eq!(Ino::RootFile(RootFile::Events).number(), 33);
    }

    #[test]
    fn query_numbers_round_trip_and_are_no_node_s() {
        let queries = [
            QueryIno::Root(QueryRoot::ImagesFilter),
            QueryIno::Root(QueryRoot::ContainersFilter),
            QueryIno::Root(QueryRoot::ImagesByTarget),
            QueryIno::Dir(1),
            QueryIno::Dir(1 << 40),
            QueryIno::Link(NodeId(16)),
            QueryIno::Link(NodeId(1 << 40)),
        ];
        for query in queries {
            assert_eq!(QueryIno::decode(query.number()), Some(query), "{query:?}");
            assert_eq!(Ino::decode(query.number()), None, "{query:?} decodes as a node inode");
        }
        for node in [schema::IMAGES, NodeId(16), NodeId(1 << 40)] {
            let mut inos = vec![Ino::Node(node), Ino::LogDir(node), Ino::Wait(node)];
            inos.extend(ALL_ATTR_FILES.iter().map(|f| Ino::File(node, *f)));
            for ino in inos {
                assert_eq!(QueryIno::decode(ino.number()), None, "{ino:?} decodes as a query");
            }
        }
        assert_eq!(QueryIno::decode(1), None);
        assert_eq!(QueryIno::decode(1 << 61 | 5), None, "a temporary file's number");
    }
}
