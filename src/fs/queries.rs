//! Query directories: `containers/.filter/<expr>/`, `images/.filter/<expr>/` and
//! `images/.by-target/<algorithm>:<hex>/` list the objects that match as symbolic links to
//! their directories (`../../<id or name>`), so `ls`, shell globs and `find -L` work.
//!
//! A query is not stored: its directory gets an inode number when looked up, kept while
//! the kernel holds it. The table is bounded by count and by what its matchers may cost:
//! past a soft bound the kernel is asked to forget the oldest names (it drops those no
//! process uses), past twice that a new query is `ENFILE`; a query still held is never
//! dropped, so a shell whose working directory it is keeps working. A listing is one
//! pass over the kind's records from a cursor, resumed after the last node id it
//! returned, and a lookup in a query is a point read and one match. Nothing here is listed by its parent, so a
//! loop over `containers/*` or a backup never meets it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use super::attr::{Attr, Kind};
use super::errno::FsError;
use super::ino::{QueryIno, QueryRoot};
use super::inodes::InodeTable;
use super::{FsCore, Result, CHILD_COOKIE_BASE};
use crate::model::{escape_component, validate_digest, Container, Filter, Image, ValidationError, MAX_COMPONENT_BYTES};
use crate::store::{resolve_image_dir, schema, NodeId, NodeKind, StoreRead};

/// Query directories numbered at once, and the memory their matchers may hold, past
/// which the oldest are asked to be forgotten (the kernel drops those no process uses).
const SOFT_QUERIES: usize = 1024;
const SOFT_QUERY_BYTES: usize = 64 << 20;
/// Past twice as much, a new query is refused (`ENFILE`): every held one stays valid, for
/// a shell whose working directory it is.
const HARD_FACTOR: usize = 2;
/// Threads assumed to match one query at once, for its cost (each has its own DFA cache).
const MATCHING_THREADS: usize = 8;

/// What a query directory selects.
pub(super) enum Matcher {
    /// Objects a filter expression matches.
    Filter(Filter),
    /// Images whose target has this digest.
    Target(String),
}

impl Matcher {
    /// An upper bound of the memory it holds.
    fn cost(&self) -> usize {
        match self {
            Matcher::Filter(filter) => filter.cost(MATCHING_THREADS),
            Matcher::Target(digest) => digest.len(),
        }
    }
}

/// One query directory.
pub(super) struct Query {
    root: QueryRoot,
    /// Its name, as looked up.
    name: String,
    matcher: Matcher,
    /// What `matcher.cost()` said, plus the names.
    cost: usize,
}

struct Entry {
    query: Arc<Query>,
    /// The kernel was asked to forget its name (it does unless a process uses it).
    dropping: bool,
}

#[derive(Default)]
struct Table {
    by_number: BTreeMap<u64, Entry>,
    by_name: HashMap<(QueryRoot, String), u64>,
    cost: usize,
    next: u64,
}

/// The query directories the kernel holds, by number.
#[derive(Default)]
pub(super) struct Queries {
    table: Mutex<Table>,
}

impl Queries {
    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The number of the query `name` under `root`, parsing it on first sight, counted
    /// as one more kernel reference in `inodes` under the table's lock (so a `forget`
    /// racing this lookup cannot drop it in between); with the names of queries the kernel
    /// should now be asked to forget, oldest first.
    fn number(&self, root: QueryRoot, name: &str, inodes: &InodeTable) -> Result<(u64, Vec<(QueryRoot, String)>)> {
        {
            let table = self.lock();
            if let Some(number) = table.by_name.get(&(root, name.to_owned())) {
                inodes.remember(*number);
                return Ok((*number, Vec::new()));
            }
        }
        let matcher = match root {
            QueryRoot::ImagesFilter | QueryRoot::ContainersFilter => {
                Matcher::Filter(Filter::from_component(name).map_err(ValidationError::from)?)
            }
            QueryRoot::ImagesByTarget => {
                validate_digest(name)?;
                Matcher::Target(name.to_owned())
            }
        };
        let cost = matcher.cost() + 2 * name.len() + 128;
        let mut table = self.lock();
        if let Some(number) = table.by_name.get(&(root, name.to_owned())) {
            inodes.remember(*number);
            return Ok((*number, Vec::new()));
        }
        if table.by_number.len() >= HARD_FACTOR * SOFT_QUERIES || table.cost + cost > HARD_FACTOR * SOFT_QUERY_BYTES {
            return Err(FsError::TooManyQueries(table.by_number.len()));
        }
        table.next += 1;
        let number = QueryIno::Dir(table.next).number();
        table.by_name.insert((root, name.to_owned()), number);
        let query = Arc::new(Query { root, name: name.to_owned(), matcher, cost });
        table.by_number.insert(number, Entry { query, dropping: false });
        table.cost += cost;
        inodes.remember(number);
        Ok((number, table.mark_oldest_to_drop()))
    }

