//! Inode numbers: a pure function of the persistent node id and the file's slot.
//!
//! `ino = node_id << 4 | slot`, where slot 0 is the node's directory and slots 1..15 its
//! attribute files; the root is the exception FUSE imposes (`ino 1`). Node ids are never
//! reused, so an inode number names one object for ever, across remounts, and the FUSE
//! generation can stay 0.

use crate::store::{schema, NodeId};

/// The root's inode number (fixed by FUSE).
pub const ROOT_INO: u64 = 1;
const SLOT_BITS: u32 = 4;
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
}

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
        }
    }

    fn from_slot(slot: u64) -> Option<Self> {
        [
            AttrFile::Target,
            AttrFile::Labels,
            AttrFile::Info,
            AttrFile::Spec,
            AttrFile::Image,
            AttrFile::Snapshotter,
            AttrFile::Snapshot,
            AttrFile::Runtime,
        ]
        .into_iter()
        .find(|f| *f as u64 == slot)
    }
}

/// What an inode number designates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ino {
    /// A node's directory.
    Dir(NodeId),
    /// One attribute file of a node.
    File(NodeId, AttrFile),
}

impl Ino {
    /// The inode number.
    pub fn number(self) -> u64 {
        match self {
            Ino::Dir(node) if node == schema::ROOT => ROOT_INO,
            Ino::Dir(node) => node.0 << SLOT_BITS,
            Ino::File(node, file) => node.0 << SLOT_BITS | file as u64,
        }
    }

    /// Decodes an inode number; `None` for numbers this filesystem never hands out.
    pub fn decode(number: u64) -> Option<Ino> {
        if number == ROOT_INO {
            return Some(Ino::Dir(schema::ROOT));
        }
        let node = NodeId(number >> SLOT_BITS);
        if node.0 <= schema::ROOT.0 {
            return None;
        }
        match number & SLOT_MASK {
            0 => Some(Ino::Dir(node)),
            slot => AttrFile::from_slot(slot).map(|f| Ino::File(node, f)),
        }
    }

    /// The node it belongs to.
    pub fn node(self) -> NodeId {
        match self {
            Ino::Dir(n) | Ino::File(n, _) => n,
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
            let mut inos = vec![Ino::Dir(node)];
            if node != schema::ROOT {
                inos.extend(CONTAINER_FILES.iter().chain(IMAGE_FILES.iter()).map(|f| Ino::File(node, *f)));
            }
            for ino in inos {
                assert_eq!(Ino::decode(ino.number()), Some(ino));
                seen.insert((ino.number(), ino));
            }
        }
        let numbers: std::collections::HashSet<u64> = seen.iter().map(|(n, _)| *n).collect();
        assert_eq!(numbers.len(), seen.len());
        assert_eq!(Ino::Dir(schema::ROOT).number(), 1);
        assert_eq!(Ino::decode(0), None);
        assert_eq!(Ino::decode(16), None);
        assert_eq!(Ino::decode(16 << 4 | 15), None);
    }
}