    fn get(&self, number: u64) -> Option<Arc<Query>> {
        self.lock().by_number.get(&number).map(|e| Arc::clone(&e.query))
    }

    /// The kernel may have forgotten a query directory: it goes once `inodes` no longer
    /// counts it (checked under the table's lock, as lookups count it).
    fn forget_if_unknown(&self, number: u64, inodes: &InodeTable) {
        let mut table = self.lock();
        if inodes.is_known(number) {
            return;
        }
        if let Some(entry) = table.by_number.remove(&number) {
            table.by_name.remove(&(entry.query.root, entry.query.name.clone()));
            table.cost -= entry.query.cost;
        }
    }
}

impl Table {
    /// Past the soft bounds: the oldest queries not asked about yet, as many as bring the
    /// table back under them once forgotten. They stay valid until the kernel forgets them.
    fn mark_oldest_to_drop(&mut self) -> Vec<(QueryRoot, String)> {
        let (mut count, mut cost) = (self.by_number.len(), self.cost);
        let mut names = Vec::new();
        for entry in self.by_number.values_mut() {
            if count <= SOFT_QUERIES && cost <= SOFT_QUERY_BYTES {
                break;
            }
            if !entry.dropping {
                entry.dropping = true;
                names.push((entry.query.root, entry.query.name.clone()));
            }
            count -= 1;
            cost -= entry.query.cost;
        }
        names
    }
}

impl Query {
    fn matches_container(&self, container: &Container) -> bool {
        matches!(&self.matcher, Matcher::Filter(filter) if filter.matches(container))
    }

    /// Only images count (a directory holding labels before its target is none).
    fn matches_image(&self, image: &Image) -> bool {
        let Some(target) = &image.target else { return false };
        match &self.matcher {
            Matcher::Filter(filter) => filter.matches(image),
            Matcher::Target(digest) => target.digest == *digest,
        }
    }

    /// Whether it lists containers (else images).
    fn of_containers(&self) -> bool {
        self.root == QueryRoot::ContainersFilter
    }
}

/// A query directory's parent inode.
fn parent_ino(root: QueryRoot) -> u64 {
    super::ino::Ino::Node(root.parent()).number()
}

impl FsCore {
    /// `lookup` of `.filter` or `.by-target` in `images/` or `containers/`.
    pub(super) fn query_root_attr(&self, reader: &impl StoreRead, root: QueryRoot) -> Result<Attr> {
        let parent = super::load_node(reader, root.parent())?;
        let (created, updated) = parent.dir_times();
        Ok(Attr::query_dir(QueryIno::Root(root).number(), created, updated))
    }

    /// `lookup` of a query in `.filter/` or `.by-target/`: an invalid one is EINVAL. The
    /// kernel's reference is counted here (see `Queries::number`).
    pub(super) fn query_dir_lookup(&self, reader: &impl StoreRead, root: QueryRoot, name: &str) -> Result<Attr> {
        let (number, to_drop) = self.queries.number(root, name, &self.inodes)?;
        // Not waited for: the kernel holds `root` locked for this very lookup.
        for (root, name) in to_drop {
            self.notices.send(super::notify::Notice::Forget { parent: QueryIno::Root(root).number(), name });
        }
        Ok(Attr { ino: number, ..self.query_root_attr(reader, root)? })
    }

    /// `lookup` of a link in query directory `dir` (a query's own name, in a query
    /// root, is `query_dir_lookup`'s).
    pub(super) fn link_lookup(&self, reader: &impl StoreRead, dir: QueryIno, name: &str) -> Result<Attr> {
        match dir {
            QueryIno::Dir(_) => {
                let query = self.query(dir)?;
                self.matching_link(reader, &query, name)?.ok_or(FsError::NotFound)
            }
            QueryIno::Root(_) | QueryIno::Link(_) => Err(FsError::NotDir),
        }
    }

    /// `getattr` of a query inode.
    pub(super) fn query_getattr(&self, reader: &impl StoreRead, ino: QueryIno) -> Result<Attr> {
        match ino {
            QueryIno::Root(root) => self.query_root_attr(reader, root),
            QueryIno::Dir(_) => {
                let query = self.query(ino)?;
                Ok(Attr { ino: ino.number(), ..self.query_root_attr(reader, query.root)? })
            }
            QueryIno::Link(node) => link_attr(reader, node)?.ok_or(FsError::NotFound),
        }
    }

    /// `readlink`: the path from a query directory to the object's directory.
    pub fn readlink(&self, ino: u64) -> Result<Vec<u8>> {
        let Some(QueryIno::Link(node)) = QueryIno::decode(ino) else {
            return Err(FsError::InvalidRequest("only the entries of query directories are symbolic links".into()));
        };
        let reader = self.store().read()?;
        Ok(link_target(&reader, node)?.ok_or(FsError::NotFound)?.into_bytes())
    }

    /// `readdir` of a query inode: `.` and `..`, then (for a query) its matches in node
    /// order, each cookie the node id past the base so that a listing resumes where it
    /// stopped without state.
    pub(super) fn query_readdir(
        &self,
        reader: &impl StoreRead,
        dir: QueryIno,
        offset: u64,
        add: &mut dyn FnMut(u64, u64, Kind, &str) -> bool,
    ) -> Result<()> {
        let parent = match dir {
            QueryIno::Root(root) => parent_ino(root),
            QueryIno::Dir(_) => QueryIno::Root(self.query(dir)?.root).number(),
            QueryIno::Link(_) => return Err(FsError::NotDir),
        };
        if offset < 1 && add(dir.number(), 1, Kind::Dir, ".") {
            return Ok(());
        }
        if offset < 2 && add(parent, 2, Kind::Dir, "..") {
            return Ok(());
        }
        // `.filter/` and `.by-target/` list nothing: their names are questions.
        if let QueryIno::Root(_) = dir {
            return Ok(());
        }
        let query = self.query(dir)?;
        let after = offset.saturating_sub(CHILD_COOKIE_BASE);
        let mut emit = |node: NodeId, name: &str| {
            let cookie = node.0 + CHILD_COOKIE_BASE;
            !add(QueryIno::Link(node).number(), cookie, Kind::Symlink, name)
        };
        if query.of_containers() {
            reader.for_each_container(after, &mut |node, c| !query.matches_container(c) || emit(node, &c.id))?;
        } else {
            reader.for_each_image(after, &mut |node, image| {
                if !query.matches_image(image) {
                    return true;
                }
                let name = escape_component(&image.name);
                // A name too long for one component cannot be listed (nor looked up).
                name.len() > MAX_COMPONENT_BYTES || emit(node, &name)
            })?;
        }
        Ok(())
    }

    /// The path of a query directory, for log lines.
    pub(super) fn query_path(&self, ino: QueryIno) -> Option<String> {
        let root_path = |root: QueryRoot| format!("{}/{}", self.path_of(parent_ino(root)), root.name());
        match ino {
            QueryIno::Root(root) => Some(root_path(root)),
            QueryIno::Dir(_) => self.query(ino).ok().map(|q| format!("{}/{}", root_path(q.root), q.name)),
            // A link is the same inode in every query that lists it: name its object.
            QueryIno::Link(node) => Some(format!("{} (as a query's link)", self.path_of(super::ino::Ino::Node(node).number()))),
        }
    }

    fn query(&self, dir: QueryIno) -> Result<Arc<Query>> {
        self.queries.get(dir.number()).ok_or(FsError::NotFound)
    }

    /// The link called `name` in a query directory, if that object matches now.
    fn matching_link(&self, reader: &impl StoreRead, query: &Query, name: &str) -> Result<Option<Attr>> {
        let node = if query.of_containers() {
            match reader.lookup(schema::CONTAINERS, name)? {
                Some(node) if reader.container(node.id)?.is_some_and(|c| query.matches_container(&c)) => node.id,
                _ => return Ok(None),
            }
        } else {
            let Ok(image_name) = crate::model::unescape_component(name) else { return Ok(None) };
            match resolve_image_dir(reader, &image_name)? {
                Some(node) if reader.image(node.id)?.is_some_and(|i| query.matches_image(&i)) => node.id,
                _ => return Ok(None),
            }
        };
        link_attr(reader, node)
    }

    /// Whether `ino` is a query inode; the kernel forgetting one lets its number go.
    pub(super) fn forget_query(&self, ino: u64) {
        if let Some(QueryIno::Dir(_)) = QueryIno::decode(ino) {
            self.queries.forget_if_unknown(ino, &self.inodes);
        }
    }
}

/// A link's attributes, from its object's record; `None` once the object is gone.
fn link_attr(reader: &impl StoreRead, node: NodeId) -> Result<Option<Attr>> {
    let Some(target) = link_target(reader, node)? else { return Ok(None) };
    let Some(node) = reader.node(node)? else { return Ok(None) };
    let loaded = super::content::Loaded::read(reader, node)?;
    let (created, updated) = loaded.record_times();
    let (created, updated) = (created.to_system_time(), updated.to_system_time());
    Ok(Some(Attr::symlink(QueryIno::Link(loaded.node.id).number(), target.len(), created, updated)))
}

/// `../../<id>` for a container, `../../<name>` for an image: query directories are two
/// levels below `containers/` or `images/`, so one path serves every query.
fn link_target(reader: &impl StoreRead, id: NodeId) -> Result<Option<String>> {
    let Some(node) = reader.node(id)? else { return Ok(None) };
    let name = match node.kind {
        NodeKind::Container => node.name,
        NodeKind::ImageDir => match reader.image(id)? {
            Some(image) => image.name,
            None => return Ok(None),
        },
        _ => return Ok(None),
    };
    Ok(Some(format!("../../{name}")))
}
